/**
 * The child batches of a campaign, read from their rows: the roll-up, the done set, what starts
 * next, what settled since the campaign last looked, the merge check. Counts are derived from the
 * children's state and committed counters, never kept by the campaign.
 */
import { CampaignState, ItemCounts } from "@effect-batch/domain"
import type { CampaignId, CampaignPolicy } from "@effect-batch/domain"
import { BatchId, ItemKey } from "@effect-batch/domain/Ids"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { type BatchRecord, decodeRecord } from "../BatchRecord.js"
import { batchColumns, BatchRow, Num } from "../internal/Rows.js"
import type { TableNames } from "../Tables.js"

const RollupRow = Schema.Struct({
  batches: Num,
  pending: Num,
  active: Num,
  requeue: Num,
  completed: Num,
  failed: Num,
  cancelled: Num,
  rejected: Num,
  queued: Num,
  running: Num,
  retry_scheduled: Num,
  succeeded: Num,
  failed_items: Num,
  quarantined: Num,
  skipped: Num
})

/**
 * A child batch with its index in the campaign.
 *
 * @since 0.4.0
 */
export interface Child {
  readonly index: number
  readonly record: BatchRecord
  /** the item states a redrive of the campaign re-queues when it starts this child again */
  readonly requeue: ReadonlyArray<"failed" | "quarantined"> | undefined
}

const Requeue = Schema.NullOr(Schema.Array(Schema.Literal("failed", "quarantined")))
const ChildRow = Schema.Struct({ ...BatchRow.fields, campaign_index: Num, campaign_requeue: Requeue })
const decodeChildren = Schema.decodeUnknown(Schema.Array(ChildRow))

export const make = (deps: { readonly sql: SqlClient.SqlClient; readonly tables: TableNames }) => {
  const { sql } = deps
  const batches = sql(deps.tables.batches)
  const items = sql(deps.tables.items)
  const childIds = (campaignId: CampaignId.CampaignId) =>
    sql`ARRAY(SELECT id FROM ${batches} WHERE campaign_id = ${campaignId}::uuid)`

  const selectChildren = (where: Fragment) =>
    sql`SELECT ${sql.literal(batchColumns)}, campaign_index, campaign_requeue FROM ${batches}
      WHERE ${where} ORDER BY campaign_index`.pipe(
      Effect.flatMap(decodeChildren),
      Effect.flatMap(Effect.forEach((row) =>
        Effect.map(decodeRecord(row), (record): Child => ({
          index: row.campaign_index,
          record,
          requeue: row.campaign_requeue ?? undefined
        }))
      )),
      Effect.catchTag("ParseError", Effect.die)
    )

  /** The children by phase and the sum of their committed counters. */
  const rollup = (campaignId: CampaignId.CampaignId): Effect.Effect<CampaignPolicy.Rollup, SqlError> =>
    sql`
      SELECT count(*)::int AS batches,
        (count(*) FILTER (WHERE state_tag = 'Pending'))::int AS pending,
        (count(*) FILTER (WHERE state_tag IN ('Running', 'Paused', 'AwaitingReview')))::int AS active,
        (count(*) FILTER (WHERE state_tag IN ('Completed', 'Failed', 'Rejected')
          AND campaign_requeue IS NOT NULL))::int AS requeue,
        (count(*) FILTER (WHERE state_tag = 'Completed' AND campaign_requeue IS NULL))::int AS completed,
        (count(*) FILTER (WHERE state_tag = 'Failed' AND campaign_requeue IS NULL))::int AS failed,
        (count(*) FILTER (WHERE state_tag = 'Cancelled'))::int AS cancelled,
        (count(*) FILTER (WHERE state_tag = 'Rejected' AND campaign_requeue IS NULL))::int AS rejected,
        COALESCE(sum(queued + leased), 0)::int AS queued, COALESCE(sum(running), 0)::int AS running,
        COALESCE(sum(retry_scheduled), 0)::int AS retry_scheduled, COALESCE(sum(succeeded), 0)::int AS succeeded,
        COALESCE(sum(failed), 0)::int AS failed_items, COALESCE(sum(quarantined), 0)::int AS quarantined,
        COALESCE(sum(skipped), 0)::int AS skipped
      FROM ${batches} WHERE campaign_id = ${campaignId}::uuid`.pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(RollupRow))),
      Effect.map((rows) => {
        const r = rows[0]!
        return {
          batches: r.batches,
          pending: r.pending,
          active: r.active,
          requeue: r.requeue,
          completed: r.completed,
          failed: r.failed,
          cancelled: r.cancelled,
          rejected: r.rejected,
          counts: ItemCounts.ItemCounts.make({
            queued: r.queued,
            running: r.running,
            retryScheduled: r.retry_scheduled,
            succeeded: r.succeeded,
            failed: r.failed_items,
            quarantined: r.quarantined,
            skipped: r.skipped
          })
        }
      }),
      Effect.catchTag("ParseError", Effect.die)
    )

  /** The done set: the children that settled and wait for no redrive, by id and index. */
  const doneSet = (campaignId: CampaignId.CampaignId) =>
    sql<{ id: string; campaign_index: number }>`SELECT id::text AS id, campaign_index FROM ${batches}
      WHERE campaign_id = ${campaignId}::uuid AND campaign_requeue IS NULL
        AND state_tag IN ('Completed', 'Failed', 'Cancelled', 'Rejected')
      ORDER BY campaign_index`.pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({ id: BatchId, campaign_index: Num })))),
      Effect.map((rows) => rows.map((r) => ({ batchId: r.id, index: r.campaign_index }))),
      Effect.catchTag("ParseError", Effect.die)
    )

  /** The next children to start: settled ones marked for a redrive first, then pending ones, by index. */
  const startable = (campaignId: CampaignId.CampaignId, limit: number) =>
    selectChildren(sql`id = ANY(ARRAY(
      SELECT id FROM ${batches} WHERE campaign_id = ${campaignId}::uuid AND (state_tag = 'Pending'
        OR (state_tag IN ('Completed', 'Failed', 'Rejected') AND campaign_requeue IS NOT NULL))
      ORDER BY (campaign_requeue IS NULL), campaign_index LIMIT ${limit}))`)

  /** Children whose current settlement the campaign has not announced yet. */
  const unreported = (campaignId: CampaignId.CampaignId) =>
    selectChildren(sql`campaign_id = ${campaignId}::uuid AND campaign_reported < round
      AND state_tag IN ('Completed', 'Failed', 'Cancelled', 'Rejected')`)

  const markReported = (children: ReadonlyArray<Child>) =>
    children.length === 0 ? Effect.void : sql`UPDATE ${batches} SET campaign_reported = round
      WHERE id = ANY(${children.map((c) => c.record.id)}::uuid[])`.pipe(Effect.asVoid)

  /** Children in the given states (for cascades), by index. */
  const inStates = (campaignId: CampaignId.CampaignId, states: ReadonlyArray<string>) =>
    selectChildren(sql`campaign_id = ${campaignId}::uuid AND state_tag = ANY(${states}::text[])`)

  /** A page of children in index order, after index `after`. */
  const page = (campaignId: CampaignId.CampaignId, after: number, limit: number) =>
    selectChildren(sql`campaign_id = ${campaignId}::uuid AND campaign_index > ${after}
      AND campaign_index <= ${after}::int + ${limit}::int`)

  /** The settled children with items in one of `states`, which a redrive would run again. */
  const redrivable = (campaignId: CampaignId.CampaignId, states: ReadonlyArray<"failed" | "quarantined">) =>
    selectChildren(sql`campaign_id = ${campaignId}::uuid AND state_tag IN ('Completed', 'Failed', 'Rejected')
      AND ((${states.includes("failed")} AND failed > 0) OR (${states.includes("quarantined")} AND quarantined > 0))`)

  /** Marks children to be redriven from `states` when the campaign starts them again. */
  const markRequeue = (ids: ReadonlyArray<BatchId>, states: ReadonlyArray<"failed" | "quarantined">) =>
    ids.length === 0 ? Effect.void : sql`UPDATE ${batches} SET campaign_requeue = ${JSON.stringify(states)}::text::jsonb
      WHERE id = ANY(${ids}::uuid[])`.pipe(Effect.asVoid)

  const clearRequeue = (id: BatchId) =>
    sql`UPDATE ${batches} SET campaign_requeue = NULL WHERE id = ${id}::uuid`.pipe(Effect.asVoid)

  /** Every input key has exactly one settled outcome: none missing, none duplicated. */
  const mergeCheck = (campaignId: CampaignId.CampaignId, expected: number) =>
    sql<{ rows: number; keys: number; outcomes: number; settled_keys: number }>`
      SELECT count(*)::int AS rows, count(DISTINCT key)::int AS keys,
        (count(*) FILTER (WHERE state IN ('succeeded', 'failed', 'quarantined', 'skipped')))::int AS outcomes,
        (count(DISTINCT key) FILTER (WHERE state IN ('succeeded', 'failed', 'quarantined', 'skipped')))::int
          AS settled_keys
      FROM ${items} WHERE batch_id = ANY(${childIds(campaignId)})`.pipe(
      Effect.map((rows) => {
        const r = rows[0] ?? { rows: 0, keys: 0, outcomes: 0, settled_keys: 0 }
        const duplicated = Number(r.rows) - Number(r.keys)
        const missing = Math.max(expected - Number(r.settled_keys), 0)
        return CampaignState.MergeCheck.make({
          expected,
          outcomes: Number(r.outcomes),
          missing,
          duplicated,
          ok: missing === 0 && duplicated === 0 && Number(r.outcomes) === expected
        })
      })
    )

  /** The quarantined items of the campaign (the first `limit`, by batch index and key). */
  const quarantined = (campaignId: CampaignId.CampaignId, limit: number) =>
    sql<{ batch_id: string; campaign_index: number; key: string; reason: string | null }>`
      SELECT i.batch_id::text AS batch_id, b.campaign_index, i.key, i.reason FROM ${items} i
      JOIN ${batches} b ON b.id = i.batch_id
      WHERE b.campaign_id = ${campaignId}::uuid AND b.quarantined > 0 AND i.state = 'quarantined'
      ORDER BY b.campaign_index, i.key LIMIT ${limit}`.pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({
        batch_id: BatchId,
        campaign_index: Num,
        key: ItemKey,
        reason: Schema.NullOr(Schema.String)
      })))),
      Effect.catchTag("ParseError", Effect.die)
    )

  /** Items of the campaign that finished after `since` (epoch millis), for the rate. */
  const finishedSince = (campaignId: CampaignId.CampaignId, since: number) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM ${items}
      WHERE batch_id = ANY(${childIds(campaignId)}) AND finished_at_ms > ${since}`.pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0))
    )

  return {
    rollup,
    doneSet,
    startable,
    unreported,
    markReported,
    inStates,
    page,
    redrivable,
    markRequeue,
    clearRequeue,
    mergeCheck,
    quarantined,
    finishedSince
  } as const
}
