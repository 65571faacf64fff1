/**
 * Following a batch's events from a sequence number, for the SSE route and `StreamProgress`.
 *
 * @since 0.1.0
 */
import { Errors } from "@effect-batch/domain"
import type { BatchEvent, BatchState, Views } from "@effect-batch/domain"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { BatchOrchestrator, Caller } from "../BatchOrchestrator.js"

const settled: ReadonlyArray<BatchState.Tag> = ["Completed", "Failed", "Cancelled", "Rejected"]

/**
 * Whether a batch has settled for good (until someone redrives it): its event stream has an end.
 *
 * @since 0.1.0
 */
export const isSettled = (batch: Views.BatchView): boolean => settled.includes(batch.state._tag)

/**
 * Refuses to follow from a sequence the batch has not reached: no event would ever come.
 *
 * @since 0.1.0
 */
export const checkAfter = (batch: Views.BatchView, after: number): Effect.Effect<void, Errors.InvalidRequest> =>
  after > batch.lastSeq
    ? Effect.fail(
      new Errors.InvalidRequest({ message: `sequence ${after} is beyond the batch's last event (${batch.lastSeq})` })
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
): Stream.Stream<BatchEvent.BatchEvent, Errors.BatchNotFound | SqlError> => {
  if (!isSettled(batch)) return orchestrator.events(caller, batch.id, after)
  if (after >= batch.lastSeq) return Stream.empty
  return orchestrator.events(caller, batch.id, after).pipe(Stream.takeUntil((event) => event.seq >= batch.lastSeq))
}
