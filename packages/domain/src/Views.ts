/**
 * What clients read: batches, items, results and progress.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { BatchConfig } from "./BatchConfig.js"
import { BatchState } from "./BatchState.js"
import { DurationString } from "./Duration.js"
import { BatchId, ItemKey, Sequence, WorkflowName } from "./Ids.js"
import { ItemCounts } from "./ItemCounts.js"
import { ItemError } from "./ItemError.js"
import { ItemState, Tag as ItemTag } from "./ItemState.js"
import { Baseline } from "./Slowdown.js"

// a JSON number: JSON cannot carry Infinity or NaN (`JSON.stringify` writes them as null)
const Measure = Schema.JsonNumber.pipe(Schema.nonNegative())

/**
 * A batch as clients see it.
 *
 * @since 0.1.0
 */
export class BatchView extends Schema.Class<BatchView>("BatchView")({
  id: BatchId,
  workflow: WorkflowName,
  state: BatchState,
  config: BatchConfig,
  counts: ItemCounts,
  version: Schema.NonNegativeInt,
  lastSeq: Sequence,
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {}

/**
 * One item as clients see it.
 *
 * @since 0.1.0
 */
export class ItemView extends Schema.Class<ItemView>("ItemView")({
  key: ItemKey,
  ordinal: Schema.NonNegativeInt,
  round: Schema.NonNegativeInt,
  state: ItemState,
  durationMs: Schema.optionalWith(Measure, { exact: true }),
  /** how many durable steps the item has completed and stored, when it has any */
  steps: Schema.optionalWith(Schema.NonNegativeInt, { exact: true })
}) {}

/**
 * The final result of one item, streamed in key order.
 *
 * @since 0.1.0
 */
export class ItemResult extends Schema.Class<ItemResult>("ItemResult")({
  key: ItemKey,
  state: ItemTag,
  output: Schema.optionalWith(Schema.Unknown, { exact: true }),
  error: Schema.optionalWith(ItemError, { exact: true })
}) {}

/**
 * A page of a listing; pass `nextCursor` back to get the next one.
 *
 * @since 0.1.0
 */
export const Page = <A, I, R>(item: Schema.Schema<A, I, R>) =>
  Schema.Struct({
    items: Schema.Array(item),
    nextCursor: Schema.optionalWith(Schema.String, { exact: true })
  })

/**
 * A recent error of a batch.
 *
 * @since 0.1.0
 */
export class RecentError extends Schema.Class<RecentError>("RecentError")({
  itemKey: ItemKey,
  attempt: Schema.NonNegativeInt,
  error: ItemError,
  at: Schema.DateTimeUtc
}) {}

/**
 * A progress snapshot: counts, throughput over a recent window, ETA, item durations, latest errors.
 *
 * @since 0.1.0
 */
export class Progress extends Schema.Class<Progress>("Progress")({
  batchId: BatchId,
  state: BatchState,
  counts: ItemCounts,
  itemsPerSecond: Measure,
  etaSeconds: Schema.optionalWith(Measure, { exact: true }),
  p50Ms: Schema.optionalWith(Measure, { exact: true }),
  p95Ms: Schema.optionalWith(Measure, { exact: true }),
  latestErrors: Schema.Array(RecentError),
  /**
   * durable steps: how many the items have completed and, when the workflow declares its steps,
   * how many there are (declared steps × items); `byStep` counts the completed ones per step name,
   * in the declared order
   */
  steps: Schema.optionalWith(
    Schema.Struct({
      completed: Schema.NonNegativeInt,
      declared: Schema.optionalWith(Schema.NonNegativeInt, { exact: true }),
      byStep: Schema.Array(Schema.Struct({ step: Schema.String, completed: Schema.NonNegativeInt }))
    }),
    { exact: true }
  )
}) {}

/**
 * What a redrive re-queues (or would, for a dry run).
 *
 * @since 0.1.0
 */
export class RedrivePlan extends Schema.Class<RedrivePlan>("RedrivePlan")({
  dryRun: Schema.Boolean,
  count: Schema.NonNegativeInt,
  items: Schema.Array(ItemKey)
}) {}

/**
 * One sampled window of a batch's trends.
 *
 * @since 0.5.0
 */
export class TrendWindow extends Schema.Class<TrendWindow>("TrendWindow")({
  /** when the window ended */
  at: Schema.DateTimeUtc,
  spanMs: Measure,
  /** outcomes recorded in the window */
  completed: Schema.NonNegativeInt,
  /** outcomes per second */
  throughput: Measure,
  /** the p95 duration of the items that succeeded in the window, when any did */
  p95Ms: Schema.optionalWith(Measure, { exact: true }),
  /** items waiting to be claimed when the window ended */
  backlog: Schema.NonNegativeInt
}) {}

/**
 * A batch's slowdown trends: its latest windows (oldest first), its baseline once established, and
 * its status: `off` (no slowdown detection configured), `learning` (no baseline yet), `normal` or
 * `slow`.
 *
 * @since 0.5.0
 */
export class Trends extends Schema.Class<Trends>("Trends")({
  batchId: BatchId,
  status: Schema.Literal("off", "learning", "normal", "slow"),
  window: Schema.optionalWith(DurationString, { exact: true }),
  baseline: Schema.optionalWith(Baseline, { exact: true }),
  windows: Schema.Array(TrendWindow)
}) {}
