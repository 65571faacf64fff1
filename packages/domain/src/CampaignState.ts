/**
 * The states of a campaign (a batch of batches), a tagged union matched with `Match.typeTags`.
 *
 * @since 0.4.0
 */
import * as Schema from "effect/Schema"
import { Actor, Note } from "./Ids.js"
import { Summary } from "./Summary.js"
import * as Tags from "./Tags.js"

const Round = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
const Count = Schema.NonNegativeInt

/**
 * Whether every input key has exactly one outcome: `missing` keys have none yet (their batch has not
 * run, or they are still queued), `duplicated` ones more than one.
 *
 * @since 0.4.0
 */
export class MergeCheck extends Schema.Class<MergeCheck>("MergeCheck")({
  expected: Count,
  outcomes: Count,
  missing: Count,
  duplicated: Count,
  ok: Schema.Boolean
}) {}

/**
 * The roll-up of a campaign: its batches by state and its items' outcomes, with the merge check.
 *
 * @since 0.4.0
 */
export class CampaignSummary extends Schema.Class<CampaignSummary>("CampaignSummary")({
  batches: Count,
  batchesCompleted: Count,
  batchesFailed: Count,
  batchesCancelled: Count,
  batchesRejected: Count,
  items: Summary,
  merge: MergeCheck
}) {}

/**
 * More child batches failed than the tolerance allows.
 *
 * @since 0.4.0
 */
export class TooManyFailedBatches extends Schema.TaggedClass<TooManyFailedBatches>()("TooManyFailedBatches", {
  failed: Count,
  settled: Count
}) {}

/**
 * The share of failed items over the whole campaign exceeded the tolerance.
 *
 * @since 0.4.0
 */
export class ItemFailureRatioExceeded extends Schema.TaggedClass<ItemFailureRatioExceeded>()(
  "ItemFailureRatioExceeded",
  { failed: Count, settled: Count }
) {}

/** @since 0.4.0 */
export const CampaignFailureReason = Schema.Union(TooManyFailedBatches, ItemFailureRatioExceeded)
/** @since 0.4.0 */
export type CampaignFailureReason = typeof CampaignFailureReason.Type

/**
 * Child batches start as the campaign's concurrency allows; `round` counts redrives.
 *
 * @since 0.4.0
 */
export class Running extends Schema.TaggedClass<Running>()("Running", {
  since: Schema.DateTimeUtc,
  round: Round
}) {}

/**
 * No new child batch starts; running ones go on (unless the pause cascaded to them).
 *
 * @since 0.4.0
 */
export class Paused extends Schema.TaggedClass<Paused>()("Paused", {
  since: Schema.DateTimeUtc,
  round: Round,
  actor: Actor,
  note: Note
}) {}

/**
 * Every child batch settled; a person must approve or reject the campaign.
 *
 * @since 0.4.0
 */
export class AwaitingReview extends Schema.TaggedClass<AwaitingReview>()("AwaitingReview", {
  since: Schema.DateTimeUtc,
  round: Round,
  summary: CampaignSummary
}) {}

/**
 * Every child batch settled (and the campaign was approved, when review is required).
 *
 * @since 0.4.0
 */
export class Completed extends Schema.TaggedClass<Completed>()("Completed", {
  since: Schema.DateTimeUtc,
  round: Round,
  summary: CampaignSummary,
  approvedBy: Schema.optionalWith(Actor, { exact: true })
}) {}

/**
 * The campaign's tolerance was exceeded; `summary` is the roll-up at that moment.
 *
 * @since 0.4.0
 */
export class Failed extends Schema.TaggedClass<Failed>()("Failed", {
  since: Schema.DateTimeUtc,
  round: Round,
  reason: CampaignFailureReason,
  summary: CampaignSummary
}) {}

/**
 * Stopped by a person, with every child batch. Final.
 *
 * @since 0.4.0
 */
export class Cancelled extends Schema.TaggedClass<Cancelled>()("Cancelled", {
  since: Schema.DateTimeUtc,
  actor: Actor,
  note: Note
}) {}

/**
 * A reviewer rejected the campaign.
 *
 * @since 0.4.0
 */
export class Rejected extends Schema.TaggedClass<Rejected>()("Rejected", {
  since: Schema.DateTimeUtc,
  round: Round,
  summary: CampaignSummary,
  actor: Actor,
  note: Note
}) {}

/**
 * The state of a campaign.
 *
 * @since 0.4.0
 */
export const CampaignState = Schema.Union(
  Running,
  Paused,
  AwaitingReview,
  Completed,
  Failed,
  Cancelled,
  Rejected
).annotations({ identifier: "CampaignState" })
/** @since 0.4.0 */
export type CampaignState = typeof CampaignState.Type

/**
 * The tag of a campaign state.
 *
 * @since 0.4.0
 */
export const Tag = Schema.Literal(
  ...Tags.campaignStates satisfies Tags.Every<CampaignState["_tag"], typeof Tags.campaignStates>
)
/** @since 0.4.0 */
export type Tag = CampaignState["_tag"]

/**
 * States that end a campaign's event stream (a redrive starts it again).
 *
 * @since 0.4.0
 */
export const terminalTags: ReadonlyArray<Tag> = Tags.campaignTerminalStates

/**
 * States after which the settlement hook runs (once every child batch has stopped).
 *
 * @since 0.4.0
 */
export const settledTags: ReadonlyArray<Tag> = Tags.campaignSettledStates

/**
 * Whether a state is terminal.
 *
 * @since 0.4.0
 */
export const isTerminal = (state: CampaignState): boolean => terminalTags.includes(state._tag)
