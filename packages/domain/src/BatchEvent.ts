/**
 * Every change a client must see, as a sequence-numbered event per batch.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { BatchConfig, ConfigPatch, LimiterName } from "./BatchConfig.js"
import { FailureReason, PauseReason } from "./BatchState.js"
import { DurationString } from "./Duration.js"
import { Actor, BatchId, ItemKey, Note, Sequence, WorkflowName } from "./Ids.js"
import { ItemError } from "./ItemError.js"
import { figureFields } from "./Slowdown.js"
import { Summary } from "./Summary.js"
import * as Tags from "./Tags.js"

const common = {
  batchId: BatchId,
  seq: Sequence,
  at: Schema.DateTimeUtc
}
const Attempt = Schema.NonNegativeInt
const Round = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
// a JSON number: JSON cannot carry Infinity or NaN (`JSON.stringify` writes them as null)
const Measure = Schema.JsonNumber.pipe(Schema.nonNegative())

/** @since 0.1.0 */
export const BatchCreated = Schema.TaggedStruct("BatchCreated", {
  ...common,
  workflow: WorkflowName,
  total: Schema.NonNegativeInt,
  config: BatchConfig
})
/** @since 0.1.0 */
export const BatchStarted = Schema.TaggedStruct("BatchStarted", { ...common, round: Round })
/** @since 0.1.0 */
export const BatchPaused = Schema.TaggedStruct("BatchPaused", { ...common, reason: PauseReason })
/** @since 0.1.0 */
export const BatchResumed = Schema.TaggedStruct("BatchResumed", { ...common, actor: Actor })
/** @since 0.1.0 */
export const ReviewRequested = Schema.TaggedStruct("ReviewRequested", { ...common, summary: Summary })
/** @since 0.1.0 */
export const BatchApproved = Schema.TaggedStruct("BatchApproved", { ...common, actor: Actor, note: Note })
/** @since 0.1.0 */
export const BatchRejected = Schema.TaggedStruct("BatchRejected", { ...common, actor: Actor, note: Note })
/** @since 0.1.0 */
export const BatchCompleted = Schema.TaggedStruct("BatchCompleted", { ...common, summary: Summary })
/** @since 0.1.0 */
export const BatchFailed = Schema.TaggedStruct("BatchFailed", { ...common, reason: FailureReason, summary: Summary })
/** @since 0.1.0 */
export const BatchCancelled = Schema.TaggedStruct("BatchCancelled", { ...common, actor: Actor, note: Note })
/**
 * Failed items were re-queued for a new round, by a person (`retry-failed`) or by the policy.
 *
 * @since 0.1.0
 */
export const BatchRedriven = Schema.TaggedStruct("BatchRedriven", {
  ...common,
  actor: Actor,
  round: Round,
  requeued: Schema.NonNegativeInt
})
/** @since 0.1.0 */
export const ConfigChanged = Schema.TaggedStruct("ConfigChanged", { ...common, patch: ConfigPatch })
/** @since 0.1.0 */
export const ItemStarted = Schema.TaggedStruct("ItemStarted", {
  ...common,
  itemKey: ItemKey,
  attempt: Attempt,
  round: Round
})
/** @since 0.1.0 */
export const ItemSucceeded = Schema.TaggedStruct("ItemSucceeded", {
  ...common,
  itemKey: ItemKey,
  attempt: Attempt,
  durationMs: Measure
})
/** @since 0.1.0 */
export const ItemFailed = Schema.TaggedStruct("ItemFailed", {
  ...common,
  itemKey: ItemKey,
  attempt: Attempt,
  error: ItemError
})
/** @since 0.1.0 */
export const ItemRetryScheduled = Schema.TaggedStruct("ItemRetryScheduled", {
  ...common,
  itemKey: ItemKey,
  attempt: Attempt,
  nextAttemptAt: Schema.DateTimeUtc,
  error: ItemError
})
/** @since 0.1.0 */
export const ItemTimedOut = Schema.TaggedStruct("ItemTimedOut", {
  ...common,
  itemKey: ItemKey,
  attempt: Attempt,
  timeout: DurationString
})
/**
 * A durable step of an item completed: its output is stored, and a later attempt replays it instead
 * of running it again. `completed` counts the item's stored steps, `of` is the workflow's declared
 * number of steps when it declares them.
 *
 * @since 0.3.0
 */
export const StepCompleted = Schema.TaggedStruct("StepCompleted", {
  ...common,
  itemKey: ItemKey,
  attempt: Attempt,
  step: Schema.String,
  index: Schema.NonNegativeInt,
  completed: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  of: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { exact: true })
})
/**
 * A person re-ran an item from a named step: the stored outputs of that step and of the steps that
 * completed after it were discarded, and the item was queued again.
 *
 * @since 0.3.0
 */
export const StepsDiscarded = Schema.TaggedStruct("StepsDiscarded", {
  ...common,
  itemKey: ItemKey,
  step: Schema.String,
  discarded: Schema.Array(Schema.String),
  actor: Actor
})
/** @since 0.1.0 */
export const ItemQuarantined = Schema.TaggedStruct("ItemQuarantined", {
  ...common,
  itemKey: ItemKey,
  reason: Schema.String
})
/** @since 0.1.0 */
export const ItemReleased = Schema.TaggedStruct("ItemReleased", { ...common, itemKey: ItemKey, actor: Actor })
/** @since 0.1.0 */
export const ItemSkipped = Schema.TaggedStruct("ItemSkipped", {
  ...common,
  itemKey: ItemKey,
  reason: Schema.Literal("aborted", "cancelled")
})
/**
 * A rate limiter was told to back off (HTTP 429).
 *
 * @since 0.1.0
 */
export const Throttled = Schema.TaggedStruct("Throttled", {
  ...common,
  limiter: LimiterName,
  retryAfter: DurationString,
  effectiveConcurrency: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
})
/**
 * The batch got slower than its own baseline: its last windows all breached the `slowdown`
 * thresholds. Appended once per transition, by whichever process sampled the window.
 *
 * @since 0.5.0
 */
export const SlowdownDetected = Schema.TaggedStruct("SlowdownDetected", { ...common, ...figureFields })
/**
 * A slow batch came back within bounds of its baseline for as many windows in a row.
 *
 * @since 0.5.0
 */
export const SlowdownRecovered = Schema.TaggedStruct("SlowdownRecovered", { ...common, ...figureFields })
/**
 * Every event of a batch. Each carries the batch id, its per-batch sequence number and a timestamp.
 *
 * @since 0.1.0
 */
export const BatchEvent = Schema.Union(
  BatchCreated,
  BatchStarted,
  BatchPaused,
  BatchResumed,
  ReviewRequested,
  BatchApproved,
  BatchRejected,
  BatchCompleted,
  BatchFailed,
  BatchCancelled,
  BatchRedriven,
  ConfigChanged,
  ItemStarted,
  ItemSucceeded,
  ItemFailed,
  ItemRetryScheduled,
  ItemTimedOut,
  StepCompleted,
  StepsDiscarded,
  ItemQuarantined,
  ItemReleased,
  ItemSkipped,
  Throttled,
  SlowdownDetected,
  SlowdownRecovered
).annotations({ identifier: "BatchEvent" })
/** @since 0.1.0 */
export type BatchEvent = typeof BatchEvent.Type
/** @since 0.1.0 */
export type Encoded = typeof BatchEvent.Encoded

/**
 * The tag of an event.
 *
 * @since 0.1.0
 */
export type Tag = BatchEvent["_tag"]

/**
 * Every event tag, in the union's order.
 *
 * @since 0.3.0
 */
export const tags: ReadonlyArray<Tag> = Tags.batchEvents satisfies Tags.Every<Tag, typeof Tags.batchEvents>

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/**
 * An event before it is stored: the store assigns the batch id, the sequence number and the time.
 *
 * @since 0.1.0
 */
export type Draft = DistributiveOmit<BatchEvent, "batchId" | "seq" | "at">

/**
 * Events that end a batch's event stream.
 *
 * @since 0.1.0
 */
export const terminalTags: ReadonlyArray<Tag> = Tags.batchTerminalEvents

/**
 * Whether an event ends the batch's event stream.
 *
 * @since 0.1.0
 */
export const isTerminal = (event: { readonly _tag: string }): boolean => terminalTags.some((tag) => tag === event._tag)
