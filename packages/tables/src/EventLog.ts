/**
 * The per-batch event log: the source of truth for replays (SSE, RPC, CLI).
 *
 * @since 0.1.0
 */
import type { BatchEvent, Ids } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { encodeDraft, eventColumns, eventFromRow, EventRow } from "./internal/Rows.js"
import type { EventRow as EventRowIn } from "./sql/Contract.js"
import { Tables } from "./Tables.js"

/**
 * The event log.
 *
 * @since 0.1.0
 */
export class EventLog extends Effect.Service<EventLog>()("@effect-batch/EventLog", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const batches = sql(t.batches)
    const events = sql(t.events)
    const appendFn = sql(`${t.prefix}append_events`)
    const decodeRows = Schema.decodeUnknown(Schema.Array(EventRow))

    /**
     * Appends events to a batch through the one sequence allocator (`<prefix>append_events`): the
     * batch's sequence is bumped in the same statement, so sequences stay gapless and unique under
     * concurrent writers. Returns the sequence of the last event.
     */
    const append = (
      batchId: Ids.BatchId,
      drafts: ReadonlyArray<BatchEvent.Draft>,
      now: number
    ): Effect.Effect<number, SqlError> =>
      Effect.forEach(drafts, (draft) => Effect.orDie(encodeDraft(draft))).pipe(
        Effect.flatMap((encoded) => {
          const rows: Array<EventRowIn> = encoded.map((e, ord) => ({
            kind: "x",
            idx: 0,
            ord,
            tag: e.tag,
            payload: e.payload
          }))
          return sql<{ seq: number }>`SELECT ${appendFn}(${batchId}::uuid, ${now}::bigint,
            ${JSON.stringify(rows)}::text::jsonb, NULL, NULL, NULL) AS seq`
        }),
        Effect.map((rows) => Number(rows[0]?.seq ?? 0)),
        Effect.withSpan("EventLog.append", { attributes: { batchId, events: drafts.length } })
      )

    /** Reads up to `limit` events with a sequence above `after`, in order. */
    const readAfter = (
      batchId: Ids.BatchId,
      after: number,
      limit: number
    ): Effect.Effect<ReadonlyArray<BatchEvent.BatchEvent>, SqlError> =>
      sql`SELECT ${sql.literal(eventColumns)} FROM ${events}
        WHERE batch_id = ${batchId}::uuid AND seq > ${after} ORDER BY seq LIMIT ${limit}`.pipe(
        Effect.flatMap(decodeRows),
        Effect.flatMap(Effect.forEach(eventFromRow)),
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("EventLog.readAfter", { attributes: { batchId, after } })
      )

    /** Every stored event after `after`, read in pages; ends at the last stored event. */
    const stream = (
      batchId: Ids.BatchId,
      after: number,
      pageSize = 1_000
    ): Stream.Stream<BatchEvent.BatchEvent, SqlError> =>
      Stream.paginateChunkEffect(after, (cursor) =>
        readAfter(batchId, cursor, pageSize).pipe(
          Effect.map((page) => {
            const last = page[page.length - 1]
            return [
              Chunk.fromIterable(page),
              page.length < pageSize || last === undefined ? Option.none() : Option.some(last.seq)
            ] as const
          })
        ))

    /** The sequence of a batch's last event. */
    const lastSeq = (batchId: Ids.BatchId) =>
      sql<{ seq: number }>`SELECT seq FROM ${batches} WHERE id = ${batchId}::uuid`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]?.seq))
      )

    return { append, readAfter, stream, lastSeq } as const
  })
}) {}
