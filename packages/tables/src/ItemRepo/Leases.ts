/**
 * Giving leases back and taking back the leases of owners that lost them: release (pause, abort,
 * shutdown) and the reclaim of expired shares, whose lost attempts are decided by the caller. Each
 * statement locks the batch row before any of its item rows, like every other writer of a batch's
 * items (see `sql/Release.ts`).
 */
import type { Ids } from "@effect-batch/domain"
import { BatchId } from "@effect-batch/domain/Ids"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { countColumns, countsOf, Num } from "../internal/Rows.js"
import { claimedFromJson, type ClaimedItem, type EventRow, type OutcomeRow, type StartRow } from "../sql/Contract.js"
import type { TableNames } from "../Tables.js"
import { decodeResult, type Outcome, pushOutcome } from "./Outcomes.js"

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
const decodeReclaim = decodeResult(Schema.decodeUnknown(Schema.NullOr(ReclaimRow)))
const decodeLost = Schema.decodeUnknown(LostRows)

export const make = (deps: { readonly sql: SqlClient.SqlClient; readonly tables: TableNames }) => {
  const { sql } = deps
  const t = deps.tables
  const shares = sql(t.shares)
  const releaseFn = sql(`${t.prefix}release`)
  const reclaimFn = sql(`${t.prefix}reclaim`)
  const lostFn = sql(`${t.prefix}lost_attempts`)

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
        Effect.flatMap((rows) => decodeLost(rows[0]?.r ?? [])),
        Effect.orDie
      )
      const lost = listed.map(([item, startedAtMs]): LostAttempt => ({ item: claimedFromJson(item), startedAtMs }))
      const decided = lost.length === 0 ? [] : yield* decide(batchId, lost)
      const outcomes: Array<OutcomeRow> = []
      const events: Array<EventRow> = []
      for (const outcome of decided) pushOutcome(outcomes, events, outcome, undefined)
      const result = yield* sql<{ readonly r: unknown }>`SELECT ${reclaimFn}(${batchId}::uuid, ${owner}::text,
        ${now}::bigint, ${JSON.stringify(outcomes)}::text::jsonb, ${JSON.stringify(events)}::text::jsonb) AS r`
        .pipe(Effect.flatMap(decodeReclaim))
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

  return { release, reclaimExpired } as const
}
