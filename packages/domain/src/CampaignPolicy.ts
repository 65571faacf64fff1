/**
 * The pure decisions of a campaign: what its child batches, read from their rows, mean for it.
 *
 * @since 0.4.0
 */
import type { CampaignConfig, Tolerance } from "./CampaignConfig.js"
import { CampaignSummary, ItemFailureRatioExceeded, type MergeCheck, TooManyFailedBatches } from "./CampaignState.js"
import type { CampaignFailureReason } from "./CampaignState.js"
import * as ItemCounts from "./ItemCounts.js"
import * as Summary from "./Summary.js"

/**
 * The child batches of a campaign, counted from their rows. A settled batch marked for a redrive
 * counts as `requeue`, not as settled.
 *
 * @since 0.4.0
 */
export interface Rollup {
  readonly batches: number
  /** not started yet */
  readonly pending: number
  /** Running, Paused or AwaitingReview: each holds one of the campaign's slots */
  readonly active: number
  /** settled, waiting to be redriven */
  readonly requeue: number
  readonly completed: number
  readonly failed: number
  readonly cancelled: number
  readonly rejected: number
  /** the sum of the children's committed counters */
  readonly counts: ItemCounts.ItemCounts
}

/**
 * How many child batches are done (settled and not waiting for a redrive).
 *
 * @since 0.4.0
 */
export const done = (r: Rollup): number => r.completed + r.failed + r.cancelled + r.rejected

/**
 * The reason the tolerance is exceeded, if it is.
 *
 * @since 0.4.0
 */
export const exceeded = (tolerance: Tolerance, r: Rollup): CampaignFailureReason | undefined => {
  const settledBatches = done(r)
  if (tolerance.maxFailedBatches !== undefined && r.failed > tolerance.maxFailedBatches) {
    return new TooManyFailedBatches({ failed: r.failed, settled: settledBatches })
  }
  if (
    tolerance.maxFailedBatchRatio !== undefined && settledBatches > 0 &&
    settledBatches >= tolerance.minSettledBatches && r.failed / settledBatches > tolerance.maxFailedBatchRatio
  ) {
    return new TooManyFailedBatches({ failed: r.failed, settled: settledBatches })
  }
  const settledItems = ItemCounts.settled(r.counts)
  if (
    tolerance.maxItemFailureRatio !== undefined && settledItems > 0 && settledItems >= tolerance.minSettledItems &&
    r.counts.failed / settledItems > tolerance.maxItemFailureRatio
  ) {
    return new ItemFailureRatioExceeded({ failed: r.counts.failed, settled: settledItems })
  }
  return undefined
}

/**
 * What a running campaign does next.
 *
 * @since 0.4.0
 */
export type Decision =
  | { readonly _tag: "Fail"; readonly reason: CampaignFailureReason }
  | { readonly _tag: "Settle" }
  | { readonly _tag: "Start"; readonly count: number }
  | { readonly _tag: "Wait" }

/**
 * The decision for a running campaign: fail when the tolerance is exceeded, settle when every batch
 * is done, otherwise start as many batches (redrives first, then new ones) as the free slots allow.
 *
 * @since 0.4.0
 */
export const decide = (config: CampaignConfig, r: Rollup): Decision => {
  const reason = exceeded(config.tolerance, r)
  if (reason !== undefined) return { _tag: "Fail", reason }
  if (done(r) === r.batches) return { _tag: "Settle" }
  const count = Math.min(Math.max(config.concurrency - r.active, 0), r.requeue + r.pending)
  return count > 0 ? { _tag: "Start", count } : { _tag: "Wait" }
}

/**
 * The campaign's summary.
 *
 * @since 0.4.0
 */
export const summaryOf = (r: Rollup, merge: MergeCheck): CampaignSummary =>
  CampaignSummary.make({
    batches: r.batches,
    batchesCompleted: r.completed,
    batchesFailed: r.failed,
    batchesCancelled: r.cancelled,
    batchesRejected: r.rejected,
    items: Summary.fromCounts(r.counts),
    merge
  })
