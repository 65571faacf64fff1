/**
 * Counts of a batch's items per item state.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Tags from "./Tags.js"

const Count = Schema.NonNegativeInt

/**
 * How many items of a batch are in each item state.
 *
 * @since 0.1.0
 */
export class ItemCounts extends Schema.Class<ItemCounts>("ItemCounts")({
  queued: Count,
  running: Count,
  retryScheduled: Count,
  succeeded: Count,
  failed: Count,
  quarantined: Count,
  skipped: Count
}) {}

/**
 * The name of each counted item state.
 *
 * @since 0.1.0
 */
export type Field = keyof typeof ItemCounts.fields

/**
 * The counted item states, in display order.
 *
 * @since 0.1.0
 */
export const fields: ReadonlyArray<Field> = Tags.itemCountFields satisfies Tags.Every<
  Field,
  typeof Tags.itemCountFields
>

/**
 * No items.
 *
 * @since 0.1.0
 */
export const empty: ItemCounts = ItemCounts.make({
  queued: 0,
  running: 0,
  retryScheduled: 0,
  succeeded: 0,
  failed: 0,
  quarantined: 0,
  skipped: 0
})

/**
 * The number of items counted.
 *
 * @since 0.1.0
 */
export const total = (c: ItemCounts): number => fields.reduce((n, f) => n + c[f], 0)

/**
 * Items that will not run again without a command (succeeded, failed, quarantined, skipped).
 *
 * @since 0.1.0
 */
export const settled = (c: ItemCounts): number => c.succeeded + c.failed + c.quarantined + c.skipped

/**
 * Items that still have work to do (queued, running, waiting for a retry).
 *
 * @since 0.1.0
 */
export const pending = (c: ItemCounts): number => c.queued + c.running + c.retryScheduled

/**
 * Moves `n` items from one state to another; the total is unchanged.
 *
 * @since 0.1.0
 */
export const move = (c: ItemCounts, from: Field, to: Field, n = 1): ItemCounts => {
  const moved = Math.min(n, c[from])
  if (from === to || moved === 0) return c
  return ItemCounts.make({ ...c, [from]: c[from] - moved, [to]: c[to] + moved })
}
