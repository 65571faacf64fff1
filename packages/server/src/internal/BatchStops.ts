/**
 * Stopping a batch because of recorded outcomes: what the policy decides once they are committed (an
 * abort-all failure, an exceeded error budget, the circuit breaker) and the commands that carry it
 * out (also for a detected slowdown under `pauseOnSlowdown`). The runner uses it after each group
 * commit and after a slowdown, the worker after it records lost attempts.
 */
import { BatchCommand, BatchState, ItemCounts, Policy, Summary } from "@effect-batch/domain"
import type { BatchConfig } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import type { ItemRepo } from "@effect-batch/tables/ItemRepo"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { BatchStateMachine } from "./BatchStateMachine.js"
import type { Decided } from "./Decide.js"

/** How recorded outcomes stop a batch. */
export type Stop = Data.TaggedEnum<{
  /** fail it, skipping what is left */
  Fail: { readonly reason: BatchState.FailureReason }
  /** pause it until a person resumes it */
  Pause: { readonly reason: BatchState.PauseReason }
}>
export const Stop = Data.taggedEnum<Stop>()

const decodeKey = Schema.decodeUnknownSync(ItemKey)

/** The summary of a batch whose unsettled items are about to be skipped. */
export const summaryAfterSkip = (counts: ItemCounts.ItemCounts): Summary.Summary =>
  Summary.fromCounts(ItemCounts.ItemCounts.make({
    ...counts,
    queued: 0,
    running: 0,
    retryScheduled: 0,
    skipped: counts.skipped + ItemCounts.pending(counts)
  }))

/**
 * Whether recorded outcomes stop the batch: the first recorded final failure under `abort-all`
 * (`abort`) fails it naming the item; otherwise the committed counters decide.
 */
export const afterRecorded = (
  config: BatchConfig.BatchConfig,
  abort: Decided | undefined,
  committed: Policy.Committed
): Option.Option<Stop> => {
  if (abort !== undefined && Option.isSome(abort.failure)) {
    const itemKey = decodeKey(abort.outcome.key)
    return Option.some(Stop.Fail({ reason: new BatchState.ItemFailedFinally({ itemKey, error: abort.failure.value }) }))
  }
  const action = Policy.afterCommit(config, committed)
  switch (action._tag) {
    case "ExceedBudget":
      return Option.some(
        Stop.Fail({ reason: new BatchState.ErrorBudgetExceeded({ failed: action.failed, settled: action.settled }) })
      )
    case "AutoPause":
      return Option.some(
        Stop.Pause({ reason: new BatchState.CircuitBreakerOpen({ consecutiveFailures: action.consecutiveFailures }) })
      )
    default:
      return Option.none()
  }
}

/**
 * Carries out a stop with the state machine. A failure skips every unsettled item in the same
 * transaction, after `before` (the runner interrupts its own attempts first, so that none still runs
 * once the batch is seen failed).
 */
export const execute = (
  machine: BatchStateMachine,
  items: ItemRepo,
  record: BatchRecord,
  stop: Stop,
  before: Effect.Effect<void>
) =>
  Stop.$match(stop, {
    Fail: ({ reason }) =>
      Effect.zipRight(
        before,
        machine.execute({
          tenant: record.tenant,
          batchId: record.id,
          command: (current, at) =>
            Effect.succeed(new BatchCommand.Fail({ at, reason, summary: summaryAfterSkip(current.counts) })),
          during: (current, _, now) =>
            Effect.asVoid(items.skipRemaining({ batchId: current.id, reason: "aborted", now }))
        })
      ),
    Pause: ({ reason }) =>
      machine.execute({
        tenant: record.tenant,
        batchId: record.id,
        command: (_, at) => Effect.succeed(new BatchCommand.Pause({ at, reason }))
      })
  }).pipe(Effect.asVoid)

/** Whether a command lost to another writer (the batch changed first). */
export const isRace = (e: { readonly _tag: string }): boolean =>
  e._tag === "InvalidTransition" || e._tag === "VersionConflict"

/** Notes a command that lost to another writer. */
export const logRace = (e: unknown) => Effect.logDebug("another writer changed the batch first", e)

/** Runs a command, ignoring that another writer changed the batch first. */
export const ignoreRace = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.asVoid, Effect.catchIf(isRace, logRace))
