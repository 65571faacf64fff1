/**
 * The states of a batch, a tagged union matched exhaustively with `Match.typeTags`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { Actor, ItemKey, Note } from "./Ids.js"
import { ItemError } from "./ItemError.js"
import { figureFields } from "./Slowdown.js"
import { Summary } from "./Summary.js"
import * as Tags from "./Tags.js"

/**
 * Why a batch is paused.
 *
 * @since 0.1.0
 */
export class PausedByUser extends Schema.TaggedClass<PausedByUser>()("PausedByUser", {
  actor: Actor,
  note: Note
}) {}

/**
 * The circuit breaker paused the batch after too many consecutive failures.
 *
 * @since 0.1.0
 */
export class CircuitBreakerOpen extends Schema.TaggedClass<CircuitBreakerOpen>()("CircuitBreakerOpen", {
  consecutiveFailures: Schema.NonNegativeInt
}) {}

/**
 * Slowdown detection paused the batch (`pauseOnSlowdown`), with the figures that tripped it.
 *
 * @since 0.5.0
 */
export class SlowedDown extends Schema.TaggedClass<SlowedDown>()("SlowedDown", figureFields) {}

/** @since 0.1.0 */
export const PauseReason = Schema.Union(PausedByUser, CircuitBreakerOpen, SlowedDown)
/** @since 0.1.0 */
export type PauseReason = typeof PauseReason.Type

/**
 * Under `abort-all`, an item exhausted its retries.
 *
 * @since 0.1.0
 */
export class ItemFailedFinally extends Schema.TaggedClass<ItemFailedFinally>()("ItemFailedFinally", {
  itemKey: ItemKey,
  error: ItemError
}) {}

/**
 * The batch's error budget was exceeded.
 *
 * @since 0.1.0
 */
export class ErrorBudgetExceeded extends Schema.TaggedClass<ErrorBudgetExceeded>()("ErrorBudgetExceeded", {
  failed: Schema.NonNegativeInt,
  settled: Schema.NonNegativeInt
}) {}

/** @since 0.1.0 */
export const FailureReason = Schema.Union(ItemFailedFinally, ErrorBudgetExceeded)
/** @since 0.1.0 */
export type FailureReason = typeof FailureReason.Type

const Round = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))

/**
 * Stored, not started.
 *
 * @since 0.1.0
 */
export class Pending extends Schema.TaggedClass<Pending>()("Pending", {
  since: Schema.DateTimeUtc
}) {}

/**
 * Items are being dispatched; `round` counts the passes of `retry-failed` and redrives.
 *
 * @since 0.1.0
 */
export class Running extends Schema.TaggedClass<Running>()("Running", {
  since: Schema.DateTimeUtc,
  round: Round
}) {}

/**
 * No new items start; in-flight ones finish.
 *
 * @since 0.1.0
 */
export class Paused extends Schema.TaggedClass<Paused>()("Paused", {
  since: Schema.DateTimeUtc,
  round: Round,
  reason: PauseReason
}) {}

/**
 * Every item settled; a person must approve or reject.
 *
 * @since 0.1.0
 */
export class AwaitingReview extends Schema.TaggedClass<AwaitingReview>()("AwaitingReview", {
  since: Schema.DateTimeUtc,
  round: Round,
  summary: Summary
}) {}

/**
 * Settled (and approved, when review is required).
 *
 * @since 0.1.0
 */
export class Completed extends Schema.TaggedClass<Completed>()("Completed", {
  since: Schema.DateTimeUtc,
  round: Round,
  summary: Summary,
  approvedBy: Schema.optionalWith(Actor, { exact: true })
}) {}

/**
 * Stopped by abort-all, the error budget or a fatal error.
 *
 * @since 0.1.0
 */
export class Failed extends Schema.TaggedClass<Failed>()("Failed", {
  since: Schema.DateTimeUtc,
  round: Round,
  reason: FailureReason,
  summary: Summary
}) {}

/**
 * Stopped by a person. Final.
 *
 * @since 0.1.0
 */
export class Cancelled extends Schema.TaggedClass<Cancelled>()("Cancelled", {
  since: Schema.DateTimeUtc,
  actor: Actor,
  note: Note
}) {}

/**
 * A reviewer rejected the results.
 *
 * @since 0.1.0
 */
export class Rejected extends Schema.TaggedClass<Rejected>()("Rejected", {
  since: Schema.DateTimeUtc,
  round: Round,
  summary: Summary,
  actor: Actor,
  note: Note
}) {}

/**
 * The state of a batch.
 *
 * @since 0.1.0
 */
export const BatchState = Schema.Union(
  Pending,
  Running,
  Paused,
  AwaitingReview,
  Completed,
  Failed,
  Cancelled,
  Rejected
).annotations({ identifier: "BatchState" })
/** @since 0.1.0 */
export type BatchState = typeof BatchState.Type

/**
 * The tag of a batch state.
 *
 * @since 0.1.0
 */
export const Tag = Schema.Literal(
  ...Tags.batchStates satisfies Tags.Every<BatchState["_tag"], typeof Tags.batchStates>
)
/** @since 0.1.0 */
export type Tag = BatchState["_tag"]

/**
 * Whether a batch in this state may have items dispatched.
 *
 * @since 0.1.0
 */
export const isDispatching = (tag: Tag): boolean => tag === "Running"

/**
 * States that end a batch's event stream (a redrive starts a new stream of events).
 *
 * @since 0.1.0
 */
export const terminalTags: ReadonlyArray<Tag> = Tags.batchTerminalStates

/**
 * Whether a state is terminal (nothing happens until a person redrives it, or ever, for Cancelled).
 *
 * @since 0.1.0
 */
export const isTerminal = (state: BatchState): boolean => terminalTags.includes(state._tag)

/**
 * States after which the batch's settled hook runs (a cancelled batch has no results to act on).
 *
 * @since 0.4.0
 */
export const settledTags: ReadonlyArray<Tag> = Tags.batchSettledStates
