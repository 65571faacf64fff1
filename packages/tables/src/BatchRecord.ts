/**
 * A stored batch, decoded.
 *
 * @since 0.1.0
 */
import type { BatchConfig, BatchState, ItemCounts } from "@effect-batch/domain"
import { Ids, Views } from "@effect-batch/domain"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { type BatchRow, countsOf, decodeConfig, decodeState } from "./internal/Rows.js"

/**
 * A stored batch with its counters.
 *
 * @since 0.1.0
 */
export interface BatchRecord {
  readonly id: Ids.BatchId
  readonly tenant: Ids.TenantId
  readonly workflow: Ids.WorkflowName
  readonly idempotencyKey: Option.Option<string>
  readonly state: BatchState.BatchState
  readonly config: BatchConfig.BatchConfig
  readonly version: number
  readonly seq: number
  readonly round: number
  readonly total: number
  readonly counts: ItemCounts.ItemCounts
  readonly consecutiveFailures: number
  readonly hookState: string
  readonly createdAtMs: number
  readonly updatedAtMs: number
}

const decodeIds = Schema.decodeUnknown(Schema.Struct({
  id: Ids.BatchId,
  tenant: Ids.TenantId,
  workflow: Ids.WorkflowName
}))

/**
 * Decodes a stored row.
 *
 * @since 0.1.0
 */
export const decodeRecord = (row: BatchRow) =>
  Effect.gen(function*() {
    const ids = yield* decodeIds(row)
    const state = yield* decodeState(row.state)
    const config = yield* decodeConfig(row.config)
    return {
      ...ids,
      idempotencyKey: Option.fromNullable(row.idempotency_key),
      state,
      config,
      version: row.version,
      seq: row.seq,
      round: row.round,
      total: row.total,
      counts: countsOf(row),
      consecutiveFailures: row.consecutive_failures,
      hookState: row.hook_state,
      createdAtMs: row.created_at_ms,
      updatedAtMs: row.updated_at_ms
    } satisfies BatchRecord
  })

/**
 * The client's view of a batch. Its fields come from a decoded record, so the view is built without
 * validating them again (a class's validation costs more than the rest of a `GetBatch`).
 *
 * @since 0.1.0
 */
export const toView = (record: BatchRecord): Views.BatchView =>
  Views.BatchView.make({
    id: record.id,
    workflow: record.workflow,
    state: record.state,
    config: record.config,
    counts: record.counts,
    version: record.version,
    lastSeq: record.seq,
    createdAt: DateTime.unsafeMake(record.createdAtMs),
    updatedAt: DateTime.unsafeMake(record.updatedAtMs)
  }, true)
