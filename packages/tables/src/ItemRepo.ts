/**
 * Items on the hot path: leasing ahead, group commits of start marks and outcomes fenced by lease
 * owner and attempt, slot shares and their renewal, releasing and reclaiming leases; and the bulk
 * changes that commands make (skip what is left, re-queue).
 *
 * @since 0.1.0
 */
import type { BatchEvent, Ids } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { EventLog } from "./EventLog.js"
import { countColumns, countsOf, encodeDraftFast, Num } from "./internal/Rows.js"
import * as BulkChanges from "./ItemRepo/BulkChanges.js"
import * as Leases from "./ItemRepo/Leases.js"
import { decodeResult, eventRow, type Outcome, pushOutcome } from "./ItemRepo/Outcomes.js"
import { claimedFromJson, type ClaimedItem, type EventRow, type OutcomeRow, type StartRow } from "./sql/Contract.js"
import { Tables } from "./Tables.js"

export type { LostAttempt, Reclaimed } from "./ItemRepo/Leases.js"
export type { Outcome } from "./ItemRepo/Outcomes.js"
export type { ClaimedItem } from "./sql/Contract.js"

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
    const fn = (name: string) => sql(`${t.prefix}${name}`)
    const claimFn = fn("claim")
    const commitFn = fn("commit")
    const renewFn = fn("renew")
    const decodeShare = decodeResult(Schema.decodeUnknown(Schema.NullOr(ShareRow)))
    const decodeClaim = decodeResult(Schema.decodeUnknown(Schema.NullOr(ClaimRow)))
    const decodeCommit = decodeResult(Schema.decodeUnknown(Schema.NullOr(CommitRow)))

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
        Effect.flatMap(decodeClaim),
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
        Effect.flatMap(decodeCommit),
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
        Effect.flatMap(decodeShare),
        Effect.map(Option.map((row): ShareResult => ({
          slots: row.slots,
          state: row.state_tag,
          version: row.version
        }))),
        Effect.withSpan("ItemRepo.renew", { attributes: { batchId: options.batchId } })
      )

    const bulk = BulkChanges.make({ sql, tables: t, eventLog })
    const leases = Leases.make({ sql, tables: t })

    /** When the earliest scheduled retry of a batch is due. */
    const nextDue = (batchId: Ids.BatchId) =>
      sql<{ due: number | null }>`SELECT min(due_at_ms)::float8 AS due FROM ${items}
        WHERE batch_id = ${batchId}::uuid AND due_at_ms IS NOT NULL AND state = 'retry'`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]?.due))
      )

    return { claim, commit, renew, nextDue, ...leases, ...bulk } as const
  }),
  dependencies: [EventLog.Default]
}) {}
