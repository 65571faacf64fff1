/**
 * One sample value for every batch state and every batch command, shared by the tests.
 */
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import { BatchCommand, BatchConfig, BatchEvent, BatchState, Ids, ItemCounts, ItemError, Summary } from "../src/index.js"

/** The time every sample carries. */
export const at = DateTime.unsafeMake(0)

/** A later time, for commands that change a sample state. */
export const later = DateTime.unsafeMake(60_000)

export const batchId = Ids.BatchId.make("6f1c1f8e-2d4b-4c3a-9f5e-1a2b3c4d5e6f")
export const itemKey = Ids.ItemKey.make("doc-0001")
export const workflow = Ids.WorkflowName.make("extract.invoice")

export const summary = Summary.Summary.make({ total: 10, succeeded: 7, failed: 2, quarantined: 1, skipped: 0 })

export const itemError = ItemError.ItemError.make({
  category: "retryable",
  tag: "UpstreamUnavailable",
  message: "503 from upstream",
  details: { status: 503, body: ["busy"] }
})

/** A config with every field given a non-default value. */
export const fullConfig = BatchConfig.BatchConfig.make({
  concurrency: 4,
  failurePolicy: "retry-failed",
  retry: BatchConfig.RetryConfig.make({
    maxAttempts: 5,
    base: Duration.millis(250),
    factor: 3,
    cap: Duration.minutes(2),
    jitter: 0.5
  }),
  timeout: Duration.seconds(90),
  rounds: BatchConfig.RoundsConfig.make({ maxRounds: 4, coolDown: Duration.seconds(10) }),
  errorBudget: BatchConfig.ErrorBudget.make({ maxFailures: 20, maxFailureRatio: 0.25, minSettled: 40 }),
  quarantine: BatchConfig.QuarantineConfig.make({ afterRounds: 2, categories: ["InvalidDocument"] }),
  pauseAfterConsecutiveFailures: 8,
  review: true,
  rateLimits: { openai: BatchConfig.RateLimit.make({ limit: 10, interval: Duration.minutes(1) }) },
  leaseDuration: Duration.seconds(45),
  slowdown: BatchConfig.SlowdownConfig.make({
    window: Duration.seconds(30),
    baselineWindows: 4,
    minItems: 200,
    throughputBelow: 0.4,
    p95Above: 3,
    consecutive: 2
  }),
  pauseOnSlowdown: true
})

export const patch = BatchConfig.ConfigPatch.make({
  concurrency: 2,
  rateLimits: { openai: BatchConfig.RateLimit.make({ limit: 5, interval: Duration.seconds(30) }) },
  errorBudget: BatchConfig.ErrorBudget.make({ maxFailures: 3 }),
  pauseAfterConsecutiveFailures: 4
})

/** One value of every state, keyed by its tag. */
export const states: { readonly [T in BatchState.Tag]: Extract<BatchState.BatchState, { readonly _tag: T }> } = {
  Pending: new BatchState.Pending({ since: at }),
  Running: new BatchState.Running({ since: at, round: 1 }),
  Paused: new BatchState.Paused({
    since: at,
    round: 2,
    reason: new BatchState.PausedByUser({ actor: "ann", note: "checking the upstream" })
  }),
  AwaitingReview: new BatchState.AwaitingReview({ since: at, round: 1, summary }),
  Completed: new BatchState.Completed({ since: at, round: 2, summary, approvedBy: "bob" }),
  Failed: new BatchState.Failed({
    since: at,
    round: 3,
    reason: new BatchState.ItemFailedFinally({ itemKey, error: itemError }),
    summary
  }),
  Cancelled: new BatchState.Cancelled({ since: at, actor: "ann", note: "wrong input file" }),
  Rejected: new BatchState.Rejected({ since: at, round: 1, summary, actor: "carol", note: "totals look off" })
}

/** One value of every command, keyed by its tag. */
export const commands: { readonly [T in BatchCommand.Tag]: Extract<BatchCommand.BatchCommand, { readonly _tag: T }> } =
  {
    Start: BatchCommand.Start.make({ at: later }),
    Pause: BatchCommand.Pause.make({
      at: later,
      reason: new BatchState.CircuitBreakerOpen({ consecutiveFailures: 5 })
    }),
    Resume: BatchCommand.Resume.make({ at: later, actor: "ann" }),
    Cancel: BatchCommand.Cancel.make({ at: later, actor: "ann", note: "no longer needed" }),
    Settle: BatchCommand.Settle.make({ at: later, summary, review: false }),
    Approve: BatchCommand.Approve.make({ at: later, actor: "bob", note: "looks right" }),
    Reject: BatchCommand.Reject.make({ at: later, actor: "carol", note: "totals look off" }),
    RetryFailed: BatchCommand.RetryFailed.make({ at: later, actor: "ann", requeued: 3 }),
    NextRound: BatchCommand.NextRound.make({ at: later, requeued: 2 }),
    Fail: BatchCommand.Fail.make({
      at: later,
      reason: new BatchState.ErrorBudgetExceeded({ failed: 5, settled: 12 }),
      summary
    }),
    UpdateConfig: BatchCommand.UpdateConfig.make({ at: later, patch })
  }

/** Every sample state, in the order of `BatchState.Tag`. */
export const allStates: ReadonlyArray<BatchState.BatchState> = BatchState.Tag.literals.map((tag) => states[tag])

/** Every sample command, in the order of `BatchCommand.tags`. */
export const allCommands: ReadonlyArray<BatchCommand.BatchCommand> = BatchCommand.tags.map((tag) => commands[tag])

export const counts = ItemCounts.ItemCounts.make({
  queued: 3,
  running: 2,
  retryScheduled: 1,
  succeeded: 7,
  failed: 2,
  quarantined: 1,
  skipped: 0
})

const common = { batchId, seq: 1, at }

/** One value of every event, keyed by its tag. */
export const events: { readonly [T in BatchEvent.Tag]: Extract<BatchEvent.BatchEvent, { readonly _tag: T }> } = {
  BatchCreated: BatchEvent.BatchCreated.make({ ...common, workflow, total: 16, config: fullConfig }),
  BatchStarted: BatchEvent.BatchStarted.make({ ...common, round: 1 }),
  BatchPaused: BatchEvent.BatchPaused.make({
    ...common,
    reason: new BatchState.CircuitBreakerOpen({ consecutiveFailures: 5 })
  }),
  BatchResumed: BatchEvent.BatchResumed.make({ ...common, actor: "ann" }),
  ReviewRequested: BatchEvent.ReviewRequested.make({ ...common, summary }),
  BatchApproved: BatchEvent.BatchApproved.make({ ...common, actor: "bob", note: "looks right" }),
  BatchRejected: BatchEvent.BatchRejected.make({ ...common, actor: "carol", note: "totals look off" }),
  BatchCompleted: BatchEvent.BatchCompleted.make({ ...common, summary }),
  BatchFailed: BatchEvent.BatchFailed.make({
    ...common,
    reason: new BatchState.ErrorBudgetExceeded({ failed: 3, settled: 10 }),
    summary
  }),
  BatchCancelled: BatchEvent.BatchCancelled.make({ ...common, actor: "ann", note: "" }),
  BatchRedriven: BatchEvent.BatchRedriven.make({ ...common, actor: "ann", round: 2, requeued: 3 }),
  ConfigChanged: BatchEvent.ConfigChanged.make({ ...common, patch }),
  ItemStarted: BatchEvent.ItemStarted.make({ ...common, itemKey, attempt: 1, round: 1 }),
  ItemSucceeded: BatchEvent.ItemSucceeded.make({ ...common, itemKey, attempt: 2, durationMs: 812.5 }),
  ItemFailed: BatchEvent.ItemFailed.make({ ...common, itemKey, attempt: 3, error: itemError }),
  ItemRetryScheduled: BatchEvent.ItemRetryScheduled.make({
    ...common,
    itemKey,
    attempt: 1,
    nextAttemptAt: later,
    error: itemError
  }),
  ItemTimedOut: BatchEvent.ItemTimedOut.make({ ...common, itemKey, attempt: 2, timeout: Duration.seconds(90) }),
  StepCompleted: BatchEvent.StepCompleted.make({
    ...common,
    itemKey,
    attempt: 2,
    step: "entities",
    index: 0,
    completed: 2,
    of: 3
  }),
  StepsDiscarded: BatchEvent.StepsDiscarded.make({
    ...common,
    itemKey,
    step: "entities",
    discarded: ["entities", "relations"],
    actor: "ann"
  }),
  ItemQuarantined: BatchEvent.ItemQuarantined.make({ ...common, itemKey, reason: "failed in 2 round(s)" }),
  ItemReleased: BatchEvent.ItemReleased.make({ ...common, itemKey, actor: "ann" }),
  ItemSkipped: BatchEvent.ItemSkipped.make({ ...common, itemKey, reason: "aborted" }),
  Throttled: BatchEvent.Throttled.make({
    ...common,
    limiter: "openai",
    retryAfter: Duration.seconds(20),
    effectiveConcurrency: 2
  }),
  SlowdownDetected: BatchEvent.SlowdownDetected.make({
    ...common,
    window: Duration.minutes(1),
    throughput: 4.5,
    baselineThroughput: 12,
    p95Ms: 2400,
    baselineP95Ms: 800,
    windows: 3
  }),
  SlowdownRecovered: BatchEvent.SlowdownRecovered.make({
    ...common,
    window: Duration.minutes(1),
    throughput: 11,
    baselineThroughput: 12,
    windows: 3
  })
}
