/**
 * Commands that change a campaign's state. Each carries the time it takes effect.
 *
 * @since 0.4.0
 */
import * as Schema from "effect/Schema"
import { CampaignPatch } from "./CampaignConfig.js"
import { CampaignFailureReason, CampaignSummary } from "./CampaignState.js"
import { Actor, Note } from "./Ids.js"
import * as Tags from "./Tags.js"

const at = Schema.DateTimeUtc
const Count = Schema.NonNegativeInt

/** Start no new batch. @since 0.4.0 */
export class Pause extends Schema.TaggedClass<Pause>()("Pause", {
  at,
  actor: Actor,
  note: Note,
  cascade: Schema.Boolean
}) {}
/** Start batches again. @since 0.4.0 */
export class Resume extends Schema.TaggedClass<Resume>()("Resume", { at, actor: Actor }) {}
/** Stop the campaign and every child batch for good. @since 0.4.0 */
export class Cancel extends Schema.TaggedClass<Cancel>()("Cancel", { at, actor: Actor, note: Note }) {}
/** Every child batch settled: wait for review, or complete. @since 0.4.0 */
export class Settle extends Schema.TaggedClass<Settle>()("Settle", {
  at,
  summary: CampaignSummary,
  review: Schema.Boolean
}) {}
/** The campaign's tolerance was exceeded. @since 0.4.0 */
export class Fail extends Schema.TaggedClass<Fail>()("Fail", {
  at,
  reason: CampaignFailureReason,
  summary: CampaignSummary
}) {}
/** Accept a campaign awaiting review. @since 0.4.0 */
export class Approve extends Schema.TaggedClass<Approve>()("Approve", { at, actor: Actor, note: Note }) {}
/** Reject a campaign awaiting review. @since 0.4.0 */
export class Reject extends Schema.TaggedClass<Reject>()("Reject", { at, actor: Actor, note: Note }) {}
/**
 * Run the failed (or released quarantined) items of settled batches again: a new round.
 *
 * @since 0.4.0
 */
export class RetryFailed extends Schema.TaggedClass<RetryFailed>()("RetryFailed", {
  at,
  actor: Actor,
  batches: Count,
  items: Count
}) {}
/** Change the concurrency or the tolerance. @since 0.4.0 */
export class UpdateConfig extends Schema.TaggedClass<UpdateConfig>()("UpdateConfig", { at, patch: CampaignPatch }) {}

/**
 * Every campaign command.
 *
 * @since 0.4.0
 */
export const CampaignCommand = Schema.Union(
  Pause,
  Resume,
  Cancel,
  Settle,
  Fail,
  Approve,
  Reject,
  RetryFailed,
  UpdateConfig
)
/** @since 0.4.0 */
export type CampaignCommand = typeof CampaignCommand.Type
/** @since 0.4.0 */
export type Tag = CampaignCommand["_tag"]

/**
 * Every command tag.
 *
 * @since 0.5.0
 */
export const tags: ReadonlyArray<Tag> = Tags.campaignCommands satisfies Tags.Every<Tag, typeof Tags.campaignCommands>
