/**
 * The bulk changes that commands make to a batch's items (skip what is left, release leases,
 * re-queue), and the reads they decide with. Each runs in the command's transaction, after the batch
 * row is locked.
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

export const make = (deps: {
  readonly sql: SqlClient.SqlClient
  readonly tables: TableNames
  readonly eventLog: EventLog
}) => {
  const { eventLog, sql } = deps
  const batches = sql(deps.tables.batches)
  const items = sql(deps.tables.items)

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
      WITH upd AS (
        UPDATE ${items} SET state = 'skipped', reason = ${options.reason}, lease_owner = NULL,
          due_at_ms = NULL, finished_at_ms = ${options.now}
        WHERE batch_id = ${options.batchId}::uuid AND state IN ('queued', 'leased', 'retry', 'running')
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
    WITH upd AS (
      UPDATE ${items} SET state = CASE WHEN due_at_ms IS NULL THEN 'queued' ELSE 'retry' END, lease_owner = NULL
      WHERE batch_id = ${batchId}::uuid AND state = 'leased'
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
   * Re-queues failed (or released quarantined) items for round `round`, with fresh attempts, and an
   * `ItemReleased` event per released quarantined item. Run it with the batch row locked. Returns
   * how many were re-queued.
   */
  const requeue = (options: {
    readonly batchId: Ids.BatchId
    readonly from: "failed" | "quarantined" | "succeeded"
    readonly keys?: ReadonlyArray<string> | undefined
    readonly round: number
    readonly actor: string
    readonly now: number
  }) =>
    Effect.gen(function*() {
      const requeued = yield* sql`
      WITH upd AS (
        UPDATE ${items} SET state = 'queued', round = ${options.round}, consumed = 0, throttles = 0,
          due_at_ms = NULL, reason = NULL,
          rounds_failed = ${
        options.from === "failed"
          ? sql`rounds_failed + 1`
          : options.from === "quarantined"
          ? sql`0`
          : sql`rounds_failed`
      }
        WHERE batch_id = ${options.batchId}::uuid AND state = ${options.from}
          ${
        options.keys === undefined
          ? sql``
          : sql`AND key IN (SELECT jsonb_array_elements_text(${JSON.stringify(options.keys)}::text::jsonb))`
      }
        RETURNING key, ordinal
      ), agg AS (
        SELECT count(*)::int AS n, min(ordinal) AS lowest FROM upd
      ), ub AS (
        UPDATE ${batches} SET queued = queued + agg.n,
          claim_cursor = LEAST(claim_cursor, COALESCE(agg.lowest - 1, claim_cursor)),
          ${
        options.from === "failed"
          ? sql`failed = failed - agg.n`
          : options.from === "quarantined"
          ? sql`quarantined = quarantined - agg.n`
          : sql`succeeded = succeeded - agg.n`
      },
          consecutive_failures = 0, updated_at_ms = ${options.now}
        FROM agg WHERE id = ${options.batchId}::uuid
      )
      SELECT key FROM upd ORDER BY ordinal`.pipe(Effect.flatMap(decodeKeys), Effect.orDie)
      if (options.from === "quarantined") {
        yield* eventLog.append(
          options.batchId,
          requeued.map(({ key }) => ({ _tag: "ItemReleased", itemKey: key, actor: options.actor })),
          options.now
        )
      }
      return requeued.length
    }).pipe(Effect.withSpan("ItemRepo.requeue"))

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

  return { skipRemaining, releaseLeased, keysInState, requeue, countFromItems } as const
}
