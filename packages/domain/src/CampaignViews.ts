/**
 * What clients read of a campaign: the campaign, its batches, its progress, its results.
 *
 * @since 0.4.0
 */
import * as Schema from "effect/Schema"
import { CampaignConfig } from "./CampaignConfig.js"
import { CampaignId } from "./CampaignId.js"
import { CampaignState } from "./CampaignState.js"
import { BatchId, ItemKey, Sequence, WorkflowName } from "./Ids.js"
import { ItemCounts } from "./ItemCounts.js"
import { ItemError } from "./ItemError.js"
import { Tag as ItemTag } from "./ItemState.js"
import { BatchView } from "./Views.js"

const Count = Schema.NonNegativeInt
const Measure = Schema.JsonNumber.pipe(Schema.nonNegative())

/**
 * How many child batches are in each phase.
 *
 * @since 0.4.0
 */
export class BatchCounts extends Schema.Class<BatchCounts>("BatchCounts")({
  total: Count,
  pending: Count,
  active: Count,
  requeue: Count,
  completed: Count,
  failed: Count,
  cancelled: Count,
  rejected: Count,
  /** settled and not waiting for a redrive */
  done: Count
}) {}

/**
 * A campaign as clients see it.
 *
 * @since 0.4.0
 */
export class CampaignView extends Schema.Class<CampaignView>("CampaignView")({
  id: CampaignId,
  workflow: WorkflowName,
  state: CampaignState,
  config: CampaignConfig,
  total: Count,
  batches: BatchCounts,
  /** the sum of the child batches' item counters */
  counts: ItemCounts,
  version: Count,
  lastSeq: Sequence,
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}) {}

/**
 * One child batch of a campaign, with its index (its place in the input).
 *
 * @since 0.4.0
 */
export class CampaignBatch extends Schema.Class<CampaignBatch>("CampaignBatch")({
  index: Count,
  batch: BatchView
}) {}

/**
 * A quarantined item of a campaign, for a person to act on.
 *
 * @since 0.4.0
 */
export class QuarantinedItem extends Schema.Class<QuarantinedItem>("QuarantinedItem")({
  batchId: BatchId,
  batchIndex: Count,
  key: ItemKey,
  reason: Schema.String
}) {}

/**
 * Two-level progress: batches and items, the item rate over the last minute and an ETA, and the
 * quarantined items (the first 100, and how many in all).
 *
 * @since 0.4.0
 */
export class CampaignProgress extends Schema.Class<CampaignProgress>("CampaignProgress")({
  campaignId: CampaignId,
  state: CampaignState,
  total: Count,
  batches: BatchCounts,
  counts: ItemCounts,
  itemsPerSecond: Measure,
  etaSeconds: Schema.optionalWith(Measure, { exact: true }),
  quarantined: Schema.Struct({ count: Count, items: Schema.Array(QuarantinedItem) })
}) {}

/**
 * The outcome of one item of a campaign, streamed in (batch index, key) order.
 *
 * @since 0.4.0
 */
export class CampaignResult extends Schema.Class<CampaignResult>("CampaignResult")({
  batchIndex: Count,
  batchId: BatchId,
  key: ItemKey,
  state: ItemTag,
  output: Schema.optionalWith(Schema.Unknown, { exact: true }),
  error: Schema.optionalWith(ItemError, { exact: true })
}) {}

/**
 * What a campaign's `retryFailed` re-runs (or would, for a dry run): per failed or partially failed
 * batch, its failed items (the first 100 keys, and how many).
 *
 * @since 0.4.0
 */
export class CampaignRetryPlan extends Schema.Class<CampaignRetryPlan>("CampaignRetryPlan")({
  dryRun: Schema.Boolean,
  batches: Schema.Array(Schema.Struct({
    batchId: BatchId,
    index: Count,
    count: Count,
    keys: Schema.Array(ItemKey)
  })),
  items: Count
}) {}
