/**
 * The demo: a simulated extraction over a few hundred documents, with realistic latency, transient
 * failures, rate limits, one document that always fails (and ends quarantined) and one that hangs;
 * and a campaign that characterises materials in small batches.
 *
 * @since 0.1.0
 */
import { BatchConfig, CampaignConfig } from "@effect-batch/domain"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Workflow from "./Workflow.js"

/**
 * The token the demo accepts when `EFFECT_BATCH_TOKENS` is not set (the demo's only credential).
 *
 * @since 0.3.0
 */
export const token = "demo-token"

/**
 * The tenant of the demo token.
 *
 * @since 0.3.0
 */
export const tenant = "demo"

/**
 * A document to extract.
 *
 * @since 0.1.0
 */
export const Document = Schema.Struct({
  title: Schema.String.pipe(Schema.maxLength(500)),
  pages: Schema.Int.pipe(Schema.between(1, 10_000))
})

/**
 * What the extraction finds.
 *
 * @since 0.1.0
 */
export const Extraction = Schema.Struct({
  title: Schema.String,
  entities: Schema.Array(Schema.String),
  summary: Schema.String
})

/**
 * The document cannot be read: not retryable, and quarantined for a person.
 *
 * @since 0.1.0
 */
export class CorruptDocument extends Schema.TaggedError<CorruptDocument>()("CorruptDocument", {
  detail: Schema.String
}) {}

/**
 * The model is overloaded: retryable.
 *
 * @since 0.1.0
 */
export class ModelUnavailable extends Schema.TaggedError<ModelUnavailable>()("ModelUnavailable", {
  detail: Schema.String
}) {}

const hash = (s: string): number => {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return h >>> 0
}

/**
 * The demo workflow. Behaviour is derived from the item key, so a rerun behaves the same.
 *
 * @since 0.1.0
 */
export const workflow = Workflow.make({
  name: "demo-extract",
  input: Document,
  output: Extraction,
  error: Schema.Union(CorruptDocument, ModelUnavailable),
  retryable: (e) => e._tag === "ModelUnavailable",
  // three durable stages: a retry runs only the stages that have not completed
  steps: ["mentions", "entities", "relations"],
  run: (doc, context) =>
    Effect.gen(function*() {
      const h = hash(context.itemKey)
      const mentions = yield* context.step(
        "mentions",
        context.limit("llm")(Effect.gen(function*() {
          yield* Effect.sleep(Duration.millis(40 + (h % 160) + doc.pages))
          if (context.itemKey === "doc-0042") {
            return yield* new CorruptDocument({ detail: "unreadable PDF cross-reference table" })
          }
          return doc.title.split(/\s+/).filter((w) => w.length > 3)
        })),
        { output: Schema.Array(Schema.String) }
      )
      const entities = yield* context.step(
        "entities",
        context.limit("llm")(Effect.gen(function*() {
          yield* Effect.sleep(Duration.millis(20 + (h % 80)))
          if (h % 41 === 5 && context.attempt === 1) {
            return yield* new Workflow.RateLimited({ retryAfter: Duration.seconds(2), limiter: "llm" })
          }
          return mentions.slice(0, 3)
        })),
        { output: Schema.Array(Schema.String) }
      )
      return yield* context.step(
        "relations",
        context.limit("llm")(Effect.gen(function*() {
          yield* Effect.sleep(Duration.millis(20 + (h % 80) + doc.pages))
          if (context.itemKey === "doc-0137") return yield* Effect.never
          if (h % 13 === 3 && context.attempt <= 2) {
            return yield* new ModelUnavailable({ detail: "model overloaded (503)" })
          }
          return { title: doc.title, entities, summary: `${doc.pages} pages about ${mentions[0] ?? "nothing"}` }
        })),
        { output: Extraction }
      )
    })
})

const topics = ["Invoice", "Contract", "Report", "Memo", "Statement", "Proposal", "Letter", "Specification"]
const subjects = ["Aluminium", "Shipping", "Quarterly", "Supplier", "Graphene", "Warranty", "Pricing", "Audit"]

/**
 * The demo's documents.
 *
 * @since 0.1.0
 */
export const documents = (count: number) =>
  Array.from({ length: count }, (_, i) => {
    const key = `doc-${String(i).padStart(4, "0")}`
    const h = hash(key)
    return {
      key,
      input: {
        title: `${subjects[h % subjects.length]} ${topics[(h >>> 8) % topics.length]} ${i}`,
        pages: 1 + (h % 40)
      }
    }
  })

/**
 * The demo batch's config: a review gate, an LLM rate limit, short timeouts, quarantine of corrupt
 * documents.
 *
 * @since 0.1.0
 */
export const config = BatchConfig.BatchConfig.make({
  concurrency: 16,
  failurePolicy: "continue-on-failure",
  retry: BatchConfig.RetryConfig.make({ maxAttempts: 3, base: Duration.millis(500), cap: Duration.seconds(5) }),
  timeout: Duration.seconds(3),
  quarantine: BatchConfig.QuarantineConfig.make({ categories: ["CorruptDocument"] }),
  review: true,
  rateLimits: { llm: BatchConfig.RateLimit.make({ limit: 1_200, interval: Duration.minutes(1) }) }
})

/**
 * A material to characterise.
 *
 * @since 0.4.0
 */
export const Material = Schema.Struct({
  name: Schema.String.pipe(Schema.maxLength(200)),
  grade: Schema.Int.pipe(Schema.between(1, 9))
})

/**
 * What the characterisation measures.
 *
 * @since 0.4.0
 */
export const Characterisation = Schema.Struct({
  name: Schema.String,
  densityKgM3: Schema.Number,
  meltingPointC: Schema.Number
})

/**
 * The probe gave a noisy reading: retryable.
 *
 * @since 0.4.0
 */
export class NoisyReading extends Schema.TaggedError<NoisyReading>()("NoisyReading", {
  detail: Schema.String
}) {}

/**
 * The demo campaign's workflow: a few tens of milliseconds per material, and a noisy first reading
 * for about one material in twelve, which the retry measures again.
 *
 * @since 0.4.0
 */
export const materialWorkflow = Workflow.make({
  name: "demo-characterise",
  input: Material,
  output: Characterisation,
  error: NoisyReading,
  retryable: () => true,
  run: (material, context) =>
    Effect.gen(function*() {
      const h = hash(context.itemKey)
      yield* Effect.sleep(Duration.millis(10 + (h % 30)))
      if (h % 12 === 7 && context.attempt === 1) {
        return yield* new NoisyReading({ detail: "probe reading outside its calibration band" })
      }
      return {
        name: material.name,
        densityKgM3: 1_000 + (h % 8_000) + material.grade,
        meltingPointC: 200 + ((h >>> 8) % 3_000)
      }
    })
})

const families = ["Aluminium", "Titanium", "Copper", "Nickel", "Magnesium", "Zinc", "Steel", "Bronze"]

/**
 * The demo campaign's materials.
 *
 * @since 0.4.0
 */
export const materials = (count: number) =>
  Array.from({ length: count }, (_, i) => {
    const key = `mat-${String(i).padStart(4, "0")}`
    const h = hash(key)
    return { key, input: { name: `${families[h % families.length]} alloy ${i}`, grade: 1 + (h % 9) } }
  })

/**
 * How many materials the demo campaign characterises.
 *
 * @since 0.4.0
 */
export const materialCount = 120

/**
 * The demo campaign's config: batches of 10 materials, 3 batches at a time, a review gate once every
 * batch settled; each batch runs 5 materials at a time and measures a noisy reading again quickly.
 *
 * @since 0.4.0
 */
export const campaignConfig = CampaignConfig.CampaignConfig.make({
  batchSize: 10,
  concurrency: 3,
  review: true,
  batchConfig: BatchConfig.BatchConfig.make({
    concurrency: 5,
    failurePolicy: "continue-on-failure",
    retry: BatchConfig.RetryConfig.make({ maxAttempts: 3, base: Duration.millis(100), cap: Duration.seconds(1) }),
    timeout: Duration.seconds(3)
  })
})
