/**
 * Slowdown trends: the windows sampled from a batch's event log, and the batch's slowdown status.
 * A window is sampled by one process only: the one whose conditional update moves the batch's
 * sampling cursor (the previous window must have lasted its full length). The same transaction
 * stores the window, judges it and, when the status changes, flips the batch's `slow` flag and
 * appends the event through the one event writer (`EventLog`), so a transition is appended once.
 *
 * @since 0.5.0
 */
import type { BatchConfig } from "@effect-batch/domain"
import { Ids, Slowdown } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { EventLog } from "./EventLog.js"
import { Num } from "./internal/Rows.js"
import { Tables } from "./Tables.js"

/**
 * What one sample found: the window it stored (none for the first sample of a batch, or after a gap
 * longer than two windows: the batch was paused or nobody sampled it), and the status change it
 * appended, with the event's sequence.
 *
 * @since 0.5.0
 */
export interface Sampled {
  readonly window: Option.Option<Slowdown.Window>
  readonly change: Option.Option<{ readonly change: Slowdown.Change; readonly seq: number }>
}

/**
 * A batch's stored trends.
 *
 * @since 0.5.0
 */
export interface StoredTrends {
  readonly slow: boolean
  readonly baseline: Option.Option<Slowdown.Baseline>
  /** the latest windows, oldest first */
  readonly windows: ReadonlyArray<Slowdown.Window>
}

const CursorRow = Schema.Struct({
  tenant: Ids.TenantId,
  from_ms: Schema.NullOr(Num),
  from_seq: Num,
  to_seq: Num,
  backlog: Num,
  slow: Schema.Boolean,
  trend_baseline: Schema.NullOr(Slowdown.Baseline)
})

const AggregateRow = Schema.Struct({ completed: Num, p95: Schema.NullOr(Num) })

const WindowRow = Schema.Struct({
  at_ms: Num,
  span_ms: Num,
  completed: Num,
  p95_ms: Schema.NullOr(Num),
  backlog: Num
})

const StatusRow = Schema.Struct({ slow: Schema.Boolean, trend_baseline: Schema.NullOr(Slowdown.Baseline) })

const toWindow = (row: typeof WindowRow.Type): Slowdown.Window => ({
  atMs: row.at_ms,
  spanMs: row.span_ms,
  completed: row.completed,
  p95Ms: row.p95_ms,
  backlog: row.backlog
})

const windowColumns = "at_ms::float8 AS at_ms, span_ms::float8 AS span_ms, completed, p95_ms, backlog"

/**
 * The trends repository.
 *
 * @since 0.5.0
 */
export class TrendRepo extends Effect.Service<TrendRepo>()("@effect-batch/TrendRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const eventLog = yield* EventLog
    const batches = sql(t.batches)
    const events = sql(t.events)
    const trends = sql(t.trends)
    const decodeCursor = Schema.decodeUnknown(Schema.Array(CursorRow))
    const decodeAggregate = Schema.decodeUnknown(Schema.Array(AggregateRow))
    const decodeWindows = Schema.decodeUnknown(Schema.Array(WindowRow))
    const decodeStatus = Schema.decodeUnknown(Schema.Array(StatusRow))
    const encodeBaseline = Schema.encode(Slowdown.Baseline)

    const windowsOf = (batchId: Ids.BatchId, where: Fragment, limit: number) =>
      sql`SELECT ${sql.literal(windowColumns)} FROM ${trends}
        WHERE batch_id = ${batchId}::uuid ${where} ORDER BY at_ms DESC LIMIT ${limit}`.pipe(
        Effect.flatMap(decodeWindows),
        Effect.map((rows) => rows.map(toWindow).reverse())
      )

    /** Establishes the baseline from the batch's first windows once they suffice. */
    const baselineFrom = (batchId: Ids.BatchId, config: BatchConfig.SlowdownConfig) =>
      sql`SELECT ${sql.literal(windowColumns)} FROM ${trends}
        WHERE batch_id = ${batchId}::uuid ORDER BY at_ms`.pipe(
        Effect.flatMap(decodeWindows),
        Effect.map((rows) => Slowdown.baselineOf(config, rows.map(toWindow)))
      )

    /**
     * Samples the window that ended at `now`, if the batch is running and its previous window has
     * lasted at least `config.window`; another process that sampled it first leaves nothing to do.
     */
    const sample = (input: {
      readonly batchId: Ids.BatchId
      readonly config: BatchConfig.SlowdownConfig
      readonly now: number
    }): Effect.Effect<Option.Option<Sampled>, SqlError> =>
      Effect.gen(function*() {
        const { batchId, config, now } = input
        const windowMs = Duration.toMillis(config.window)
        const claimed = yield* sql`
          UPDATE ${batches} b SET trend_at_ms = ${now}, trend_seq = b.seq
          FROM (SELECT id, trend_at_ms, trend_seq FROM ${batches} WHERE id = ${batchId}::uuid FOR UPDATE) old
          WHERE b.id = old.id AND b.state_tag = 'Running'
            AND (old.trend_at_ms IS NULL OR old.trend_at_ms <= ${now - windowMs})
          RETURNING b.tenant, old.trend_at_ms::float8 AS from_ms, old.trend_seq AS from_seq, b.seq AS to_seq,
            (b.queued + b.leased)::int AS backlog, b.slow, b.trend_baseline`.pipe(Effect.flatMap(decodeCursor))
        const cursor = claimed[0]
        if (cursor === undefined) return Option.none()
        if (cursor.from_ms === null || now - cursor.from_ms > 2 * windowMs) {
          return Option.some<Sampled>({ window: Option.none(), change: Option.none() })
        }
        const aggregate = yield* sql`
          SELECT (count(*) FILTER (WHERE tag = ANY(${Slowdown.outcomeTags}::text[])))::int AS completed,
            (percentile_cont(0.95) WITHIN GROUP (ORDER BY (payload->>'durationMs')::float8)
              FILTER (WHERE tag = 'ItemSucceeded'))::float8 AS p95
          FROM ${events}
          WHERE batch_id = ${batchId}::uuid AND seq > ${cursor.from_seq} AND seq <= ${cursor.to_seq}`.pipe(
          Effect.flatMap(decodeAggregate)
        )
        const window: Slowdown.Window = {
          atMs: now,
          spanMs: now - cursor.from_ms,
          completed: aggregate[0]?.completed ?? 0,
          p95Ms: aggregate[0]?.p95 ?? null,
          backlog: cursor.backlog
        }
        yield* sql`INSERT INTO ${trends} (batch_id, tenant, at_ms, span_ms, completed, p95_ms, backlog)
          VALUES (${batchId}::uuid, ${cursor.tenant}, ${window.atMs}, ${window.spanMs}, ${window.completed},
            ${window.p95Ms}, ${window.backlog})
          ON CONFLICT DO NOTHING`
        const stored = Option.fromNullable(cursor.trend_baseline)
        const baseline = Option.isSome(stored) ? stored : yield* baselineFrom(batchId, config)
        if (Option.isNone(baseline)) {
          return Option.some<Sampled>({ window: Option.some(window), change: Option.none() })
        }
        if (Option.isNone(stored)) {
          const encoded = yield* encodeBaseline(baseline.value)
          yield* sql`UPDATE ${batches} SET trend_baseline = ${JSON.stringify(encoded)}::text::jsonb
            WHERE id = ${batchId}::uuid`
        }
        const recent = yield* windowsOf(batchId, sql`AND at_ms > ${baseline.value.untilMs}`, config.consecutive)
        const change = Slowdown.judge(config, baseline.value, recent, cursor.slow)
        if (Option.isNone(change)) {
          return Option.some<Sampled>({ window: Option.some(window), change: Option.none() })
        }
        yield* sql`UPDATE ${batches} SET slow = ${change.value._tag === "SlowdownDetected"}
          WHERE id = ${batchId}::uuid`
        const seq = yield* eventLog.append(batchId, [{ _tag: change.value._tag, ...change.value.figures }], now)
        return Option.some<Sampled>({ window: Option.some(window), change: Option.some({ change: change.value, seq }) })
      }).pipe(
        sql.withTransaction,
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("TrendRepo.sample", { attributes: { batchId: input.batchId } })
      )

    /** A batch's status and its latest `limit` windows, for its tenant. */
    const get = (
      tenant: Ids.TenantId,
      batchId: Ids.BatchId,
      limit: number
    ): Effect.Effect<Option.Option<StoredTrends>, SqlError> =>
      Effect.gen(function*() {
        const status = yield* sql`SELECT slow, trend_baseline FROM ${batches}
          WHERE id = ${batchId}::uuid AND tenant = ${tenant}`.pipe(Effect.flatMap(decodeStatus))
        const row = status[0]
        if (row === undefined) return Option.none()
        const windows = yield* windowsOf(batchId, sql`AND tenant = ${tenant}`, limit)
        return Option.some({ slow: row.slow, baseline: Option.fromNullable(row.trend_baseline), windows })
      }).pipe(Effect.catchTag("ParseError", Effect.die), Effect.withSpan("TrendRepo.get", { attributes: { batchId } }))

    return { sample, get } as const
  }),
  dependencies: [EventLog.Default]
}) {}
