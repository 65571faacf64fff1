/**
 * The outcome of a settled batch.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import type { ItemCounts } from "./ItemCounts.js"

/**
 * How many items ended in each final state.
 *
 * @since 0.1.0
 */
export class Summary extends Schema.Class<Summary>("Summary")({
  total: Schema.NonNegativeInt,
  succeeded: Schema.NonNegativeInt,
  failed: Schema.NonNegativeInt,
  quarantined: Schema.NonNegativeInt,
  skipped: Schema.NonNegativeInt
}) {}

/**
 * The summary of the given counts.
 *
 * @since 0.1.0
 */
export const fromCounts = (c: ItemCounts): Summary =>
  Summary.make({
    total: c.queued + c.running + c.retryScheduled + c.succeeded + c.failed + c.quarantined + c.skipped,
    succeeded: c.succeeded,
    failed: c.failed,
    quarantined: c.quarantined,
    skipped: c.skipped
  })
