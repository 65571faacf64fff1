/**
 * The pure state machine of a batch: one function from (state, command) to the next state and the
 * events to record, or an `InvalidTransition`.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Match from "effect/Match"
import type { BatchCommand, Tag as CommandTag } from "./BatchCommand.js"
import type { Draft } from "./BatchEvent.js"
import * as S from "./BatchState.js"
import { InvalidTransition } from "./Errors.js"
import * as Tags from "./Tags.js"

/**
 * The outcome of an allowed command.
 *
 * @since 0.1.0
 */
export interface Transition {
  readonly state: S.BatchState
  readonly events: ReadonlyArray<Draft>
}

/**
 * Which commands each state accepts. The compiler checks that every state has a row.
 *
 * @since 0.1.0
 */
export const allowed: { readonly [K in S.Tag]: ReadonlyArray<CommandTag> } = Tags.batchAllowed

const go = (state: S.BatchState, ...events: ReadonlyArray<Draft>): Either.Either<Transition, InvalidTransition> =>
  Either.right({ state, events })

type Command<T extends CommandTag> = Extract<BatchCommand, { readonly _tag: T }>

const cancel = (c: Command<"Cancel">) =>
  go(new S.Cancelled({ since: c.at, actor: c.actor, note: c.note }), {
    _tag: "BatchCancelled",
    actor: c.actor,
    note: c.note
  })

const configChanged = (state: S.BatchState, c: Command<"UpdateConfig">) =>
  go(state, { _tag: "ConfigChanged", patch: c.patch })

const redrive = (s: S.Completed | S.Failed | S.Rejected, c: Command<"RetryFailed">) =>
  go(
    new S.Running({ since: c.at, round: s.round + 1 }),
    { _tag: "BatchRedriven", actor: c.actor, round: s.round + 1, requeued: c.requeued },
    { _tag: "BatchStarted", round: s.round + 1 }
  )

const invalid = (state: S.BatchState, command: BatchCommand) =>
  Either.left(new InvalidTransition({ state: state._tag, command: command._tag }))

const redriveOnly = (s: S.Completed | S.Failed | S.Rejected, command: BatchCommand) =>
  Match.value(command).pipe(
    Match.tag("RetryFailed", (c) => redrive(s, c)),
    Match.orElse(() => invalid(s, command))
  )

/**
 * The next state and the events to record for `command` in `state`, or an `InvalidTransition`
 * naming both. Pure: the caller stores the result.
 *
 * @since 0.1.0
 */
export const transition = (
  state: S.BatchState,
  command: BatchCommand
): Either.Either<Transition, InvalidTransition> =>
  Match.typeTags<S.BatchState, Either.Either<Transition, InvalidTransition>>()({
    Pending: (s) =>
      Match.value(command).pipe(
        Match.tag("Start", (c) => go(new S.Running({ since: c.at, round: 1 }), { _tag: "BatchStarted", round: 1 })),
        Match.tag("Cancel", cancel),
        Match.tag("UpdateConfig", (c) => configChanged(s, c)),
        Match.orElse(() => invalid(s, command))
      ),
    Running: (s) =>
      Match.value(command).pipe(
        Match.tag("Pause", (c) =>
          go(new S.Paused({ since: c.at, round: s.round, reason: c.reason }), {
            _tag: "BatchPaused",
            reason: c.reason
          })),
        Match.tag("Cancel", cancel),
        Match.tag("Settle", (c) =>
          c.review
            ? go(new S.AwaitingReview({ since: c.at, round: s.round, summary: c.summary }), {
              _tag: "ReviewRequested",
              summary: c.summary
            })
            : go(new S.Completed({ since: c.at, round: s.round, summary: c.summary }), {
              _tag: "BatchCompleted",
              summary: c.summary
            })),
        Match.tag("NextRound", (c) =>
          go(new S.Running({ since: c.at, round: s.round + 1 }), {
            _tag: "BatchRedriven",
            actor: "retry-failed policy",
            round: s.round + 1,
            requeued: c.requeued
          })),
        Match.tag("Fail", (c) =>
          go(new S.Failed({ since: c.at, round: s.round, reason: c.reason, summary: c.summary }), {
            _tag: "BatchFailed",
            reason: c.reason,
            summary: c.summary
          })),
        Match.tag("UpdateConfig", (c) => configChanged(s, c)),
        Match.orElse(() => invalid(s, command))
      ),
    Paused: (s) =>
      Match.value(command).pipe(
        Match.tag("Resume", (c) =>
          go(new S.Running({ since: c.at, round: s.round }), { _tag: "BatchResumed", actor: c.actor })),
        Match.tag("Cancel", cancel),
        Match.tag("UpdateConfig", (c) =>
          configChanged(s, c)),
        Match.orElse(() => invalid(s, command))
      ),
    AwaitingReview: (s) =>
      Match.value(command).pipe(
        Match.tag("Approve", (c) =>
          go(
            new S.Completed({ since: c.at, round: s.round, summary: s.summary, approvedBy: c.actor }),
            { _tag: "BatchApproved", actor: c.actor, note: c.note },
            { _tag: "BatchCompleted", summary: s.summary }
          )),
        Match.tag("Reject", (c) =>
          go(new S.Rejected({ since: c.at, round: s.round, summary: s.summary, actor: c.actor, note: c.note }), {
            _tag: "BatchRejected",
            actor: c.actor,
            note: c.note
          })),
        Match.tag("Cancel", cancel),
        Match.orElse(() =>
          invalid(s, command)
        )
      ),
    Completed: (s) => redriveOnly(s, command),
    Failed: (s) => redriveOnly(s, command),
    Cancelled: (s) => invalid(s, command),
    Rejected: (s) => redriveOnly(s, command)
  })(state)
