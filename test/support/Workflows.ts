import { Workflow } from "@effect-batch/server"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"

export class DocumentError extends Schema.TaggedError<DocumentError>()("DocumentError", {
  reason: Schema.String,
  retryable: Schema.Boolean
}) {}

export const Document = Schema.Struct({
  title: Schema.String,
  /** how the simulated extraction behaves */
  behaviour: Schema.optionalWith(Schema.Literal("ok", "fail", "flaky", "hang", "slow"), { default: () => "ok" })
})

export const Extraction = Schema.Struct({ title: Schema.String, words: Schema.Number })

/** Counters a test reads to see what really ran. */
export interface Probe {
  readonly started: Ref.Ref<number>
  readonly interrupted: Ref.Ref<number>
  readonly calls: Ref.Ref<ReadonlyArray<string>>
}

export const makeProbe = Effect.all({
  started: Ref.make(0),
  interrupted: Ref.make(0),
  calls: Ref.make<ReadonlyArray<string>>([])
})

/**
 * A simulated extraction: `fail` fails fatally, `flaky` fails (retryably) the first `flakyFailures`
 * calls for that item, `hang` never finishes, `slow` takes 10 seconds, `ok` takes 100 ms.
 */
export const extraction = (probe: Probe, options: { readonly name?: string; readonly flakyFailures?: number } = {}) =>
  Workflow.make({
    name: options.name ?? "extract",
    input: Document,
    output: Extraction,
    error: DocumentError,
    retryable: (e) => e.retryable,
    run: (doc, context) =>
      Effect.gen(function*() {
        yield* Ref.update(probe.started, (n) => n + 1)
        const calls = yield* Ref.updateAndGet(probe.calls, (all) => [...all, context.itemKey])
        switch (doc.behaviour) {
          case "fail":
            return yield* new DocumentError({ reason: `cannot read ${doc.title}`, retryable: false })
          case "flaky":
            if (calls.filter((k) => k === context.itemKey).length <= (options.flakyFailures ?? 1)) {
              return yield* new DocumentError({ reason: "temporarily unavailable", retryable: true })
            }
            break
          case "hang":
            return yield* Effect.never
          case "slow":
            yield* Effect.sleep("10 seconds")
            break
          case "ok":
            yield* Effect.sleep("100 millis")
        }
        return { title: doc.title, words: doc.title.length }
      }).pipe(Effect.onInterrupt(() => Ref.update(probe.interrupted, (n) => n + 1)))
  })

/** Start times (test clock) of the calls that went through the `api` limiter, per item. */
export type CallLog = Ref.Ref<ReadonlyArray<{ readonly key: string; readonly at: number }>>

/**
 * Calls an API through the batch's `api` limiter; an item whose key ends in `-429` is answered
 * "429, retry after 2 seconds" the first time.
 */
export const limited = (calls: CallLog) =>
  Workflow.make({
    name: "limited",
    input: Document,
    output: Extraction,
    error: DocumentError,
    run: (doc, context) =>
      context.limit("api")(Effect.gen(function*() {
        const at = yield* Clock.currentTimeMillis
        const before = yield* Ref.getAndUpdate(calls, (all) => [...all, { key: context.itemKey, at }])
        if (context.itemKey.endsWith("-429") && !before.some((c) => c.key === context.itemKey)) {
          return yield* new Workflow.RateLimited({ retryAfter: Duration.seconds(2), limiter: "api" })
        }
        return { title: doc.title, words: 1 }
      }))
  })

/** What each attempt of a `timed` item did, on the test clock. */
export type AttemptLog = Ref.Ref<
  ReadonlyArray<{ readonly key: string; readonly attempt: number; readonly start: number; readonly end?: number }>
>

/**
 * Sleeps `millis[attempt - 1]` (the last entry for later attempts), logging when each attempt starts
 * and, if it is not interrupted, when it ends.
 */
export const timed = (log: AttemptLog) =>
  Workflow.make({
    name: "timed",
    input: Schema.Struct({ millis: Schema.NonEmptyArray(Schema.Int) }),
    output: Schema.Null,
    error: DocumentError,
    run: (input, context) =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        yield* Ref.update(log, (all) => [...all, { key: context.itemKey, attempt: context.attempt, start }])
        yield* Effect.sleep(
          Duration.millis(input.millis[context.attempt - 1] ?? input.millis[input.millis.length - 1]!)
        )
        const end = yield* Clock.currentTimeMillis
        yield* Ref.update(
          log,
          (all) => all.map((a) => a.key === context.itemKey && a.attempt === context.attempt ? { ...a, end } : a)
        )
        return null
      })
  })
