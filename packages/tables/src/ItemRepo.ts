/**
 * Items: claiming with leases, group commit of outcomes fenced by lease owner and attempt, lease
 * upkeep, listings and results.
 *
 * @since 0.1.0
 */
import type { Ids } from "@effect-batch/domain"
import { BatchEvent } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { countColumns, countsOf, encodeDraftSync, Num } from "./internal/Rows.js"
import { Tables } from "./Tables.js"

/**
 * An item claimed by a worker. `attempt` is the fencing token of the lease: an outcome is recorded
 * only with the same owner and attempt.
 *
 * @since 0.1.0
 */
export const ClaimedItem = Schema.Struct({
  key: Schema.String,
  ordinal: Num,
  input: Schema.Unknown,
  attempt: Num,
  consumed: Num,
  throttles: Num,
  round: Num,
  rounds_failed: Num
})
/** @since 0.1.0 */
export type ClaimedItem = typeof ClaimedItem.Type

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
  readonly dueAtMs?: number
  /** attempts consumed so far, this one included when it counts */
  readonly consumed: number
  readonly throttles: number
  readonly roundsFailed: number
  readonly durationMs: number
  readonly reason?: string
  /** whether this outcome counts toward the circuit breaker's consecutive failures */
  readonly countsAsFailure: boolean
  readonly events: ReadonlyArray<BatchEvent.Draft>
}

const CycleRow = Schema.Struct({
  applied: Schema.Array(Num),
  seq: Num,
  total: Num,
  ...countColumns,
  consecutive_failures: Num,
  state_tag: Schema.String,
  version: Num,
  claimed: Schema.Array(ClaimedItem)
})

/**
 * The batch's counters after a group commit, and which outcomes were recorded.
 *
 * @since 0.1.0
 */
export interface CommitResult {
  /** keys whose outcome was recorded; the others were fenced out (stale lease) */
  readonly applied: ReadonlyArray<string>
  readonly rejected: ReadonlyArray<string>
  readonly seq: number
  readonly counts: ReturnType<typeof countsOf>
  readonly consecutiveFailures: number
}

/**
 * What one cycle did: the commit of its outcomes, the items it claimed, and the batch's state tag and
 * version afterwards (a new version means a command changed the batch: read it again).
 *
 * @since 0.1.0
 */
export interface CycleResult extends CommitResult {
  readonly claimed: ReadonlyArray<ClaimedItem>
  readonly state: string
  readonly version: number
}

/**
 * The items repository.
 *
 * @since 0.1.0
 */
export class ItemRepo extends Effect.Service<ItemRepo>()("@effect-batch/ItemRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const batches = sql(t.batches)
    const items = sql(t.items)
    const events = sql(t.events)
    const cycleFunction = sql(`${t.prefix}cycle`)
    const decodeCycle = Schema.decodeUnknown(Schema.NullOr(CycleRow))

    /**
     * One round trip of the worker loop: records `outcomes` (fenced by owner and attempt, with their
     * events), then claims up to `max` due items of a running batch, never more than the batch's free
     * global concurrency (its concurrency minus the items running in every process, these outcomes
     * already released). Retries that are due come first, then queued items in ordinal order; each
     * claimed item gets an `ItemStarted` event. Returns `None` when the batch does not exist.
     */
    const cycle = (options: {
      readonly batchId: Ids.BatchId
      readonly owner: string
      readonly now: number
      readonly leaseMs: number
      readonly max: number
      /** the caller's items still running once `outcomes` are recorded (for the fair share) */
      readonly held?: number | undefined
      readonly outcomes: ReadonlyArray<Outcome>
    }): Effect.Effect<Option.Option<CycleResult>, SqlError> =>
      Effect.gen(function*() {
        const input: Array<unknown> = []
        const evs: Array<{ idx: number; ord: number; tag: string; payload: unknown }> = []
        for (const [idx, o] of options.outcomes.entries()) {
          input.push({
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
            fail: o.countsAsFailure
          })
          for (const draft of o.events) {
            // an invalid draft is a defect of the caller (it dies, as `Effect.orDie` would)
            const encoded = encodeDraftSync(draft)
            evs.push({ idx, ord: evs.length, tag: encoded.tag, payload: encoded.payload })
          }
        }
        const rows = yield* sql<{ readonly r: unknown }>`SELECT ${cycleFunction}(${options.batchId}::uuid,
          ${options.owner}::text, ${options.now}::bigint, ${options.now + options.leaseMs}::bigint,
          ${options.max}::int, ${options.held ?? 0}::int, ${JSON.stringify(input)}::text::jsonb,
          ${JSON.stringify(evs)}::text::jsonb) AS r`
        const row = yield* decodeCycle(rows[0]?.r ?? null).pipe(Effect.orDie)
        if (row === null) return Option.none()
        const appliedIdx = new Set(row.applied)
        const applied: Array<string> = []
        const rejected: Array<string> = []
        options.outcomes.forEach((o, i) => (appliedIdx.has(i) ? applied : rejected).push(o.key))
        return Option.some<CycleResult>({
          applied,
          rejected,
          seq: row.seq,
          counts: countsOf(row),
          consecutiveFailures: row.consecutive_failures,
          claimed: row.claimed,
          state: row.state_tag,
          version: row.version
        })
      }).pipe(
        Effect.withSpan("ItemRepo.cycle", {
          attributes: { batchId: options.batchId, outcomes: options.outcomes.length, max: options.max }
        })
      )

    /**
     * Claims up to `max` due items of a running batch, never more than the batch's free global
     * concurrency (its concurrency minus the items running in every process). Retries that are due
     * come first, then queued items in ordinal order. Records an `ItemStarted` event per item.
     */
    const claim = (options: {
      readonly batchId: Ids.BatchId
      readonly owner: string
      readonly max: number
      readonly now: number
      readonly leaseMs: number
    }): Effect.Effect<ReadonlyArray<ClaimedItem>, SqlError> =>
      cycle({ ...options, outcomes: [] }).pipe(
        Effect.map(Option.match({ onNone: (): ReadonlyArray<ClaimedItem> => [], onSome: (result) => result.claimed }))
      )

    /**
     * Records a group of outcomes in one statement: items fenced by owner and attempt, the batch's
     * counters and sequence, and one or more events per recorded outcome.
     */
    const complete = (options: {
      readonly batchId: Ids.BatchId
      readonly owner: string
      readonly now: number
      readonly outcomes: ReadonlyArray<Outcome>
    }): Effect.Effect<CommitResult, SqlError> =>
      cycle({ ...options, leaseMs: 0, max: 0 }).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.dieMessage(`batch ${options.batchId} vanished during a commit`),
          onSome: Effect.succeed
        }))
      )

    /** Extends the leases this owner holds on a batch's running items. */
    const extendLeases = (options: {
      readonly batchId: Ids.BatchId
      readonly owner: string
      readonly now: number
      readonly leaseMs: number
    }) =>
      sql`UPDATE ${items} SET lease_expires_at_ms = ${options.now + options.leaseMs}
        WHERE batch_id = ${options.batchId}::uuid AND state = 'running' AND lease_owner = ${options.owner}`.pipe(
        Effect.asVoid,
        Effect.withSpan("ItemRepo.extendLeases")
      )

    /**
     * Puts items whose lease expired back in the queue (their worker died). Their next claim gets a
     * new attempt number, which fences out the old holder.
     */
    const reclaimExpired = (options: { readonly now: number; readonly limit: number }) =>
      sql`
        WITH exp AS (
          SELECT batch_id, key FROM ${items}
          WHERE state = 'running' AND lease_expires_at_ms < ${options.now}
          ORDER BY lease_expires_at_ms LIMIT ${options.limit}
          FOR UPDATE SKIP LOCKED
        ), upd AS (
          UPDATE ${items} i SET state = 'queued', lease_owner = NULL, lease_expires_at_ms = NULL
          FROM exp WHERE i.batch_id = exp.batch_id AND i.key = exp.key AND i.state = 'running'
          RETURNING i.batch_id, i.ordinal
        ), agg AS (
          SELECT batch_id, count(*)::int AS n, min(ordinal) AS lowest FROM upd GROUP BY batch_id
        )
        UPDATE ${batches} b SET running = running - agg.n, queued = queued + agg.n,
          claim_cursor = LEAST(claim_cursor, agg.lowest - 1)
        FROM agg WHERE b.id = agg.batch_id
        RETURNING b.id::text AS batch_id, agg.n
      `.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({ batch_id: Schema.String, n: Num })))),
        Effect.map((rows) => rows.reduce((n, r) => n + r.n, 0)),
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("ItemRepo.reclaimExpired")
      )

    /**
     * Marks every unsettled item of a batch `Skipped` (abort or cancel), with an `ItemSkipped` event
     * each. Run it in the transaction that moves the batch out of `Running`, so that no claim races it.
     */
    const skipRemaining = (options: {
      readonly batchId: Ids.BatchId
      readonly reason: "aborted" | "cancelled"
      readonly now: number
    }) =>
      sql<{ n: number }>`
        WITH upd AS (
          UPDATE ${items} SET state = 'skipped', reason = ${options.reason}, lease_owner = NULL,
            lease_expires_at_ms = NULL, due_at_ms = NULL, finished_at_ms = ${options.now}
          WHERE batch_id = ${options.batchId}::uuid AND state IN ('queued', 'retry', 'running')
          RETURNING key, ordinal
        ), agg AS (
          SELECT count(*)::int AS n FROM upd
        ), ub AS (
          UPDATE ${batches} SET skipped = skipped + agg.n, queued = 0, running = 0, retry_scheduled = 0,
            seq = seq + agg.n, updated_at_ms = ${options.now}
          FROM agg WHERE id = ${options.batchId}::uuid
          RETURNING seq - agg.n AS base
        ), ins AS (
          INSERT INTO ${events} (batch_id, seq, tag, payload, at_ms)
          SELECT ${options.batchId}::uuid, ub.base + row_number() OVER (ORDER BY upd.ordinal), 'ItemSkipped',
            jsonb_build_object('itemKey', upd.key, 'reason', ${options.reason}::text), ${options.now}
          FROM upd, ub
        )
        SELECT n FROM agg
      `.pipe(Effect.map((rows) => rows[0]?.n ?? 0), Effect.withSpan("ItemRepo.skipRemaining"))

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
     * Re-queues failed (or released quarantined) items for round `round`, with fresh attempts and an
     * event per item. Returns how many were re-queued.
     */
    const requeue = (options: {
      readonly batchId: Ids.BatchId
      readonly from: "failed" | "quarantined"
      readonly keys?: ReadonlyArray<string> | undefined
      readonly round: number
      readonly actor: string
      readonly now: number
    }) =>
      sql<{ n: number }>`
        WITH upd AS (
          UPDATE ${items} SET state = 'queued', round = ${options.round}, consumed = 0, throttles = 0,
            due_at_ms = NULL, reason = NULL,
            rounds_failed = ${options.from === "failed" ? sql`rounds_failed + 1` : sql`0`}
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
            ${options.from === "failed" ? sql`failed = failed - agg.n` : sql`quarantined = quarantined - agg.n`},
            consecutive_failures = 0,
            seq = seq + ${options.from === "failed" ? sql`0` : sql`agg.n`}, updated_at_ms = ${options.now}
          FROM agg WHERE id = ${options.batchId}::uuid
          RETURNING seq - ${options.from === "failed" ? sql`0` : sql`agg.n`} AS base
        ), ins AS (
          INSERT INTO ${events} (batch_id, seq, tag, payload, at_ms)
          SELECT ${options.batchId}::uuid, ub.base + row_number() OVER (ORDER BY upd.ordinal), 'ItemReleased',
            jsonb_build_object('itemKey', upd.key, 'actor', ${options.actor}::text), ${options.now}
          FROM upd, ub WHERE ${options.from} = 'quarantined'
        )
        SELECT n FROM agg
      `.pipe(Effect.map((rows) => rows[0]?.n ?? 0), Effect.withSpan("ItemRepo.requeue"))

    /** Counts a batch's items per state from the item rows themselves. */
    const countFromItems = (batchId: Ids.BatchId) =>
      sql<{ state: string; n: number }>`SELECT state, count(*)::int AS n FROM ${items}
        WHERE batch_id = ${batchId}::uuid GROUP BY state`.pipe(
        Effect.map((rows) => {
          const by = new Map(rows.map((r) => [r.state, r.n]))
          return countsOf({
            queued: by.get("queued") ?? 0,
            running: by.get("running") ?? 0,
            retry_scheduled: by.get("retry") ?? 0,
            succeeded: by.get("succeeded") ?? 0,
            failed: by.get("failed") ?? 0,
            quarantined: by.get("quarantined") ?? 0,
            skipped: by.get("skipped") ?? 0
          })
        })
      )

    /** When the earliest scheduled retry of a batch is due. */
    const nextDue = (batchId: Ids.BatchId) =>
      sql<{ due: number | null }>`SELECT min(due_at_ms)::float8 AS due FROM ${items}
        WHERE batch_id = ${batchId}::uuid AND state = 'retry'`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]?.due))
      )

    return {
      cycle,
      claim,
      nextDue,
      complete,
      extendLeases,
      reclaimExpired,
      skipRemaining,
      keysInState,
      requeue,
      countFromItems
    } as const
  })
}) {}
