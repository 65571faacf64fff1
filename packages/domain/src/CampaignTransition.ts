/**
 * The pure state machine of a campaign: one function from (state, command) to the next state and the
 * events to record, or an `InvalidTransition` naming both.
 *
 * @since 0.4.0
 */
import * as Either from "effect/Either"
import * as Match from "effect/Match"
import type { CampaignCommand, Tag as CommandTag } from "./CampaignCommand.js"
import type { Draft } from "./CampaignEvent.js"
import * as S from "./CampaignState.js"
import { InvalidTransition } from "./Errors.js"
import * as Tags from "./Tags.js"

/**
 * The outcome of an allowed command.
 *
 * @since 0.4.0
 */
export interface Transition {
  readonly state: S.CampaignState
  readonly events: ReadonlyArray<Draft>
}

/**
 * Which commands each state accepts. The compiler checks that every state has a row.
 *
 * @since 0.4.0
 */
export const allowed: { readonly [K in S.Tag]: ReadonlyArray<CommandTag> } = Tags.campaignAllowed

type Result = Either.Either<Transition, InvalidTransition>
type Command<T extends CommandTag> = Extract<CampaignCommand, { readonly _tag: T }>

const go = (state: S.CampaignState, ...events: ReadonlyArray<Draft>): Result => Either.right({ state, events })

/**
 * The `InvalidTransition` of `command` in `state`.
 *
 * @since 0.4.0
 */
export const invalid = (state: S.Tag, command: string): InvalidTransition =>
  new InvalidTransition({ state, command, subject: "campaign" })

const reject = (state: S.CampaignState, command: CampaignCommand): Result =>
  Either.left(invalid(state._tag, command._tag))

const cancel = (c: Command<"Cancel">) =>
  go(new S.Cancelled({ since: c.at, actor: c.actor, note: c.note }), {
    _tag: "CampaignCancelled",
    actor: c.actor,
    note: c.note
  })

const configChanged = (state: S.CampaignState, c: Command<"UpdateConfig">) =>
  go(state, { _tag: "CampaignConfigChanged", patch: c.patch })

const redrive = (s: S.Completed | S.Failed | S.Rejected, command: CampaignCommand) =>
  Match.value(command).pipe(
    Match.tag("RetryFailed", (c) =>
      go(
        new S.Running({ since: c.at, round: s.round + 1 }),
        { _tag: "CampaignRedriven", actor: c.actor, round: s.round + 1, batches: c.batches, items: c.items },
        { _tag: "CampaignStarted", round: s.round + 1 }
      )),
    Match.orElse(() => reject(s, command))
  )

/**
 * The next state and the events to record for `command` in `state`, or an `InvalidTransition`.
 * Pure: the caller stores the result.
 *
 * @since 0.4.0
 */
export const transition = (state: S.CampaignState, command: CampaignCommand): Result =>
  Match.typeTags<S.CampaignState, Result>()({
    Running: (s) =>
      Match.value(command).pipe(
        Match.tag("Pause", (c) =>
          go(new S.Paused({ since: c.at, round: s.round, actor: c.actor, note: c.note }), {
            _tag: "CampaignPaused",
            actor: c.actor,
            note: c.note,
            cascade: c.cascade
          })),
        Match.tag("Cancel", cancel),
        Match.tag("Settle", (c) =>
          c.review
            ? go(new S.AwaitingReview({ since: c.at, round: s.round, summary: c.summary }), {
              _tag: "CampaignReviewRequested",
              summary: c.summary
            })
            : go(new S.Completed({ since: c.at, round: s.round, summary: c.summary }), {
              _tag: "CampaignCompleted",
              summary: c.summary
            })),
        Match.tag("Fail", (c) =>
          go(new S.Failed({ since: c.at, round: s.round, reason: c.reason, summary: c.summary }), {
            _tag: "CampaignFailed",
            reason: c.reason,
            summary: c.summary
          })),
        Match.tag("UpdateConfig", (c) => configChanged(s, c)),
        Match.orElse(() => reject(s, command))
      ),
    Paused: (s) =>
      Match.value(command).pipe(
        Match.tag("Resume", (c) =>
          go(new S.Running({ since: c.at, round: s.round }), { _tag: "CampaignResumed", actor: c.actor })),
        Match.tag("Cancel", cancel),
        Match.tag("UpdateConfig", (c) =>
          configChanged(s, c)),
        Match.orElse(() => reject(s, command))
      ),
    AwaitingReview: (s) =>
      Match.value(command).pipe(
        Match.tag("Approve", (c) =>
          go(
            new S.Completed({ since: c.at, round: s.round, summary: s.summary, approvedBy: c.actor }),
            { _tag: "CampaignApproved", actor: c.actor, note: c.note },
            { _tag: "CampaignCompleted", summary: s.summary }
          )),
        Match.tag("Reject", (c) =>
          go(new S.Rejected({ since: c.at, round: s.round, summary: s.summary, actor: c.actor, note: c.note }), {
            _tag: "CampaignRejected",
            actor: c.actor,
            note: c.note
          })),
        Match.tag("Cancel", cancel),
        Match.orElse(() =>
          reject(s, command)
        )
      ),
    Completed: (s) => redrive(s, command),
    Failed: (s) => redrive(s, command),
    Cancelled: (s) => reject(s, command),
    Rejected: (s) => redrive(s, command)
  })(state)
