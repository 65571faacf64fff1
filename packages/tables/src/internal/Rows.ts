/**
 * Row schemas and conversions between stored rows and domain values.
 */
import { BatchConfig, BatchEvent, BatchState, ItemCounts, ItemError, ItemState } from "@effect-batch/domain"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Struct from "effect/Struct"

/** A number that `pg` may return as a string (int8, numeric) and PGlite as a number. */
export const Num = Schema.Union(Schema.Number, Schema.NumberFromString)

/** The stored form of an item's state. */
export const ItemStateColumn = Schema.Literal(
  "queued",
  "leased",
  "running",
  "retry",
  "succeeded",
  "failed",
  "quarantined",
  "skipped"
)
export type ItemStateColumn = typeof ItemStateColumn.Type

/** The stored states of each item state: an item leased ahead of execution is still `Queued`. */
export const itemStateColumns: Record<ItemState.Tag, ReadonlyArray<ItemStateColumn>> = {
  Queued: ["queued", "leased"],
  Running: ["running"],
  RetryScheduled: ["retry"],
  Succeeded: ["succeeded"],
  Failed: ["failed"],
  Quarantined: ["quarantined"],
  Skipped: ["skipped"]
}

export const itemStateTag: Record<ItemStateColumn, ItemState.Tag> = {
  queued: "Queued",
  leased: "Queued",
  running: "Running",
  retry: "RetryScheduled",
  succeeded: "Succeeded",
  failed: "Failed",
  quarantined: "Quarantined",
  skipped: "Skipped"
}

/** The per-state item counters of a batch row, as columns. */
export const countColumns = {
  queued: Num,
  leased: Num,
  running: Num,
  retry_scheduled: Num,
  succeeded: Num,
  failed: Num,
  quarantined: Num,
  skipped: Num
}

export const BatchRow = Schema.Struct({
  id: Schema.String,
  tenant: Schema.String,
  workflow: Schema.String,
  idempotency_key: Schema.NullOr(Schema.String),
  state: Schema.Unknown,
  config: Schema.Unknown,
  round: Num,
  version: Num,
  seq: Num,
  total: Num,
  ...countColumns,
  consecutive_failures: Num,
  hook_state: Schema.String,
  created_at_ms: Num,
  updated_at_ms: Num
})
export type BatchRow = typeof BatchRow.Type

/** The columns selected for a `BatchRow`. */
export const batchColumns =
  `id::text AS id, tenant, workflow, idempotency_key, state, config, round, version, seq, total,
  queued, leased, running, retry_scheduled, succeeded, failed, quarantined, skipped, consecutive_failures, hook_state,
  created_at_ms::float8 AS created_at_ms, updated_at_ms::float8 AS updated_at_ms`

export const countsOf = (row: {
  readonly queued: number
  readonly leased: number
  readonly running: number
  readonly retry_scheduled: number
  readonly succeeded: number
  readonly failed: number
  readonly quarantined: number
  readonly skipped: number
}): ItemCounts.ItemCounts =>
  ItemCounts.ItemCounts.make({
    // leased ahead but not started: still waiting, as far as anyone outside the runner can tell
    queued: row.queued + row.leased,
    running: row.running,
    retryScheduled: row.retry_scheduled,
    succeeded: row.succeeded,
    failed: row.failed,
    quarantined: row.quarantined,
    skipped: row.skipped
  }, true)

export const decodeState = Schema.decodeUnknown(BatchState.BatchState)
export const encodeState = Schema.encode(BatchState.BatchState)
export const decodeConfig = Schema.decodeUnknown(BatchConfig.BatchConfig)
export const encodeConfig = Schema.encode(BatchConfig.BatchConfig)
export const decodeItemError = Schema.decodeUnknown(ItemError.ItemError)
export const encodeItemError = Schema.encode(ItemError.ItemError)

const decodeEvent = Schema.decodeUnknown(BatchEvent.BatchEvent)

/** An event ready to store: its tag and its JSON payload (without batch id, sequence and time). */
export interface EncodedDraft {
  readonly tag: string
  readonly payload: Record<string, unknown>
}

/**
 * The events without the fields the log fills in (batch id, sequence, time): a draft is encoded as
 * it is, with no placeholders to validate and no time to format (on the hot path, once per outcome).
 */
const DraftEvent = Schema.Union(
  ...BatchEvent.BatchEvent.members.map((member) => Schema.Struct(Struct.omit(member.fields, "batchId", "seq", "at")))
)
const encodeDraftEvent = Schema.encode(DraftEvent)

const toEncodedDraft = (encoded: typeof DraftEvent.Encoded): EncodedDraft => {
  const { _tag, ...payload } = encoded
  return { tag: _tag, payload }
}

/** Encodes an event draft to its stored payload. */
export const encodeDraft = (draft: BatchEvent.Draft) => encodeDraftEvent(draft).pipe(Effect.map(toEncodedDraft))

const encodeDraftEventSync = Schema.encodeSync(DraftEvent)

/** Encodes an event draft to its stored payload; throws on an invalid draft (a defect in the caller). */
export const encodeDraftSync = (draft: BatchEvent.Draft): EncodedDraft => toEncodedDraft(encodeDraftEventSync(draft))

export const EventRow = Schema.Struct({
  batch_id: Schema.String,
  seq: Num,
  tag: Schema.String,
  payload: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  at_ms: Num
})
export type EventRow = typeof EventRow.Type

/** The columns selected for an `EventRow`. */
export const eventColumns = "batch_id::text AS batch_id, seq, tag, payload, at_ms::float8 AS at_ms"

/** Decodes a stored event. */
export const eventFromRow = (row: EventRow) =>
  decodeEvent({
    ...row.payload,
    _tag: row.tag,
    batchId: row.batch_id,
    seq: row.seq,
    at: new Date(row.at_ms).toISOString()
  })

/**
 * Encodes an event draft like `encodeDraftSync`, with the two events of every attempt (`ItemStarted`,
 * `ItemSucceeded`: strings and numbers that encode to themselves) built directly; the drafts are
 * values the runner made, already valid. Checked against the schema encoder in the tests.
 */
export const encodeDraftFast = (draft: BatchEvent.Draft): EncodedDraft => {
  switch (draft._tag) {
    case "ItemStarted":
      return { tag: draft._tag, payload: { itemKey: draft.itemKey, attempt: draft.attempt, round: draft.round } }
    case "ItemSucceeded":
      return {
        tag: draft._tag,
        payload: { itemKey: draft.itemKey, attempt: draft.attempt, durationMs: draft.durationMs }
      }
    default:
      return encodeDraftSync(draft)
  }
}
