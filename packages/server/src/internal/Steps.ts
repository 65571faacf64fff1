/**
 * Durable steps of one batch's items in this process: what `ItemContext.step` does. The first step
 * an attempt calls loads the item's stored steps (one query); a stored step is decoded and returned,
 * any other runs (under its own retry and timeout), is encoded and bounded in size, and joins the
 * group commit with its `StepCompleted` event, after the attempt's start mark and before its outcome.
 * The attempt goes on at once: a step whose group is not committed when the process dies runs again.
 */
import { Storable } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import type { ClaimedItem, CompletedStep } from "@effect-batch/tables/ItemRepo"
import type { StepRepo } from "@effect-batch/tables/StepRepo"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Workflow from "../Workflow.js"

/** How reading the stored steps is retried while the database does not answer, before the attempt dies. */
const loadRetry = Schedule.exponential("50 millis").pipe(Schedule.intersect(Schedule.recurs(6)))

const storedKey = (name: string, index: number) => `${index}:${name}`

export interface Steps {
  /** the `step` of one attempt of one item */
  readonly forAttempt: (item: ClaimedItem, itemKey: Ids.ItemKey) => Workflow.ItemContext["step"]
}

export const make = (options: {
  readonly repo: StepRepo
  readonly batchId: Ids.BatchId
  /** the workflow's declared number of steps */
  readonly declared: number | undefined
  readonly maxOutputBytes: number
  /** hands a completed step to the group commit */
  readonly record: (step: CompletedStep) => void
}): Steps => ({
  forAttempt: (item, itemKey) => {
    // built on the first step only: most attempts of most workflows call none
    let stored: Map<string, unknown> | undefined
    let calls: Map<string, number> | undefined
    const load = () =>
      stored !== undefined
        ? Effect.succeed(stored)
        : !item.storedSteps
        ? Effect.sync(() => (stored = new Map()))
        : options.repo.load(options.batchId, item.key).pipe(
          Effect.retry(loadRetry),
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
        const run = Effect.flatMap(bounded, (value): Effect.Effect<A, Workflow.StepError> =>
          Schema.encode(stepOptions.output)(value).pipe(
            // an output its own schema cannot encode is a defect of the workflow
            Effect.orDie,
            Effect.flatMap((encoded): Effect.Effect<A, Workflow.StepError> => {
              const outputJson = JSON.stringify(encoded)
              const bytes = Buffer.byteLength(outputJson)
              if (bytes > options.maxOutputBytes) {
                return Effect.fail(
                  new Workflow.StepOutputTooLarge({ step: name, bytes, limit: options.maxOutputBytes })
                )
              }
              const problem = Storable.jsonTextProblem(encoded, "output")
              if (problem !== undefined) return Effect.fail(new Workflow.StepOutputUnstorable({ step: name, problem }))
              const steps = stored ?? new Map<string, unknown>()
              steps.set(storedKey(name, index), encoded)
              options.record({
                item,
                name,
                index,
                outputJson,
                event: {
                  _tag: "StepCompleted",
                  itemKey,
                  attempt: item.attempt,
                  step: name,
                  index,
                  completed: steps.size,
                  ...(options.declared === undefined ? {} : { of: options.declared })
                }
              })
              return Effect.succeed(value)
            })
          ))
        return Effect.flatMap(load(), (steps): Effect.Effect<A, E | Workflow.StepError, R> => {
          const key = storedKey(name, index)
          if (!steps.has(key)) {
            return run
          }
          return Schema.decodeUnknown(stepOptions.output)(steps.get(key)).pipe(
            Effect.mapError((e) =>
              new Workflow.StepReplayFailed({ step: name, index, reason: ParseResult.TreeFormatter.formatErrorSync(e) })
            )
          )
        })
      })
  }
})
