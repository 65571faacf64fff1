/**
 * The campaign RPCs, a group beside `BatchRpcs` with the same authentication, shared by the server
 * and its clients.
 *
 * @since 0.4.0
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import { CampaignPatch } from "./CampaignConfig.js"
import { CampaignNotFound, InvalidCampaignConfig } from "./CampaignErrors.js"
import { CampaignEvent } from "./CampaignEvent.js"
import { CampaignId } from "./CampaignId.js"
import { Tag as CampaignTag } from "./CampaignState.js"
import { CampaignBatch, CampaignProgress, CampaignResult, CampaignRetryPlan, CampaignView } from "./CampaignViews.js"
import {
  EmptyBatch,
  InvalidItems,
  InvalidRequest,
  InvalidTransition,
  LimitExceeded,
  StorageUnavailable,
  VersionConflict,
  WorkflowNotFound
} from "./Errors.js"
import { IdempotencyKey, Note, Sequence, WorkflowName } from "./Ids.js"
import { Tag as ItemTag } from "./ItemState.js"
import { Authentication, maxItemsPerRequest, NewItem } from "./Rpcs.js"
import { Page } from "./Views.js"

const Limit = Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1000)), { default: () => 100, exact: true })
const Cursor = Schema.optionalWith(Schema.String.pipe(Schema.maxLength(1024)), { exact: true })
const ById = { campaignId: CampaignId }
const LookupErrors = Schema.Union(CampaignNotFound, StorageUnavailable)
const CommandErrors = Schema.Union(CampaignNotFound, InvalidTransition, VersionConflict, StorageUnavailable)

/**
 * The payload of `CreateCampaign`.
 *
 * @since 0.4.0
 */
export const CreateCampaignPayload = Schema.Struct({
  workflow: WorkflowName,
  items: Schema.Array(NewItem).pipe(
    Schema.maxItems(maxItemsPerRequest, { message: () => `at most ${maxItemsPerRequest} items per request` })
  ),
  /** the encoded `CampaignConfig`; decoded by the server so that a bad field is an `InvalidCampaignConfig` */
  config: Schema.optionalWith(Schema.Unknown, { exact: true }),
  idempotencyKey: Schema.optionalWith(IdempotencyKey, { exact: true })
})

/**
 * The payload of the RPCs that name one campaign.
 *
 * @since 0.4.0
 */
export const CampaignRef = Schema.Struct(ById)

/**
 * The payload of `ListCampaigns`.
 *
 * @since 0.4.0
 */
export const ListCampaignsPayload = Schema.Struct({
  state: Schema.optionalWith(CampaignTag, { exact: true }),
  limit: Limit,
  cursor: Cursor
})

/**
 * The payload of `ListCampaignBatches`: a page of the child batches in index order.
 *
 * @since 0.4.0
 */
export const ListCampaignBatchesPayload = Schema.Struct({
  ...ById,
  limit: Limit,
  /** the index after which the page starts */
  after: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(-1)), { default: () => -1, exact: true })
})

/**
 * The payload of `GetCampaignResults`: every outcome, or those in one item state.
 *
 * @since 0.4.0
 */
export const CampaignResultsPayload = Schema.Struct({ ...ById, state: Schema.optionalWith(ItemTag, { exact: true }) })

/**
 * The payload of `StreamCampaignEvents`: the events after sequence `after`.
 *
 * @since 0.4.0
 */
export const StreamCampaignEventsPayload = Schema.Struct({
  ...ById,
  after: Schema.optionalWith(Sequence, { default: () => 0, exact: true })
})

/**
 * The payload of `CancelCampaign`, `ResumeCampaign`, `ApproveCampaign` and `RejectCampaign`.
 *
 * @since 0.4.0
 */
export const CampaignCommandPayload = Schema.Struct({
  ...ById,
  note: Schema.optionalWith(Note, { default: () => "", exact: true })
})

/**
 * The payload of `PauseCampaign`: with `cascade`, the running batches are paused too.
 *
 * @since 0.4.0
 */
export const PauseCampaignPayload = Schema.Struct({
  ...ById,
  note: Schema.optionalWith(Note, { default: () => "", exact: true }),
  cascade: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true })
})

/**
 * The payload of `RetryFailedCampaign`.
 *
 * @since 0.4.0
 */
export const RetryFailedCampaignPayload = Schema.Struct({
  ...ById,
  dryRun: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true })
})

/**
 * The payload of `UpdateCampaignConfig`.
 *
 * @since 0.4.0
 */
export const UpdateCampaignConfigPayload = Schema.Struct({ ...ById, patch: CampaignPatch })

/**
 * Every campaign RPC.
 *
 * @since 0.4.0
 */
export class CampaignRpcs extends RpcGroup.make(
  Rpc.make("CreateCampaign", {
    payload: CreateCampaignPayload,
    success: CampaignView,
    error: Schema.Union(
      InvalidItems,
      EmptyBatch,
      InvalidCampaignConfig,
      WorkflowNotFound,
      LimitExceeded,
      StorageUnavailable
    )
  }),
  Rpc.make("GetCampaign", { payload: CampaignRef, success: CampaignView, error: LookupErrors }),
  Rpc.make("ListCampaigns", {
    payload: ListCampaignsPayload,
    success: Page(CampaignView),
    error: Schema.Union(InvalidRequest, StorageUnavailable)
  }),
  Rpc.make("ListCampaignBatches", {
    payload: ListCampaignBatchesPayload,
    success: Page(CampaignBatch),
    error: LookupErrors
  }),
  Rpc.make("GetCampaignProgress", { payload: CampaignRef, success: CampaignProgress, error: LookupErrors }),
  Rpc.make("GetCampaignResults", {
    payload: CampaignResultsPayload,
    success: CampaignResult,
    error: LookupErrors,
    stream: true
  }),
  Rpc.make("StreamCampaignEvents", {
    payload: StreamCampaignEventsPayload,
    success: CampaignEvent,
    error: Schema.Union(CampaignNotFound, InvalidRequest, LimitExceeded, StorageUnavailable),
    stream: true
  }),
  Rpc.make("PauseCampaign", { payload: PauseCampaignPayload, success: CampaignView, error: CommandErrors }),
  Rpc.make("ResumeCampaign", { payload: CampaignCommandPayload, success: CampaignView, error: CommandErrors }),
  Rpc.make("CancelCampaign", { payload: CampaignCommandPayload, success: CampaignView, error: CommandErrors }),
  Rpc.make("ApproveCampaign", { payload: CampaignCommandPayload, success: CampaignView, error: CommandErrors }),
  Rpc.make("RejectCampaign", { payload: CampaignCommandPayload, success: CampaignView, error: CommandErrors }),
  Rpc.make("RetryFailedCampaign", {
    payload: RetryFailedCampaignPayload,
    success: CampaignRetryPlan,
    error: CommandErrors
  }),
  Rpc.make("ReleaseCampaignQuarantined", {
    payload: CampaignRef,
    success: Schema.Struct({ released: Schema.NonNegativeInt }),
    error: CommandErrors
  }),
  Rpc.make("UpdateCampaignConfig", {
    payload: UpdateCampaignConfigPayload,
    success: CampaignView,
    error: CommandErrors
  })
).middleware(Authentication) {}
