/**
 * Items on the hot path: leasing ahead, group commits of start marks and outcomes fenced by lease
 * owner and attempt, slot shares and their renewal, releasing and reclaiming leases; and the bulk
 * changes that commands make (skip what is left, re-queue).
 *
 * @since 0.1.0
 */
import type { BatchEvent, Ids } from "@effect-batch/domain"
import { BatchId, ItemKey } from "@effect-batch/domain/Ids"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { EventLog } from "./EventLog.js"
import { countColumns, countsOf, type EncodedDraft, encodeDraftFast, Num } from "./internal/Rows.js"
import { claimedFromJson, type ClaimedItem, type EventRow, type OutcomeRow, type StartRow } from "./sql/Contract.js"
import { Tables } from "./Tables.js"

export type { ClaimedItem } from "./sql/Contract.js"

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

/**
 * One entry of a group commit: an attempt started executing, or an attempt finished.
 *
 * @since 0.2.0
 */
export type Entry =
  | { readonly _tag: "Started"; readonly item: ClaimedItem; readonly atMs: number }
  | { readonly _tag: "Finished"; readonly outcome: Outcome }

/**
 * What a process tells the database about its share with every hot statement: how many attempts it
 * may be executing until it hears back (the attempts running, or the grant it runs under, whichever
 * is more: statements are in flight while attempts start) and how many it could use.
 *
 * @since 0.2.0
 */
export interface ShareRequest {
  readonly batchId: Ids.BatchId
  readonly owner: string
  readonly now: number
  readonly leaseMs: number
  readonly executing: number
  readonly wanted: number
}

/**
 * The owner's share and the batch's state tag and version (a new version means a command changed
 * the batch: read it again).
 *
 * @since 0.2.0
 */
export interface ShareResult {
  readonly slots: number
  readonly state: string
  readonly version: number
}

/**
 * What a claim leased.
 *
 * @since 0.2.0
 */
export interface ClaimResult extends ShareResult {
  readonly items: ReadonlyArray<ClaimedItem>
  /** whether queued items are left after this claim */
  readonly more: boolean
}

/**
 * What a group commit recorded: the keys whose start mark and outcome were recorded (the others were
 * fenced out: the lease was lost), the batch's counters and sequence afterwards, and the share.
 *
 * @since 0.2.0
 */
export interface CommitResult extends ShareResult {
  readonly started: ReadonlyArray<number>
  readonly applied: ReadonlyArray<number>
  readonly seq: number
  readonly counts: ReturnType<typeof countsOf>
  readonly consecutiveFailures: number
}

const ShareRow = Schema.Struct({ slots: Num, state_tag: Schema.String, version: Num })
const ClaimRow = Schema.Struct({
  ...ShareRow.fields,
  more: Schema.Boolean,
  // each element is read by `claimedFromJson`, which checks its shape: no schema walk per item
  items: Schema.Array(Schema.Unknown)
})
const CommitRow = Schema.Struct({
  ...ShareRow.fields,
  // indexes from a JSON array: numbers, never strings
  started: Schema.Array(Schema.Number),
  applied: Schema.Array(Schema.Number),
  seq: Num,
  total: Num,
  ...countColumns,
  consecutive_failures: Num
})

const decodeBatchId = Schema.decodeUnknown(BatchId)
const decodeKeys = Schema.decodeUnknown(Schema.Array(Schema.Struct({ key: ItemKey })))

const eventRow = (kind: EventRow["kind"], idx: number, ord: number, encoded: EncodedDraft): EventRow => ({
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

/**
 * The items repository.
 *
 * @since 0.1.0
 */
export class ItemRepo extends Effect.Service<ItemRepo>()("@effect-batch/ItemRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const eventLog = yield* EventLog
    const batches = sql(t.batches)
    const items = sql(t.items)
    const shares = sql(t.shares)
    const fn = (name: string) => sql(`${t.prefix}${name}`)
    const claimFn = fn("claim")
    const commitFn = fn("commit")
    const renewFn = fn("renew")
    const releaseFn = fn("release")
    const reclaimFn = fn("reclaim")
    const decodeShare = Schema.decodeUnknown(Schema.NullOr(ShareRow))
    const decodeClaim = Schema.decodeUnknown(Schema.NullOr(ClaimRow))
    const decodeCommit = Schema.decodeUnknown(Schema.NullOr(CommitRow))

    const call = <A>(decode: (u: unknown) => Effect.Effect<A | null, unknown>) =>
    (
      rows: ReadonlyArray<{ readonly r: unknown }>
    ) => decode(rows[0]?.r ?? null).pipe(Effect.orDie, Effect.map(Option.fromNullable))

    /**
     * Leases up to `max` due items of a running batch to `owner` (retries that are due first, then
     * queued items in ordinal order), renewing its share. Leasing does not start anything: a leased
     * item counts as queued until its start mark is committed.
     */
    const claim = (
      options: ShareRequest & { readonly max: number }
    ): Effect.Effect<Option.Option<ClaimResult>, SqlError> =>
      sql<{ readonly r: unknown }>`SELECT ${claimFn}(${options.batchId}::uuid, ${options.owner}::text,
        ${options.now}::bigint, ${options.now + options.leaseMs}::bigint, ${options.max}::int,
        ${options.executing}::int, ${options.wanted}::int) AS r`.pipe(
        Effect.flatMap(call(decodeClaim)),
        Effect.map(Option.map((row): ClaimResult => ({
          slots: row.slots,
          state: row.state_tag,
          version: row.version,
          more: row.more,
          items: row.items.map(claimedFromJson)
        }))),
        Effect.withSpan("ItemRepo.claim", { attributes: { batchId: options.batchId, max: options.max } })
      )

    /**
     * Records a group of start marks and outcomes in one statement (fenced by owner and attempt), with
     * their events in entry order, and renews the owner's share. An invalid event draft is a defect of
     * the caller.
     */
    const commit = (
      options: ShareRequest & { readonly entries: ReadonlyArray<Entry> }
    ): Effect.Effect<Option.Option<CommitResult>, SqlError> =>
      Effect.suspend(() => {
        // Start marks are numbered in entry order. An outcome that follows its own mark in this group
        // names it (`sidx`) and applies both in one update; only the other marks are sent as marks.
        const marks = new Map<string, StartRow>()
        const matched = new Set<number>()
        const outcomes: Array<OutcomeRow> = []
        const events: Array<EventRow> = []
        let marked = 0
        for (const entry of options.entries) {
          if (entry._tag === "Started") {
            const item = entry.item
            const idx = marked++
            marks.set(item.key, { idx, key: item.key, attempt: item.attempt, at_ms: entry.atMs })
            events.push(eventRow(
              "s",
              idx,
              events.length,
              encodeDraftFast({
                _tag: "ItemStarted",
                // the key was validated when the batch was submitted
                itemKey: ItemKey.make(item.key, true),
                attempt: item.attempt,
                round: item.round
              })
            ))
          } else {
            const idx = outcomes.length
            const mark = marks.get(entry.outcome.key)
            const own = mark !== undefined && mark.attempt === entry.outcome.attempt ? mark : undefined
            if (own !== undefined) matched.add(own.idx)
            outcomes.push(outcomeRow(idx, entry.outcome, own))
            for (const draft of entry.outcome.events) {
              events.push(eventRow("o", idx, events.length, encodeDraftFast(draft)))
            }
          }
        }
        const started: Array<StartRow> = []
        for (const mark of marks.values()) if (!matched.has(mark.idx)) started.push(mark)
        return sql<{ readonly r: unknown }>`SELECT ${commitFn}(${options.batchId}::uuid, ${options.owner}::text,
          ${options.now}::bigint, ${options.now + options.leaseMs}::bigint, ${options.executing}::int,
          ${options.wanted}::int, ${JSON.stringify(started)}::text::jsonb, ${JSON.stringify(outcomes)}::text::jsonb,
          ${JSON.stringify(events)}::text::jsonb) AS r`
      }).pipe(
        Effect.flatMap(call(decodeCommit)),
        Effect.map(Option.map((row): CommitResult => ({
          slots: row.slots,
          state: row.state_tag,
          version: row.version,
          started: row.started,
          applied: row.applied,
          seq: row.seq,
          counts: countsOf(row),
          consecutiveFailures: row.consecutive_failures
        }))),
        Effect.withSpan("ItemRepo.commit", {
          attributes: { batchId: options.batchId, entries: options.entries.length }
        })
      )

    /** Renews the owner's lease (its share row) and renegotiates its share. */
    const renew = (options: ShareRequest): Effect.Effect<Option.Option<ShareResult>, SqlError> =>
      sql<{ readonly r: unknown }>`SELECT ${renewFn}(${options.batchId}::uuid, ${options.owner}::text,
        ${options.now}::bigint, ${options.now + options.leaseMs}::bigint, ${options.executing}::int,
        ${options.wanted}::int) AS r`.pipe(
        Effect.flatMap(call(decodeShare)),
        Effect.map(Option.map((row): ShareResult => ({
          slots: row.slots,
          state: row.state_tag,
          version: row.version
        }))),
        Effect.withSpan("ItemRepo.renew", { attributes: { batchId: options.batchId } })
      )

    /**
     * Returns leased items that have not started to the queue at once; with `dropShare`, also gives up
     * the owner's share row (it holds nothing more of the batch). Returns how many were released.
     */
    const release = (options: {
      readonly batchId: Ids.BatchId
      readonly owner: string
      readonly items: ReadonlyArray<ClaimedItem>
      readonly dropShare: boolean
    }): Effect.Effect<number, SqlError> => {
      const rows: Array<StartRow> = options.items.map((item, idx) => ({
        idx,
        key: item.key,
        attempt: item.attempt,
        at_ms: 0
      }))
      return sql<{ n: number }>`SELECT ${releaseFn}(${options.batchId}::uuid, ${options.owner}::text,
        ${JSON.stringify(rows)}::text::jsonb, ${options.dropShare}::boolean) AS n`.pipe(
        Effect.map((r) => Number(r[0]?.n ?? 0)),
        Effect.withSpan("ItemRepo.release", { attributes: { batchId: options.batchId, items: rows.length } })
      )
    }

    /**
     * Takes back what owners whose share row expired held (their process died or lost the database for
     * longer than the lease): their leased and running items go back to the queue. Returns how many
     * items were re-queued, per batch.
     */
    const reclaimExpired = (options: { readonly now: number; readonly limit: number }) =>
      Effect.gen(function*() {
        const expired = yield* sql<{ batch_id: string; owner: string }>`
          SELECT batch_id::text AS batch_id, owner FROM ${shares}
          WHERE expires_at_ms < ${options.now} ORDER BY expires_at_ms LIMIT ${options.limit}`
        const reclaimed = new Map<Ids.BatchId, number>()
        for (const row of expired) {
          const n = yield* sql<{ n: number }>`SELECT ${reclaimFn}(${row.batch_id}::uuid, ${row.owner}::text,
            ${options.now}::bigint) AS n`
          const count = Number(n[0]?.n ?? 0)
          if (count > 0) {
            const batchId = yield* decodeBatchId(row.batch_id).pipe(Effect.orDie)
            reclaimed.set(batchId, (reclaimed.get(batchId) ?? 0) + count)
          }
        }
        return reclaimed
      }).pipe(Effect.withSpan("ItemRepo.reclaimExpired"))

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
      readonly from: "failed" | "quarantined"
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

    /** When the earliest scheduled retry of a batch is due. */
    const nextDue = (batchId: Ids.BatchId) =>
      sql<{ due: number | null }>`SELECT min(due_at_ms)::float8 AS due FROM ${items}
        WHERE batch_id = ${batchId}::uuid AND due_at_ms IS NOT NULL AND state = 'retry'`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]?.due))
      )

    return {
      claim,
      commit,
      renew,
      release,
      releaseLeased,
      reclaimExpired,
      skipRemaining,
      keysInState,
      requeue,
      countFromItems,
      nextDue
    } as const
  }),
  dependencies: [EventLog.Default]
}) {}
