/**
 * Following a batch's events from a sequence number, for the SSE route and `StreamProgress`.
 *
 * @since 0.1.0
 */
import { Errors } from "@effect-batch/domain"
import { BatchState } from "@effect-batch/domain"
import type { BatchEvent, Views } from "@effect-batch/domain"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { BatchOrchestrator, Caller } from "../BatchOrchestrator.js"

/**
 * Whether a batch has settled for good (until someone redrives it): its event stream has an end.
 *
 * @since 0.1.0
 */
export const isSettled = (batch: Views.BatchView): boolean => BatchState.isTerminal(batch.state)

/**
 * Refuses to follow from a sequence the batch (or campaign: `what`) has not reached: no event would
 * ever come.
 *
 * @since 0.1.0
 */
export const checkAfter = (
  followed: { readonly lastSeq: number },
  after: number,
  what: "batch" | "campaign" = "batch"
): Effect.Effect<void, Errors.InvalidRequest> =>
  after > followed.lastSeq
    ? Effect.fail(
      new Errors.InvalidRequest({
        message: `sequence ${after} is beyond the ${what}'s last event (${followed.lastSeq})`
      })
    )
    : Effect.void

/**
 * The events of `batch` after `after`. For a settled batch: what is left of its log, then the end
 * (nothing at all when `after` is its last sequence). Otherwise the replay, then live until the
 * batch's terminal event, with no gap and no duplicate.
 *
 * @since 0.1.0
 */
export const follow = (
  orchestrator: BatchOrchestrator["Type"],
  caller: Caller,
  batch: Views.BatchView,
  after: number
): Stream.Stream<BatchEvent.BatchEvent, Errors.BatchNotFound | Errors.StorageUnavailable> => {
  if (!isSettled(batch)) return orchestrator.events(caller, batch.id, after)
  if (after >= batch.lastSeq) return Stream.empty
  return orchestrator.events(caller, batch.id, after).pipe(Stream.takeUntil((event) => event.seq >= batch.lastSeq))
}
