/**
 * Every change of a campaign a client must see, as a sequence-numbered event per campaign.
 *
 * @since 0.4.0
 */
import * as Schema from "effect/Schema"
import { Tag as BatchStateTag } from "./BatchState.js"
import { CampaignConfig, CampaignPatch } from "./CampaignConfig.js"
import { CampaignId } from "./CampaignId.js"
import { CampaignFailureReason, CampaignSummary } from "./CampaignState.js"
import { Actor, BatchId, Note, Sequence, WorkflowName } from "./Ids.js"
import { ItemCounts } from "./ItemCounts.js"
import { Summary } from "./Summary.js"
import * as Tags from "./Tags.js"

const common = { campaignId: CampaignId, seq: Sequence, at: Schema.DateTimeUtc }
const Round = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
const Count = Schema.NonNegativeInt

/** @since 0.4.0 */
export const CampaignCreated = Schema.TaggedStruct("CampaignCreated", {
  ...common,
  workflow: WorkflowName,
  total: Count,
  batches: Count,
  config: CampaignConfig
})
/** @since 0.4.0 */
export const CampaignStarted = Schema.TaggedStruct("CampaignStarted", { ...common, round: Round })
/** A child batch started (or, in a later round, was redriven). @since 0.4.0 */
export const CampaignBatchStarted = Schema.TaggedStruct("CampaignBatchStarted", {
  ...common,
  batchId: BatchId,
  index: Count,
  round: Round
})
/** A child batch settled (Completed, Failed, Cancelled, Rejected), with its summary. @since 0.4.0 */
export const CampaignBatchSettled = Schema.TaggedStruct("CampaignBatchSettled", {
  ...common,
  batchId: BatchId,
  index: Count,
  state: BatchStateTag,
  summary: Summary
})
/** The roll-up after a batch settled. @since 0.4.0 */
export const CampaignProgress = Schema.TaggedStruct("CampaignProgress", {
  ...common,
  batchesDone: Count,
  batchesTotal: Count,
  counts: ItemCounts
})
/** @since 0.4.0 */
export const CampaignPaused = Schema.TaggedStruct("CampaignPaused", {
  ...common,
  actor: Actor,
  note: Note,
  /** whether the running batches are paused too */
  cascade: Schema.Boolean
})
/** @since 0.4.0 */
export const CampaignResumed = Schema.TaggedStruct("CampaignResumed", { ...common, actor: Actor })
/** @since 0.4.0 */
export const CampaignReviewRequested = Schema.TaggedStruct("CampaignReviewRequested", {
  ...common,
  summary: CampaignSummary
})
/** @since 0.4.0 */
export const CampaignApproved = Schema.TaggedStruct("CampaignApproved", { ...common, actor: Actor, note: Note })
/** @since 0.4.0 */
export const CampaignRejected = Schema.TaggedStruct("CampaignRejected", { ...common, actor: Actor, note: Note })
/** @since 0.4.0 */
export const CampaignCompleted = Schema.TaggedStruct("CampaignCompleted", { ...common, summary: CampaignSummary })
/** @since 0.4.0 */
export const CampaignFailed = Schema.TaggedStruct("CampaignFailed", {
  ...common,
  reason: CampaignFailureReason,
  summary: CampaignSummary
})
/** @since 0.4.0 */
export const CampaignCancelled = Schema.TaggedStruct("CampaignCancelled", { ...common, actor: Actor, note: Note })
/** A person re-ran the failed items of the failed or partially failed batches. @since 0.4.0 */
export const CampaignRedriven = Schema.TaggedStruct("CampaignRedriven", {
  ...common,
  actor: Actor,
  round: Round,
  batches: Count,
  items: Count
})
/** Quarantined items of running batches were released. @since 0.4.0 */
export const CampaignItemsReleased = Schema.TaggedStruct("CampaignItemsReleased", {
  ...common,
  actor: Actor,
  released: Count
})
/** @since 0.4.0 */
export const CampaignConfigChanged = Schema.TaggedStruct("CampaignConfigChanged", { ...common, patch: CampaignPatch })

/**
 * Every event of a campaign.
 *
 * @since 0.4.0
 */
export const CampaignEvent = Schema.Union(
  CampaignCreated,
  CampaignStarted,
  CampaignBatchStarted,
  CampaignBatchSettled,
  CampaignProgress,
  CampaignPaused,
  CampaignResumed,
  CampaignReviewRequested,
  CampaignApproved,
  CampaignRejected,
  CampaignCompleted,
  CampaignFailed,
  CampaignCancelled,
  CampaignRedriven,
  CampaignItemsReleased,
  CampaignConfigChanged
).annotations({ identifier: "CampaignEvent" })
/** @since 0.4.0 */
export type CampaignEvent = typeof CampaignEvent.Type
/** @since 0.4.0 */
export type Tag = CampaignEvent["_tag"]

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/**
 * An event before it is stored: the store assigns the campaign id, the sequence and the time.
 *
 * @since 0.4.0
 */
export type Draft = DistributiveOmit<CampaignEvent, "campaignId" | "seq" | "at">

/**
 * Every event tag.
 *
 * @since 0.4.0
 */
export const tags: ReadonlyArray<Tag> = Tags.campaignEvents satisfies Tags.Every<Tag, typeof Tags.campaignEvents>

/**
 * Events that end a campaign's event stream.
 *
 * @since 0.5.0
 */
export const terminalTags: ReadonlyArray<Tag> = Tags.campaignTerminalEvents

/**
 * Whether an event ends the campaign's event stream.
 *
 * @since 0.4.0
 */
export const isTerminal = (event: { readonly _tag: string }): boolean => terminalTags.some((tag) => tag === event._tag)
