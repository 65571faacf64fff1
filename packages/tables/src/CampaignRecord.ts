/**
 * A stored campaign, decoded, and the row codec it is read with.
 *
 * @since 0.4.0
 */
import {
  CampaignConfig,
  CampaignEvent,
  CampaignId,
  CampaignPolicy,
  CampaignState,
  CampaignViews,
  Ids,
  ItemCounts
} from "@effect-batch/domain"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Struct from "effect/Struct"
import { Num } from "./internal/Rows.js"

/**
 * A stored campaign.
 *
 * @since 0.4.0
 */
export interface CampaignRecord {
  readonly id: CampaignId.CampaignId
  readonly tenant: Ids.TenantId
  readonly workflow: Ids.WorkflowName
  readonly idempotencyKey: Option.Option<string>
  readonly state: CampaignState.CampaignState
  readonly config: CampaignConfig.CampaignConfig
  readonly total: number
  readonly batchCount: number
  readonly round: number
  readonly version: number
  readonly seq: number
  readonly hookState: string
  readonly createdAtMs: number
  readonly updatedAtMs: number
}

/** @internal */
export const CampaignRow = Schema.Struct({
  id: Schema.String,
  tenant: Schema.String,
  workflow: Schema.String,
  idempotency_key: Schema.NullOr(Schema.String),
  state: Schema.Unknown,
  config: Schema.Unknown,
  total: Num,
  batch_count: Num,
  round: Num,
  version: Num,
  seq: Num,
  hook_state: Schema.String,
  created_at_ms: Num,
  updated_at_ms: Num
})

/** @internal */
export const campaignColumns = `id::text AS id, tenant, workflow, idempotency_key, state, config, total, batch_count,
  round, version, seq, hook_state, created_at_ms::float8 AS created_at_ms, updated_at_ms::float8 AS updated_at_ms`

const decodeFields = Schema.decodeUnknown(Schema.Struct({
  id: CampaignId.CampaignId,
  tenant: Ids.TenantId,
  workflow: Ids.WorkflowName,
  state: CampaignState.CampaignState,
  config: CampaignConfig.CampaignConfig
}))

/** @internal */
export const encodeState = Schema.encode(CampaignState.CampaignState)
/** @internal */
export const encodeConfig = Schema.encode(CampaignConfig.CampaignConfig)

/**
 * Decodes a stored row.
 *
 * @since 0.4.0
 */
export const decodeRecord = (row: typeof CampaignRow.Type) =>
  Effect.map(decodeFields(row), (fields): CampaignRecord => ({
    ...fields,
    idempotencyKey: Option.fromNullable(row.idempotency_key),
    total: row.total,
    batchCount: row.batch_count,
    round: row.round,
    version: row.version,
    seq: row.seq,
    hookState: row.hook_state,
    createdAtMs: row.created_at_ms,
    updatedAtMs: row.updated_at_ms
  }))

/**
 * The batch counts of a roll-up, as clients see them.
 *
 * @since 0.4.0
 */
export const batchCounts = (r: CampaignPolicy.Rollup): CampaignViews.BatchCounts =>
  CampaignViews.BatchCounts.make({
    total: r.batches,
    pending: r.pending,
    active: r.active,
    requeue: r.requeue,
    completed: r.completed,
    failed: r.failed,
    cancelled: r.cancelled,
    rejected: r.rejected,
    done: CampaignPolicy.done(r)
  }, true)

/**
 * The client's view of a campaign with its roll-up.
 *
 * @since 0.4.0
 */
export const toView = (record: CampaignRecord, rollup: CampaignPolicy.Rollup): CampaignViews.CampaignView =>
  CampaignViews.CampaignView.make({
    id: record.id,
    workflow: record.workflow,
    state: record.state,
    config: record.config,
    total: record.total,
    batches: batchCounts(rollup),
    counts: rollup.counts,
    version: record.version,
    lastSeq: record.seq,
    createdAt: DateTime.unsafeMake(record.createdAtMs),
    updatedAt: DateTime.unsafeMake(record.updatedAtMs)
  }, true)

/** A campaign with no child batch counted. */
export const emptyRollup: CampaignPolicy.Rollup = {
  batches: 0,
  pending: 0,
  active: 0,
  requeue: 0,
  completed: 0,
  failed: 0,
  cancelled: 0,
  rejected: 0,
  counts: ItemCounts.empty
}

/** The events without the fields the log fills in (campaign id, sequence, time). */
const DraftEvent = Schema.Union(
  ...CampaignEvent.CampaignEvent.members.map((member) =>
    Schema.Struct(Struct.omit(member.fields, "campaignId", "seq", "at"))
  )
)

/** @internal */
export const encodeDraft = (draft: CampaignEvent.Draft) =>
  Effect.map(Schema.encode(DraftEvent)(draft), ({ _tag, ...payload }) => ({ tag: _tag, payload }))

/** @internal */
export const EventRow = Schema.Struct({
  campaign_id: Schema.String,
  seq: Num,
  tag: Schema.String,
  payload: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  at_ms: Num
})

const decodeEvent = Schema.decodeUnknown(CampaignEvent.CampaignEvent)

/** @internal */
export const eventFromRow = (row: typeof EventRow.Type) =>
  decodeEvent({
    ...row.payload,
    _tag: row.tag,
    campaignId: row.campaign_id,
    seq: row.seq,
    at: new Date(row.at_ms).toISOString()
  })
