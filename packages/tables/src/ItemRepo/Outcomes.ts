/**
 * What the group commit and the reclaim of lost leases both send: outcomes and their events as the
 * rows of a hot statement, and the reading of a statement's one JSON result.
 */
import type { BatchEvent } from "@effect-batch/domain"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type EncodedDraft, encodeDraftFast } from "../internal/Rows.js"
import type { EventRow, OutcomeRow, StartRow } from "../sql/Contract.js"

/**
 * The recorded outcome of one attempt.
 *
 * @since 0.1.0
 */
export interface Outcome {
  readonly key: string
  /** the fencing token from the claim */
  readonly attempt: number
  readonly state: "succeeded" | "retry" | "failed" | "quarantined"
  /** the encoded output, for `succeeded` */
  readonly output?: unknown
  /** the encoded `ItemError`, for failures */
  readonly error?: unknown
  /** when the next attempt is due, for `retry` */
  readonly dueAtMs?: number | undefined
  /** attempts consumed so far, this one included when it counts */
  readonly consumed: number
  readonly throttles: number
  readonly roundsFailed: number
  readonly durationMs: number
  readonly reason?: string | undefined
  /** whether this outcome counts toward the circuit breaker's consecutive failures */
  readonly countsAsFailure: boolean
  readonly events: ReadonlyArray<BatchEvent.Draft>
}
/** An event row of a statement, belonging to the entry `kind` / `idx`. */
export const eventRow = (kind: EventRow["kind"], idx: number, ord: number, encoded: EncodedDraft): EventRow => ({
  kind,
  idx,
  ord,
  tag: encoded.tag,
  payload: encoded.payload
})

const outcomeRow = (idx: number, o: Outcome, start: StartRow | undefined): OutcomeRow => ({
  idx,
  key: o.key,
  attempt: o.attempt,
  state: o.state,
  output: o.output ?? null,
  error: o.error ?? null,
  due_at_ms: o.dueAtMs ?? null,
  consumed: o.consumed,
  throttles: o.throttles,
  rounds_failed: o.roundsFailed,
  duration_ms: o.durationMs,
  reason: o.reason ?? null,
  fail: o.countsAsFailure,
  sidx: start?.idx ?? null,
  at_ms: start?.at_ms ?? null
})

/** Adds an outcome and its events to the rows of a statement. */
export const pushOutcome = (
  outcomes: Array<OutcomeRow>,
  events: Array<EventRow>,
  outcome: Outcome,
  start: StartRow | undefined
) => {
  const idx = outcomes.length
  outcomes.push(outcomeRow(idx, outcome, start))
  for (const draft of outcome.events) events.push(eventRow("o", idx, events.length, encodeDraftFast(draft)))
}

/**
 * Decodes the one JSON result (`r`) of a hot statement; NULL (the batch does not exist) is `None`, a
 * result of another shape a defect.
 */
export const decodeResult = <A>(decode: (u: unknown) => Effect.Effect<A | null, unknown>) =>
(
  rows: ReadonlyArray<{ readonly r: unknown }>
): Effect.Effect<Option.Option<A>> => decode(rows[0]?.r ?? null).pipe(Effect.orDie, Effect.map(Option.fromNullable))
