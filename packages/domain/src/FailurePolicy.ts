/**
 * What a batch does when an item exhausts its retries.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * - `continue-on-failure`: the item is `Failed`, the rest go on; the batch completes with partial results.
 * - `abort-all`: the first final failure fails the batch; in-flight and queued items are `Skipped`.
 * - `retry-failed`: as continue-on-failure, then failed items are re-queued for further rounds.
 *
 * @since 0.1.0
 */
export const FailurePolicy = Schema.Literal("continue-on-failure", "abort-all", "retry-failed").annotations({
  identifier: "FailurePolicy"
})
/** @since 0.1.0 */
export type FailurePolicy = typeof FailurePolicy.Type
