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
import * as BulkChanges from "./ItemRepo/BulkChanges.js"
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

/**
 * A durable step an attempt completed: its `index`-th call of `name`, with the encoded output (JSON
 * text) and its `StepCompleted` event.
 *
 * @since 0.3.0
 */
export interface CompletedStep {
  readonly item: ClaimedItem
  readonly name: string
  readonly index: number
  readonly outputJson: string
  readonly event: BatchEvent.Draft
}

/**
 * One entry of a group commit: an attempt started executing, completed a durable step, or finished.
 *
 * @since 0.2.0
 */
export type Entry =
  | { readonly _tag: "Started"; readonly item: ClaimedItem; readonly atMs: number }
  | { readonly _tag: "Step"; readonly step: CompletedStep }
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

/**
 * An attempt whose owner lost its lease (its process died, or hung past the lease): the item as its
 * claim returned it, and when the attempt started. It counts as a used attempt.
 *
 * @since 0.4.0
 */
export interface LostAttempt {
  readonly item: ClaimedItem
  readonly startedAtMs: number
}

/**
 * What taking back the items of one owner whose lease expired did: how many went back to the queue,
 * the outcomes recorded for its lost attempts, and the batch's counters and sequence afterwards.
 *
 * @since 0.4.0
 */
export interface Reclaimed {
  readonly batchId: Ids.BatchId
  readonly owner: string
  readonly requeued: number
  readonly recorded: ReadonlyArray<Outcome>
  readonly seq: number
  readonly state: string
  readonly version: number
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

const ReclaimRow = Schema.Struct({
  requeued: Num,
  applied: Schema.Array(Schema.Number),
  seq: Num,
  state_tag: Schema.String,
  version: Num,
  total: Num,
  ...countColumns,
  consecutive_failures: Num
})

// each claimed item is read by `claimedFromJson`
const LostRows = Schema.Array(Schema.Tuple(Schema.Unknown, Num))

const decodeBatchId = Schema.decodeUnknown(BatchId)

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

/** Adds an outcome and its events to the rows of a statement. */
const pushOutcome = (
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
 * The items repository.
 *
 * @since 0.1.0
 */
export class ItemRepo extends Effect.Service<ItemRepo>()("@effect-batch/ItemRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const eventLog = yield* EventLog
    const items = sql(t.items)
    const shares = sql(t.shares)
    const fn = (name: string) => sql(`${t.prefix}${name}`)
    const claimFn = fn("claim")
    const commitFn = fn("commit")
    const renewFn = fn("renew")
    const releaseFn = fn("release")
    const reclaimFn = fn("reclaim")
    const lostFn = fn("lost_attempts")
    const decodeShare = Schema.decodeUnknown(Schema.NullOr(ShareRow))
    const decodeClaim = Schema.decodeUnknown(Schema.NullOr(ClaimRow))
    const decodeCommit = Schema.decodeUnknown(Schema.NullOr(CommitRow))
    const decodeReclaim = Schema.decodeUnknown(Schema.NullOr(ReclaimRow))

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
        const steps: Array<string> = []
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
          } else if (entry._tag === "Step") {
            const { item, name, index, outputJson, event } = entry.step
            const idx = steps.length
            const mark = marks.get(item.key)
            const sidx = mark !== undefined && mark.attempt === item.attempt ? mark.idx : null
            // the output is JSON text already: it is spliced in, not encoded twice
            steps.push(
              `{"idx":${idx},"key":${JSON.stringify(item.key)},"attempt":${item.attempt},"name":${
                JSON.stringify(name)
              },"n":${index},"sidx":${sidx === null ? "null" : sidx},"output":${outputJson}}`
            )
            events.push(eventRow("p", idx, events.length, encodeDraftFast(event)))
          } else {
            const mark = marks.get(entry.outcome.key)
            const own = mark !== undefined && mark.attempt === entry.outcome.attempt ? mark : undefined
            if (own !== undefined) matched.add(own.idx)
            pushOutcome(outcomes, events, entry.outcome, own)
          }
        }
        const started: Array<StartRow> = []
        for (const mark of marks.values()) if (!matched.has(mark.idx)) started.push(mark)
        return sql<{ readonly r: unknown }>`SELECT ${commitFn}(${options.batchId}::uuid, ${options.owner}::text,
          ${options.now}::bigint, ${options.now + options.leaseMs}::bigint, ${options.executing}::int,
          ${options.wanted}::int, ${JSON.stringify(started)}::text::jsonb, ${JSON.stringify(outcomes)}::text::jsonb,
          ${JSON.stringify(events)}::text::jsonb, ${`[${steps.join(",")}]`}::text::jsonb) AS r`
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
     * longer than the lease), one owner per transaction: the attempts it had started are lost and
     * `decide` gives their outcomes (each counts as a used attempt; it may read the batch in the same
     * transaction); everything else it held goes back to the queue.
     */
    const reclaimExpired = <E, R>(options: {
      readonly now: number
      readonly limit: number
      readonly decide: (
        batchId: Ids.BatchId,
        lost: ReadonlyArray<LostAttempt>
      ) => Effect.Effect<ReadonlyArray<Outcome>, E, R>
    }): Effect.Effect<ReadonlyArray<Reclaimed>, E | SqlError, R> =>
      Effect.gen(function*() {
        const expired = yield* sql<{ batch_id: string; owner: string }>`
          SELECT batch_id::text AS batch_id, owner FROM ${shares}
          WHERE expires_at_ms < ${options.now} ORDER BY expires_at_ms LIMIT ${options.limit}`
        const reclaimed: Array<Reclaimed> = []
        for (const row of expired) {
          const batchId = yield* decodeBatchId(row.batch_id).pipe(Effect.orDie)
          const done = yield* reclaimOwner(batchId, row.owner, options.now, options.decide)
          if (Option.isSome(done)) reclaimed.push(done.value)
        }
        return reclaimed
      }).pipe(Effect.withSpan("ItemRepo.reclaimExpired"))

    const reclaimOwner = <E, R>(
      batchId: Ids.BatchId,
      owner: string,
      now: number,
      decide: (batchId: Ids.BatchId, lost: ReadonlyArray<LostAttempt>) => Effect.Effect<ReadonlyArray<Outcome>, E, R>
    ) =>
      Effect.gen(function*() {
        const listed = yield* sql<{ readonly r: unknown }>`SELECT ${lostFn}(${batchId}::uuid, ${owner}::text,
          ${now}::bigint) AS r`.pipe(
          Effect.flatMap((rows) => Schema.decodeUnknown(LostRows)(rows[0]?.r ?? [])),
          Effect.orDie
        )
        const lost = listed.map(([item, startedAtMs]): LostAttempt => ({ item: claimedFromJson(item), startedAtMs }))
        const decided = lost.length === 0 ? [] : yield* decide(batchId, lost)
        const outcomes: Array<OutcomeRow> = []
        const events: Array<EventRow> = []
        for (const outcome of decided) pushOutcome(outcomes, events, outcome, undefined)
        const result = yield* sql<{ readonly r: unknown }>`SELECT ${reclaimFn}(${batchId}::uuid, ${owner}::text,
          ${now}::bigint, ${JSON.stringify(outcomes)}::text::jsonb, ${JSON.stringify(events)}::text::jsonb) AS r`
          .pipe(Effect.flatMap(call(decodeReclaim)))
        return Option.map(result, (row): Reclaimed => ({
          batchId,
          owner,
          requeued: row.requeued,
          recorded: row.applied.flatMap((idx) => decided[idx] ?? []),
          seq: row.seq,
          state: row.state_tag,
          version: row.version,
          counts: countsOf(row),
          consecutiveFailures: row.consecutive_failures
        }))
      }).pipe(sql.withTransaction, Effect.withSpan("ItemRepo.reclaimOwner", { attributes: { batchId, owner } }))

    const bulk = BulkChanges.make({ sql, tables: t, eventLog })

    /** When the earliest scheduled retry of a batch is due. */
    const nextDue = (batchId: Ids.BatchId) =>
      sql<{ due: number | null }>`SELECT min(due_at_ms)::float8 AS due FROM ${items}
        WHERE batch_id = ${batchId}::uuid AND due_at_ms IS NOT NULL AND state = 'retry'`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]?.due))
      )

    return { claim, commit, renew, release, reclaimExpired, nextDue, ...bulk } as const
  }),
  dependencies: [EventLog.Default]
}) {}
