import type { BatchEvent } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import { BatchOrchestrator, EffectBatch, Worker, Workflow, WorkflowRegistry } from "@effect-batch/server"
import { Tables, TestDatabase } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createStepRunsTable, steppedWork, stepRunsTable, workItems } from "./support/Durable.js"
import { advanceUntil, allEvents, caller } from "./support/Harness.js"
import { apiAt, freshDatabase, ledger, pollUntil, spawnWorker } from "./support/Processes.js"

class StageError extends Schema.TaggedError<StageError>()("StageError", {
  stage: Schema.String,
  retryable: Schema.Boolean
}) {}

const Document = Schema.Struct({
  text: Schema.String,
  /** the stage that fails, and how */
  fails: Schema.optionalWith(
    Schema.Literal("none", "relations-once", "entities-fatal", "mentions-twice", "entities-slow", "relations-429"),
    {
      default: () => "none"
    }
  )
})

const Mentions = Schema.Array(Schema.String)
const Entities = Schema.Array(Schema.Struct({ name: Schema.String, kind: Schema.String }))
const Relations = Schema.Struct({ pairs: Schema.Number })
const Linked = Schema.Struct({ mentions: Schema.Number, entities: Schema.Number, pairs: Schema.Number })

/** How many times each stage of each item really ran: `key/stage` → runs. */
type Runs = Ref.Ref<Readonly<Record<string, number>>>

const stage = (runs: Runs, key: string, name: string) =>
  Ref.updateAndGet(runs, (all) => ({ ...all, [`${key}/${name}`]: (all[`${key}/${name}`] ?? 0) + 1 })).pipe(
    Effect.map((all) => all[`${key}/${name}`] ?? 0)
  )

/** Three durable stages: mentions → entities → relations. */
const linking = (runs: Runs) =>
  Workflow.make({
    name: "linking",
    input: Document,
    output: Linked,
    error: StageError,
    retryable: (e) => e.retryable,
    steps: ["mentions", "entities", "relations"],
    run: (doc, ctx) =>
      Effect.gen(function*() {
        const mentions = yield* ctx.step(
          "mentions",
          Effect.gen(function*() {
            const n = yield* stage(runs, ctx.itemKey, "mentions")
            if (doc.fails === "mentions-twice" && n <= 2) {
              return yield* new StageError({ stage: "mentions", retryable: true })
            }
            yield* Effect.sleep("50 millis")
            return doc.text.split(" ")
          }),
          { output: Mentions, retry: Schedule.spaced("100 millis").pipe(Schedule.intersect(Schedule.recurs(3))) }
        )
        const entities = yield* ctx.step(
          "entities",
          Effect.gen(function*() {
            yield* stage(runs, ctx.itemKey, "entities")
            if (doc.fails === "entities-fatal") return yield* new StageError({ stage: "entities", retryable: false })
            if (doc.fails === "entities-slow") yield* Effect.sleep("10 seconds")
            return mentions.map((name) => ({ name, kind: name.length > 3 ? "org" : "person" }))
          }),
          { output: Entities, timeout: "1 second" }
        )
        const relations = yield* ctx.step(
          "relations",
          Effect.gen(function*() {
            const n = yield* stage(runs, ctx.itemKey, "relations")
            if (doc.fails === "relations-once" && n === 1) {
              return yield* new StageError({ stage: "relations", retryable: true })
            }
            if (doc.fails === "relations-429" && n === 1) {
              return yield* new Workflow.RateLimited({ retryAfter: Duration.seconds(2) })
            }
            return { pairs: entities.length * (entities.length - 1) / 2 }
          }),
          { output: Relations }
        )
        return { mentions: mentions.length, entities: entities.length, pairs: relations.pairs }
      })
  })

const linkingName = linking(Ref.unsafeMake({})).name

/** An orchestrator running `linking` on the test's database, with the stage runs it records. */
const withLinking = <A, E>(
  body: (o: BatchOrchestrator.BatchOrchestrator["Type"], runs: Runs) => Effect.Effect<A, E, SqlClient.SqlClient>,
  worker: Partial<Worker.WorkerOptions> = {}
) =>
  Effect.flatMap(
    Ref.make<Readonly<Record<string, number>>>({}),
    (runs) =>
      Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (o) => body(o, runs)).pipe(
        Effect.provide(
          EffectBatch.layer.pipe(
            Layer.provide(WorkflowRegistry.layer(linking(runs))),
            Layer.provide(Worker.layerConfig({ pollInterval: Duration.millis(100), ...worker }))
          )
        )
      )
  )

const stepsTable = Tables.names("effect_batch_").steps

const settled = (o: BatchOrchestrator.BatchOrchestrator["Type"], id: Parameters<typeof o.get>[1]) =>
  Effect.map(o.get(caller, id), (b) => ["Completed", "Failed"].includes(b.state._tag))

/** Submits one document as item `a` and waits until the batch settles. */
const settleOne = (
  o: BatchOrchestrator.BatchOrchestrator["Type"],
  input: typeof Document.Encoded,
  config: Parameters<BatchOrchestrator.BatchOrchestrator["Type"]["submitEncoded"]>[2]
) =>
  Effect.tap(
    o.submitEncoded(linkingName, [{ key: "a", input }], config, caller),
    (batch) => advanceUntil(settled(o, batch.id))
  )

const stepsOf = (events: ReadonlyArray<BatchEvent.BatchEvent>, key: string) =>
  events.filter((e): e is Extract<BatchEvent.BatchEvent, { _tag: "StepCompleted" }> =>
    e._tag === "StepCompleted" && e.itemKey === key
  )

const results = (o: BatchOrchestrator.BatchOrchestrator["Type"], id: Parameters<typeof o.get>[1]) =>
  o.results(caller, id).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "120 seconds" })(`durable steps (${name})`, (it) => {
    it.effect("a retry after stage 3 failed runs only stage 3; the output is whole; StepCompleted ×3 in order", () =>
      withLinking((o, runs) =>
        Effect.gen(function*() {
          const batch = yield* o.submitEncoded(
            linkingName,
            [
              { key: "a", input: { text: "Ada met Acme Corp", fails: "relations-once" } },
              { key: "b", input: { text: "Bob joined Initech", fails: "relations-once" } }
            ],
            { concurrency: 2, retry: { maxAttempts: 3, base: "1 second", cap: "1 second" } },
            caller
          )
          yield* advanceUntil(settled(o, batch.id))
          const done = yield* o.get(caller, batch.id)
          assert.strictEqual(done.state._tag, "Completed")
          assert.strictEqual(done.counts.succeeded, 2)
          assert.deepStrictEqual(yield* Ref.get(runs), {
            "a/mentions": 1,
            "a/entities": 1,
            "a/relations": 2,
            "b/mentions": 1,
            "b/entities": 1,
            "b/relations": 2
          })
          const outputs = Object.fromEntries((yield* results(o, batch.id)).map((r) => [r.key, r.output]))
          assert.deepStrictEqual(outputs["a"], { mentions: 4, entities: 4, pairs: 6 })
          assert.deepStrictEqual(outputs["b"], { mentions: 3, entities: 3, pairs: 3 })
          const events = yield* allEvents(o, batch.id)
          const steps = stepsOf(events, "a")
          assert.deepStrictEqual(
            steps.map((e) => [e.step, e.index, e.completed, e.of, e.attempt]),
            [["mentions", 0, 1, 3, 1], ["entities", 0, 2, 3, 1], ["relations", 0, 3, 3, 2]]
          )
          // a step's event comes after the item's start and before its outcome
          const seqOf = (tag: string, attempt: number) =>
            events.find((e) =>
              e._tag === tag && "itemKey" in e && e.itemKey === "a" && "attempt" in e && e.attempt === attempt
            )
              ?.seq ?? -1
          assert.isTrue(seqOf("ItemStarted", 2) < (steps[2]?.seq ?? 0))
          assert.isTrue((steps[2]?.seq ?? 0) < seqOf("ItemSucceeded", 2))
          assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), "gapless")
          const progress = yield* o.progress(caller, batch.id)
          assert.deepStrictEqual(progress.steps, {
            completed: 6,
            declared: 6,
            byStep: [
              { step: "mentions", completed: 2 },
              { step: "entities", completed: 2 },
              { step: "relations", completed: 2 }
            ]
          })
          const page = yield* o.listItems(caller, batch.id, { limit: 10 })
          assert.deepStrictEqual(page.items.map((i): [string, number | undefined] => [i.key, i.steps]), [["a", 3], [
            "b",
            3
          ]])
        })
      ))

    it.effect("a redrive of a failed batch re-runs only the stages that failed", () =>
      withLinking((o, runs) =>
        Effect.gen(function*() {
          const batch = yield* settleOne(o, { text: "Ada met Acme", fails: "relations-once" }, {
            retry: { maxAttempts: 1 }
          })
          assert.strictEqual((yield* o.get(caller, batch.id)).counts.failed, 1)
          yield* o.retryFailed(caller, batch.id, { dryRun: false })
          yield* advanceUntil(Effect.map(o.get(caller, batch.id), (b) => b.counts.succeeded === 1))
          assert.deepStrictEqual(yield* Ref.get(runs), { "a/mentions": 1, "a/entities": 1, "a/relations": 2 })
        })
      ))

    it.effect("re-running from a named step discards that step and the later ones, audited; the earlier replay", () =>
      withLinking((o, runs) =>
        Effect.gen(function*() {
          const batch = yield* settleOne(o, { text: "Ada met Acme" }, {})
          assert.strictEqual((yield* o.get(caller, batch.id)).state._tag, "Completed")
          const done = yield* o.rerunFromStep(caller, batch.id, {
            keys: [ItemKey.make("a"), ItemKey.make("not-an-item")],
            step: "entities"
          })
          assert.deepStrictEqual(done, { requeued: 1, discarded: 2 })
          yield* advanceUntil(
            Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Completed" && b.state.round === 2)
          )
          assert.deepStrictEqual(yield* Ref.get(runs), { "a/mentions": 1, "a/entities": 2, "a/relations": 2 })
          const events = yield* allEvents(o, batch.id)
          const discarded = events.filter((e) => e._tag === "StepsDiscarded")
          assert.deepStrictEqual(
            discarded.map((e) => e._tag === "StepsDiscarded" ? [e.itemKey, e.step, e.discarded, e.actor] : []),
            [["a", "entities", ["entities", "relations"], "tester"]]
          )
          const redriven = events.filter((e) => e._tag === "BatchRedriven")
          assert.deepStrictEqual(redriven.map((e) => e._tag === "BatchRedriven" ? e.requeued : -1), [1])
          const [result] = yield* results(o, batch.id)
          assert.strictEqual(result?.state, "Succeeded")
          assert.deepStrictEqual(result?.output, { mentions: 3, entities: 3, pairs: 3 })
          assert.deepStrictEqual((yield* o.get(caller, batch.id)).counts.succeeded, 1)
          // the discarded steps left the counts and the rerun's came back: one of each, not two
          assert.deepStrictEqual((yield* o.progress(caller, batch.id)).steps?.byStep, [
            { step: "mentions", completed: 1 },
            { step: "entities", completed: 1 },
            { step: "relations", completed: 1 }
          ])
        })
      ))

    it.effect("re-running from a step is refused while the batch runs, naming the command; nothing changes", () =>
      withLinking((o) =>
        Effect.gen(function*() {
          const batch = yield* o.submitEncoded(linkingName, [{ key: "a", input: { text: "x y" } }], {}, caller)
          const refused = yield* Effect.flip(
            o.rerunFromStep(caller, batch.id, { keys: [ItemKey.make("a")], step: "mentions" })
          )
          assert.strictEqual(refused._tag, "InvalidTransition")
          if (refused._tag === "InvalidTransition") assert.strictEqual(refused.command, "RerunFromStep")
          yield* advanceUntil(settled(o, batch.id))
          const events = yield* allEvents(o, batch.id)
          assert.isFalse(events.some((e) => e._tag === "StepsDiscarded" || e._tag === "BatchRedriven"))
        })
      ))

    it.effect("a step's own retry runs before the item's: the item succeeds on its first attempt", () =>
      withLinking((o, runs) =>
        Effect.gen(function*() {
          const batch = yield* settleOne(o, { text: "Ada met Acme", fails: "mentions-twice" }, {
            retry: { maxAttempts: 1 }
          })
          const done = yield* o.get(caller, batch.id)
          assert.strictEqual(done.counts.succeeded, 1)
          assert.strictEqual((yield* Ref.get(runs))["a/mentions"], 3)
          const events = yield* allEvents(o, batch.id)
          assert.deepStrictEqual(stepsOf(events, "a").map((e) => e.attempt), [1, 1, 1])
        })
      ))

    it.effect("a step past its own timeout fails the attempt as a timeout (StepTimedOut)", () =>
      withLinking((o) =>
        Effect.gen(function*() {
          const batch = yield* settleOne(o, { text: "Ada met Acme", fails: "entities-slow" }, {
            retry: { maxAttempts: 1 }
          })
          const [result] = yield* results(o, batch.id)
          assert.strictEqual(result?.state, "Failed")
          assert.strictEqual(result?.error?.tag, "StepTimedOut")
          assert.strictEqual(result?.error?.category, "timeout")
          assert.include(result?.error?.message ?? "", `step "entities"`)
        })
      ))

    it.effect("a RateLimited inside a step consumes no attempt; the completed steps replay", () =>
      withLinking((o, runs) =>
        Effect.gen(function*() {
          const batch = yield* settleOne(o, { text: "Ada met Acme", fails: "relations-429" }, {
            retry: { maxAttempts: 1 }
          })
          const done = yield* o.get(caller, batch.id)
          assert.strictEqual(done.counts.succeeded, 1, "the throttle did not use up the only attempt")
          assert.deepStrictEqual(yield* Ref.get(runs), { "a/mentions": 1, "a/entities": 1, "a/relations": 2 })
          const events = yield* allEvents(o, batch.id)
          assert.isTrue(events.some((e) => e._tag === "Throttled"))
        })
      ))

    it.effect("a stored output that no longer decodes fails the item with a typed error naming the step", () =>
      withLinking((o, runs) =>
        Effect.gen(function*() {
          const batch = yield* settleOne(o, { text: "Ada met Acme", fails: "entities-fatal" }, {})
          assert.strictEqual((yield* o.get(caller, batch.id)).counts.failed, 1)
          // the code changed: what `mentions` stored is no longer an array of strings
          const sql = yield* SqlClient.SqlClient
          yield* sql`UPDATE ${sql(stepsTable)} SET output = '{"not": "mentions"}'::jsonb
              WHERE batch_id = ${batch.id}::uuid AND name = 'mentions'`
          yield* o.retryFailed(caller, batch.id, { dryRun: false })
          yield* advanceUntil(
            Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Completed" && b.state.round === 2)
          )
          const [result] = yield* results(o, batch.id)
          assert.strictEqual(result?.state, "Failed")
          assert.strictEqual(result?.error?.tag, "StepReplayFailed")
          assert.strictEqual(result?.error?.category, "fatal")
          assert.include(result?.error?.message ?? "", `step "mentions"`)
          assert.strictEqual((yield* Ref.get(runs))["a/mentions"], 1, "the step did not run again")
        })
      ))

    it.effect("a step output above the limit fails the item with StepOutputTooLarge and stores nothing", () =>
      withLinking((o) =>
        Effect.gen(function*() {
          const batch = yield* settleOne(o, { text: "word ".repeat(20).trim() }, { retry: { maxAttempts: 1 } })
          const [result] = yield* results(o, batch.id)
          assert.strictEqual(result?.error?.tag, "StepOutputTooLarge")
          const sql = yield* SqlClient.SqlClient
          const stored = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(stepsTable)}
              WHERE batch_id = ${batch.id}::uuid`
          assert.strictEqual(stored[0]?.n, 0)
        }), { maxStepOutputBytes: 64 }))
  })
}

describe("durable steps across a crash (Postgres, real processes)", () => {
  it.scopedLive(
    "SIGKILL between the steps of many items: the steps committed before it are not run again",
    () =>
      Effect.gen(function*() {
        const total = 600
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          yield* createStepRunsTable
          const sql = yield* SqlClient.SqlClient
          const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
          const submitted = yield* orchestrator.submitEncoded(
            steppedWork({ itemMs: 0, owner: "" }).name,
            workItems(total),
            { concurrency: 16, leaseDuration: "2 seconds" },
            caller
          )
          const batch = orchestrator.get(caller, submitted.id)
          // each step takes 10 ms: many items are between their steps at any moment
          const env = { ITEM_MS: "20", STEPS: "true" }
          const first = yield* spawnWorker({ url, owner: "first", env })
          yield* pollUntil("a third of the items succeeded", Effect.map(batch, (b) => b.counts.succeeded >= total / 3))
          yield* first.kill("SIGKILL")
          const storedAtKill = yield* sql<{ item_key: string; name: string }>`SELECT item_key, name
            FROM ${sql(stepsTable)} WHERE batch_id = ${submitted.id}::uuid`
          const firstDone = new Set(storedAtKill.filter((r) => r.name === "first").map((r) => r.item_key))
          const secondDone = new Set(storedAtKill.filter((r) => r.name === "second").map((r) => r.item_key))
          const between = [...firstDone].filter((key) => !secondDone.has(key))
          assert.isAbove(between.length, 0, "some items were between their steps when the process died")

          yield* spawnWorker({ url, owner: "second", env })
          yield* pollUntil("the resumed batch completes", Effect.map(batch, (b) => b.state._tag === "Completed"))

          const rerun = yield* sql<{ item_key: string }>`SELECT item_key FROM ${sql(stepRunsTable)}
            WHERE owner = 'second' AND step = 'first'`
          const rerunFirst = rerun.map((r) => r.item_key).filter((key) => firstDone.has(key))
          assert.deepStrictEqual(rerunFirst, [], "no committed first step ran again")
          const resumed = yield* sql<{ item_key: string }>`SELECT item_key FROM ${sql(stepRunsTable)}
            WHERE owner = 'second' AND step = 'second'`
          const resumedKeys = new Set(resumed.map((r) => r.item_key))
          assert.isTrue(between.every((key) => resumedKeys.has(key)), "the items between steps ran their second step")

          const recorded = yield* ledger(submitted.id)
          assert.strictEqual(recorded.itemSucceeded, total, "one ItemSucceeded per item")
          assert.strictEqual(recorded.maxPerKey, 1)
          assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
          const results = Chunk.toReadonlyArray(yield* Stream.runCollect(orchestrator.results(caller, submitted.id)))
          assert.deepStrictEqual(results[123]?.output, { n: 123, doubled: 246 })
        }).pipe(Effect.provide(apiAt(url)))
      }),
    90_000
  )
})
