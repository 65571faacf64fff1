/**
 * The states of one item of a batch.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { ItemError } from "./ItemError.js"
import * as Tags from "./Tags.js"

const Attempt = Schema.NonNegativeInt

/** Waiting to be claimed. @since 0.1.0 */
export class Queued extends Schema.TaggedClass<Queued>()("Queued", {}) {}

/** Claimed by a worker; `attempt` is the fencing token of its lease. @since 0.1.0 */
export class Running extends Schema.TaggedClass<Running>()("Running", {
  attempt: Attempt,
  leaseOwner: Schema.String,
  leaseExpiresAt: Schema.DateTimeUtc
}) {}

/** Failed an attempt; waits for its backoff without holding a slot. @since 0.1.0 */
export class RetryScheduled extends Schema.TaggedClass<RetryScheduled>()("RetryScheduled", {
  attempt: Attempt,
  nextAttemptAt: Schema.DateTimeUtc,
  lastError: ItemError
}) {}

/** Finished with an output. @since 0.1.0 */
export class Succeeded extends Schema.TaggedClass<Succeeded>()("Succeeded", {
  attempts: Attempt,
  output: Schema.Unknown
}) {}

/** Exhausted its retries (or failed fatally). @since 0.1.0 */
export class Failed extends Schema.TaggedClass<Failed>()("Failed", {
  attempts: Attempt,
  error: ItemError
}) {}

/** Set aside for a person; no automatic retry until released. @since 0.1.0 */
export class Quarantined extends Schema.TaggedClass<Quarantined>()("Quarantined", {
  attempts: Attempt,
  reason: Schema.String,
  error: ItemError
}) {}

/** Not run to completion because the batch was aborted or cancelled. @since 0.1.0 */
export class Skipped extends Schema.TaggedClass<Skipped>()("Skipped", {
  reason: Schema.Literal("aborted", "cancelled")
}) {}

/**
 * The state of an item.
 *
 * @since 0.1.0
 */
export const ItemState = Schema.Union(Queued, Running, RetryScheduled, Succeeded, Failed, Quarantined, Skipped)
  .annotations({ identifier: "ItemState" })
/** @since 0.1.0 */
export type ItemState = typeof ItemState.Type

/**
 * The tag of an item state.
 *
 * @since 0.1.0
 */
export const Tag = Schema.Literal(
  ...Tags.itemStates satisfies Tags.Every<ItemState["_tag"], typeof Tags.itemStates>
)
/** @since 0.1.0 */
export type Tag = ItemState["_tag"]
