/**
 * Aggregates for operations: health checks and Prometheus metrics. Every query is an aggregate over
 * the batches' counters or an indexed range of the items table, cheap enough to scrape often.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { countColumns, Num } from "./internal/Rows.js"
import { Tables } from "./Tables.js"

/**
 * How many batches are in one state.
 *
 * @since 0.1.0
 */
export interface BatchStateCount {
  readonly state: string
  readonly count: number
}

/**
 * How many items are in each state, over the batches that are in `batchState`.
 *
 * @since 0.1.0
 */
export interface ItemStateCounts {
  readonly batchState: string
  readonly queued: number
  readonly running: number
  readonly retryScheduled: number
  readonly succeeded: number
  readonly failed: number
  readonly quarantined: number
  readonly skipped: number
}

/**
 * How far claiming lags behind: work that could run but has not been claimed.
 *
 * @since 0.1.0
 */
export interface ClaimLag {
  /** items queued in running batches */
  readonly queuedInRunningBatches: number
  /** how long the oldest due retry of a running batch has waited to be claimed (0 when none) */
  readonly overdueRetryMs: number
  /** how long the oldest expired lease has waited to be reclaimed (0 when none) */
  readonly expiredLeaseMs: number
}

const StateCountRow = Schema.Struct({ state: Schema.String, count: Num })
const ItemCountsRow = Schema.Struct({
  batch_state: Schema.String,
  ...countColumns
})
const LagRow = Schema.Struct({
  queued: Num,
  oldest_retry: Schema.NullOr(Num),
  oldest_lease: Schema.NullOr(Num)
})

/**
 * Aggregates over every tenant, for operators (not scoped by tenant: do not expose per-tenant data).
 *
 * @since 0.1.0
 */
export class StatsReader extends Effect.Service<StatsReader>()("@effect-batch/StatsReader", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const batches = sql(t.batches)
    const items = sql(t.items)
    const shares = sql(t.shares)

    /** A round trip to the database (`SELECT 1`). */
    const ping: Effect.Effect<void, SqlError> = sql`SELECT 1 AS one`.pipe(
      Effect.asVoid,
      Effect.withSpan("StatsReader.ping")
    )

    /** The number of batches per state. */
    const batchesByState: Effect.Effect<ReadonlyArray<BatchStateCount>, SqlError> =
      sql`SELECT state_tag AS state, count(*)::int AS count FROM ${batches} GROUP BY state_tag ORDER BY state_tag`
        .pipe(
          Effect.flatMap(Schema.decodeUnknown(Schema.Array(StateCountRow))),
          Effect.catchTag("ParseError", Effect.die),
          Effect.withSpan("StatsReader.batchesByState")
        )

    /** The items per state, summed over the batches of each batch state (from the batches' counters). */
    const itemsByState: Effect.Effect<ReadonlyArray<ItemStateCounts>, SqlError> = sql`
      SELECT state_tag AS batch_state, coalesce(sum(queued), 0)::int8 AS queued,
        coalesce(sum(leased), 0)::int8 AS leased,
        coalesce(sum(running), 0)::int8 AS running, coalesce(sum(retry_scheduled), 0)::int8 AS retry_scheduled,
        coalesce(sum(succeeded), 0)::int8 AS succeeded, coalesce(sum(failed), 0)::int8 AS failed,
        coalesce(sum(quarantined), 0)::int8 AS quarantined, coalesce(sum(skipped), 0)::int8 AS skipped
      FROM ${batches} GROUP BY state_tag ORDER BY state_tag`.pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(ItemCountsRow))),
      Effect.map((rows) =>
        rows.map((row): ItemStateCounts => ({
          batchState: row.batch_state,
          // leased ahead but not started: still waiting
          queued: row.queued + row.leased,
          running: row.running,
          retryScheduled: row.retry_scheduled,
          succeeded: row.succeeded,
          failed: row.failed,
          quarantined: row.quarantined,
          skipped: row.skipped
        }))
      ),
      Effect.catchTag("ParseError", Effect.die),
      Effect.withSpan("StatsReader.itemsByState")
    )

    /** Work that could be claimed at `now` but is not yet. */
    const claimLag = (now: number): Effect.Effect<ClaimLag, SqlError> =>
      sql`SELECT
        (SELECT coalesce(sum(queued + leased), 0)::int8 FROM ${batches} WHERE state_tag = 'Running') AS queued,
        (SELECT min(i.due_at_ms)::float8 FROM ${items} i JOIN ${batches} b ON b.id = i.batch_id
          WHERE i.state = 'retry' AND i.due_at_ms <= ${now} AND b.state_tag = 'Running') AS oldest_retry,
        (SELECT min(expires_at_ms)::float8 FROM ${shares} WHERE expires_at_ms < ${now}) AS oldest_lease`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(LagRow))),
        Effect.map((rows): ClaimLag => {
          const row = rows[0]
          const age = (at: number | null | undefined) => at === null || at === undefined ? 0 : Math.max(0, now - at)
          return {
            queuedInRunningBatches: row?.queued ?? 0,
            overdueRetryMs: age(row?.oldest_retry),
            expiredLeaseMs: age(row?.oldest_lease)
          }
        }),
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("StatsReader.claimLag")
      )

    /** Running or paused batches that slowdown detection found slow (and that have not recovered). */
    const slowBatches: Effect.Effect<number, SqlError> = sql`SELECT count(*)::int AS count FROM ${batches}
      WHERE slow AND state_tag IN ('Running', 'Paused')`.pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({ count: Num })))),
      Effect.map((rows) => rows[0]?.count ?? 0),
      Effect.catchTag("ParseError", Effect.die),
      Effect.withSpan("StatsReader.slowBatches")
    )

    return { ping, batchesByState, itemsByState, claimLag, slowBatches } as const
  })
}) {}
