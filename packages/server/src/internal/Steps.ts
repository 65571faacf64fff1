/**
 * Durable steps of one batch's items in this process: what `ItemContext.step` does. The first step
 * an attempt calls loads the item's stored steps (one query); a stored step is decoded and returned,
 * any other runs (under its own retry and timeout), is encoded, bounded in size and stored with its
 * `StepCompleted` event in one transaction.
 */
import type { Ids } from "@effect-batch/domain"
import type { StepRepo } from "@effect-batch/tables/StepRepo"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Workflow from "../Workflow.js"

/** How a step's record is retried while the database does not answer, before the attempt dies. */
const recordRetry = Schedule.exponential("50 millis").pipe(Schedule.intersect(Schedule.recurs(6)))

const storedKey = (name: string, index: number) => `${index}:${name}`

export interface Steps {
  /**
   * the `step` of one attempt of one item; `started` waits until the attempt's start mark is
   * recorded, so that its `ItemStarted` precedes its steps' events
   */
  readonly forAttempt: (
    itemKey: Ids.ItemKey,
    attempt: number,
    started: Effect.Effect<void>
  ) => Workflow.ItemContext["step"]
}

export const make = (options: {
  readonly repo: StepRepo
  readonly batchId: Ids.BatchId
  /** the workflow's declared number of steps */
  readonly declared: number | undefined
  readonly maxOutputBytes: number
  /** a `StepCompleted` with this sequence is committed */
  readonly committed: (seq: number) => void
}): Steps => ({
  forAttempt: (itemKey, attempt, started) => {
    // built on the first step only: most attempts of most workflows call none
    let stored: Map<string, unknown> | undefined
    let calls: Map<string, number> | undefined
    const load = () =>
      stored !== undefined ? Effect.succeed(stored) : options.repo.load(options.batchId, itemKey).pipe(
        Effect.retry(recordRetry),
        Effect.orDie,
        Effect.map((rows) => {
          stored = new Map(rows.map((r) => [storedKey(r.name, r.index), r.output]))
          return stored
        })
      )
    return <A, AE, E, R>(
      name: string,
      effect: Effect.Effect<A, E, R>,
      stepOptions: Workflow.StepOptions<A, AE, E>
    ): Effect.Effect<A, E | Workflow.StepError, R> =>
      Effect.suspend(() => {
        calls ??= new Map()
        const index = calls.get(name) ?? 0
        calls.set(name, index + 1)
        const decode = (output: unknown) =>
          Schema.decodeUnknown(stepOptions.output)(output).pipe(
            Effect.mapError((e) =>
              new Workflow.StepReplayFailed({ step: name, index, reason: ParseResult.TreeFormatter.formatErrorSync(e) })
            )
          )
        const retried = stepOptions.retry === undefined ? effect : Effect.retry(effect, {
          schedule: stepOptions.retry,
          while: (e) => !(e instanceof Workflow.RateLimited)
        })
        const bounded: Effect.Effect<A, E | Workflow.StepTimedOut, R> = stepOptions.timeout === undefined
          ? retried
          : Effect.timeoutFail(retried, {
            duration: stepOptions.timeout,
            onTimeout: () =>
              new Workflow.StepTimedOut({ step: name, timeout: Duration.decode(stepOptions.timeout ?? 0) })
          })
        const run = bounded.pipe(
          Effect.flatMap((value) =>
            Schema.encode(stepOptions.output)(value).pipe(
              // an output its own schema cannot encode is a defect of the workflow
              Effect.orDie
            )
          ),
          Effect.flatMap((encoded): Effect.Effect<A, Workflow.StepError> => {
            const outputJson = JSON.stringify(encoded)
            const bytes = Buffer.byteLength(outputJson)
            if (bytes > options.maxOutputBytes) {
              return Effect.fail(new Workflow.StepOutputTooLarge({ step: name, bytes, limit: options.maxOutputBytes }))
            }
            return started.pipe(
              Effect.zipRight(Effect.clockWith((clock) => clock.currentTimeMillis)),
              Effect.flatMap((now) =>
                options.repo.record({
                  batchId: options.batchId,
                  itemKey,
                  name,
                  index,
                  attempt,
                  outputJson,
                  of: options.declared,
                  now
                })
              ),
              Effect.retry(recordRetry),
              Effect.orDie,
              Effect.tap((recorded) =>
                Effect.sync(() => {
                  if (recorded.seq !== undefined) options.committed(recorded.seq)
                  stored?.set(storedKey(name, index), recorded.output)
                })
              ),
              Effect.flatMap((recorded) => decode(recorded.output))
            )
          })
        )
        return Effect.flatMap(load(), (steps): Effect.Effect<A, E | Workflow.StepError, R> => {
          const key = storedKey(name, index)
          return steps.has(key) ? decode(steps.get(key)) : run
        })
      })
  }
})
