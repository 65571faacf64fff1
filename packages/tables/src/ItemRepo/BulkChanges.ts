/**
 * The bulk changes that commands make to a batch's items (skip what is left, release leases,
 * re-queue), and the reads they decide with. Each runs in the command's transaction, after the batch
 * row is locked; each statement also locks the batch row itself before it reaches an item row (the
 * `lock` subquery is evaluated before the item scan that needs its value), so that it keeps the one
 * lock order of the hot statements whoever calls it.
 */
import type { Ids } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { EventLog } from "../EventLog.js"
import { countsOf } from "../internal/Rows.js"
import type { TableNames } from "../Tables.js"

const decodeKeys = Schema.decodeUnknown(Schema.Array(Schema.Struct({ key: ItemKey })))
const decodeRequeued = Schema.decodeUnknown(Schema.Array(Schema.Struct({ key: ItemKey, prev: Schema.String })))

/**
 * The settled states an item can be re-queued from.
 *
 * @since 0.3.0
 */
export type Requeueable = "failed" | "quarantined" | "succeeded"

export const make = (deps: {
  readonly sql: SqlClient.SqlClient
  readonly tables: TableNames
  readonly eventLog: EventLog
}) => {
  const { eventLog, sql } = deps
  const batches = sql(deps.tables.batches)
  const items = sql(deps.tables.items)
  /** The batch row, locked: item rows are reached through `batch_id = (SELECT id FROM lock)`. */
  const lock = (batchId: Ids.BatchId) => sql`lock AS (SELECT id FROM ${batches} WHERE id = ${batchId}::uuid FOR UPDATE)`
  const keyFilter = (keys: ReadonlyArray<string> | undefined) =>
    keys === undefined
      ? sql``
      : sql`AND key IN (SELECT jsonb_array_elements_text(${JSON.stringify(keys)}::text::jsonb))`

  /**
   * Marks every unsettled item of a batch `Skipped` (abort or cancel), with an `ItemSkipped` event
   * each. Run it in the transaction that moves the batch out of `Running`, after the batch row is
   * locked, so that no claim or commit races it.
   */
  const skipRemaining = (options: {
    readonly batchId: Ids.BatchId
    readonly reason: "aborted" | "cancelled"
    readonly now: number
  }) =>
    Effect.gen(function*() {
      const skipped = yield* sql`
      WITH ${lock(options.batchId)}, upd AS (
        UPDATE ${items} SET state = 'skipped', reason = ${options.reason}, lease_owner = NULL,
          due_at_ms = NULL, finished_at_ms = ${options.now}
        WHERE batch_id = (SELECT id FROM lock) AND state IN ('queued', 'leased', 'retry', 'running')
        RETURNING key, ordinal
      ), agg AS (
        SELECT count(*)::int AS n FROM upd
      ), ub AS (
        UPDATE ${batches} SET skipped = skipped + agg.n, queued = 0, leased = 0, running = 0,
          retry_scheduled = 0, updated_at_ms = ${options.now}
        FROM agg WHERE id = ${options.batchId}::uuid
      )
      SELECT key FROM upd ORDER BY ordinal`.pipe(Effect.flatMap(decodeKeys), Effect.orDie)
      yield* eventLog.append(
        options.batchId,
        skipped.map(({ key }) => ({ _tag: "ItemSkipped", itemKey: key, reason: options.reason })),
        options.now
      )
      return skipped.length
    }).pipe(Effect.withSpan("ItemRepo.skipRemaining"))

  /**
   * Returns every leased-but-not-started item of a batch to the queue, whichever process leased it:
   * run it in the transaction that pauses the batch, so that a process that has not seen the pause
   * yet cannot record a start for them.
   */
  const releaseLeased = (batchId: Ids.BatchId) =>
    sql<{ n: number }>`
    WITH ${lock(batchId)}, upd AS (
      UPDATE ${items} SET state = CASE WHEN due_at_ms IS NULL THEN 'queued' ELSE 'retry' END, lease_owner = NULL
      WHERE batch_id = (SELECT id FROM lock) AND state = 'leased'
      RETURNING ordinal, due_at_ms IS NULL AS fresh
    ), agg AS (
      SELECT count(*)::int AS n, (count(*) FILTER (WHERE fresh))::int AS fresh,
        min(ordinal) FILTER (WHERE fresh) AS lowest
      FROM upd
    ), ub AS (
      UPDATE ${batches} SET leased = leased - agg.n, queued = queued + agg.fresh,
        retry_scheduled = retry_scheduled + agg.n - agg.fresh,
        claim_cursor = LEAST(claim_cursor, COALESCE(agg.lowest - 1, claim_cursor))
      FROM agg WHERE id = ${batchId}::uuid AND agg.n > 0
    )
    SELECT n FROM agg`.pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0)),
      Effect.withSpan("ItemRepo.releaseLeased", { attributes: { batchId } })
    )

  /** The keys of a batch's items in a state, in key order (at most `limit`), and how many there are. */
  const keysInState = (options: {
    readonly batchId: Ids.BatchId
    readonly state: "failed" | "quarantined"
    readonly limit: number
  }) =>
    Effect.all({
      keys: sql<{ key: string }>`SELECT key FROM ${items}
      WHERE batch_id = ${options.batchId}::uuid AND state = ${options.state}
      ORDER BY key LIMIT ${options.limit}`.pipe(Effect.map((rows) => rows.map((r) => r.key))),
      count: sql<{ n: number }>`SELECT count(*)::int AS n FROM ${items}
      WHERE batch_id = ${options.batchId}::uuid AND state = ${options.state}`.pipe(
        Effect.map((rows) => rows[0]?.n ?? 0)
      )
    })

  /**
   * Re-queues settled items in the states `from` (failed, released quarantined, or — for a re-run —
   * succeeded; all of them, or the given keys) for round `round`, with fresh attempts, moving the
   * batch's counters out of each state, and an `ItemReleased` event per released quarantined item.
   * Run it with the batch row locked. Returns how many were re-queued.
   */
  const requeue = (options: {
    readonly batchId: Ids.BatchId
    readonly from: Requeueable | ReadonlyArray<Requeueable>
    readonly keys?: ReadonlyArray<string> | undefined
    readonly round: number
    readonly actor: string
    readonly now: number
  }) =>
    Effect.gen(function*() {
      const from: ReadonlyArray<Requeueable> = typeof options.from === "string" ? [options.from] : options.from
      const requeued = yield* sql`
      WITH ${lock(options.batchId)}, target AS (
        SELECT ctid AS tid, state AS prev FROM ${items}
        WHERE batch_id = (SELECT id FROM lock)
          AND state IN (SELECT jsonb_array_elements_text(${JSON.stringify(from)}::text::jsonb))
          ${keyFilter(options.keys)}
      ), upd AS (
        UPDATE ${items} i SET state = 'queued', round = ${options.round}, consumed = 0, throttles = 0,
          due_at_ms = NULL, reason = NULL,
          rounds_failed = CASE target.prev WHEN 'failed' THEN i.rounds_failed + 1
            WHEN 'quarantined' THEN 0 ELSE i.rounds_failed END
        FROM target WHERE i.ctid = target.tid
        RETURNING i.key, i.ordinal, target.prev
      ), agg AS (
        SELECT count(*)::int AS n, min(ordinal) AS lowest,
          (count(*) FILTER (WHERE prev = 'failed'))::int AS failed,
          (count(*) FILTER (WHERE prev = 'quarantined'))::int AS quarantined,
          (count(*) FILTER (WHERE prev = 'succeeded'))::int AS succeeded
        FROM upd
      ), ub AS (
        UPDATE ${batches} b SET queued = b.queued + agg.n,
          claim_cursor = LEAST(b.claim_cursor, COALESCE(agg.lowest - 1, b.claim_cursor)),
          failed = b.failed - agg.failed, quarantined = b.quarantined - agg.quarantined,
          succeeded = b.succeeded - agg.succeeded,
          consecutive_failures = 0, updated_at_ms = ${options.now}
        FROM agg WHERE b.id = ${options.batchId}::uuid
      )
      SELECT key, prev FROM upd ORDER BY ordinal`.pipe(Effect.flatMap(decodeRequeued), Effect.orDie)
      const released = requeued.filter((r) => r.prev === "quarantined")
      if (released.length > 0) {
        yield* eventLog.append(
          options.batchId,
          released.map(({ key }) => ({ _tag: "ItemReleased", itemKey: key, actor: options.actor })),
          options.now
        )
      }
      return requeued.length
    }).pipe(Effect.withSpan("ItemRepo.requeue"))

  /** How many of the given items are settled in one of the states `from` (what `requeue` would take). */
  const countIn = (options: {
    readonly batchId: Ids.BatchId
    readonly from: ReadonlyArray<Requeueable>
    readonly keys: ReadonlyArray<string>
  }) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM ${items}
      WHERE batch_id = ${options.batchId}::uuid
        AND state IN (SELECT jsonb_array_elements_text(${JSON.stringify(options.from)}::text::jsonb))
        ${keyFilter(options.keys)}`.pipe(Effect.map((rows) => rows[0]?.n ?? 0))

  /** Counts a batch's items per state from the item rows themselves. */
  const countFromItems = (batchId: Ids.BatchId) =>
    sql<{ state: string; n: number }>`SELECT state, count(*)::int AS n FROM ${items}
    WHERE batch_id = ${batchId}::uuid GROUP BY state`.pipe(
      Effect.map((rows) => {
        const by = new Map(rows.map((r) => [r.state, r.n]))
        return countsOf({
          queued: by.get("queued") ?? 0,
          leased: by.get("leased") ?? 0,
          running: by.get("running") ?? 0,
          retry_scheduled: by.get("retry") ?? 0,
          succeeded: by.get("succeeded") ?? 0,
          failed: by.get("failed") ?? 0,
          quarantined: by.get("quarantined") ?? 0,
          skipped: by.get("skipped") ?? 0
        })
      })
    )

  return { skipRemaining, releaseLeased, keysInState, requeue, countIn, countFromItems } as const
}
