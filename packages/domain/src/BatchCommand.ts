/**
 * Commands that change a batch's state. Each carries the time it takes effect.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { ConfigPatch } from "./BatchConfig.js"
import { FailureReason, PauseReason } from "./BatchState.js"
import { Actor, Note } from "./Ids.js"
import { Summary } from "./Summary.js"
import * as Tags from "./Tags.js"

const at = Schema.DateTimeUtc

/** Begin dispatching a pending batch. @since 0.1.0 */
export class Start extends Schema.TaggedClass<Start>()("Start", { at }) {}
/** Stop starting new items. @since 0.1.0 */
export class Pause extends Schema.TaggedClass<Pause>()("Pause", { at, reason: PauseReason }) {}
/** Continue a paused batch. @since 0.1.0 */
export class Resume extends Schema.TaggedClass<Resume>()("Resume", { at, actor: Actor }) {}
/** Stop the batch for good. @since 0.1.0 */
export class Cancel extends Schema.TaggedClass<Cancel>()("Cancel", { at, actor: Actor, note: Note }) {}
/** Every item settled: wait for review, or complete. @since 0.1.0 */
export class Settle extends Schema.TaggedClass<Settle>()("Settle", {
  at,
  summary: Summary,
  review: Schema.Boolean
}) {}
/** Accept a batch awaiting review. @since 0.1.0 */
export class Approve extends Schema.TaggedClass<Approve>()("Approve", { at, actor: Actor, note: Note }) {}
/** Reject a batch awaiting review. @since 0.1.0 */
export class Reject extends Schema.TaggedClass<Reject>()("Reject", { at, actor: Actor, note: Note }) {}
/** A person re-queues the failed items of a settled batch (redrive). @since 0.1.0 */
export class RetryFailed extends Schema.TaggedClass<RetryFailed>()("RetryFailed", {
  at,
  actor: Actor,
  requeued: Schema.NonNegativeInt
}) {}
/** The `retry-failed` policy starts the next round of a running batch. @since 0.1.0 */
export class NextRound extends Schema.TaggedClass<NextRound>()("NextRound", {
  at,
  requeued: Schema.NonNegativeInt
}) {}
/** Abort-all, the error budget or a fatal error stops the batch. @since 0.1.0 */
export class Fail extends Schema.TaggedClass<Fail>()("Fail", { at, reason: FailureReason, summary: Summary }) {}
/** Change the live-tunable parts of the config. @since 0.1.0 */
export class UpdateConfig extends Schema.TaggedClass<UpdateConfig>()("UpdateConfig", { at, patch: ConfigPatch }) {}

/**
 * Every command.
 *
 * @since 0.1.0
 */
export const BatchCommand = Schema.Union(
  Start,
  Pause,
  Resume,
  Cancel,
  Settle,
  Approve,
  Reject,
  RetryFailed,
  NextRound,
  Fail,
  UpdateConfig
)
/** @since 0.1.0 */
export type BatchCommand = typeof BatchCommand.Type
/** @since 0.1.0 */
export type Tag = BatchCommand["_tag"]

/**
 * Every command tag.
 *
 * @since 0.1.0
 */
export const tags: ReadonlyArray<Tag> = Tags.batchCommands satisfies Tags.Every<Tag, typeof Tags.batchCommands>
