/**
 * The RPC contract shared by the server and its clients.
 *
 * @since 0.1.0
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcMiddleware from "@effect/rpc/RpcMiddleware"
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"
import { ConfigPatch } from "./BatchConfig.js"
import { BatchEvent } from "./BatchEvent.js"
import { Tag as StateTag } from "./BatchState.js"
import {
  BatchNotFound,
  EmptyBatch,
  InvalidBatchConfig,
  InvalidItems,
  InvalidRequest,
  InvalidTransition,
  LimitExceeded,
  StorageUnavailable,
  Unauthorized,
  VersionConflict,
  WorkflowNotFound
} from "./Errors.js"
import { BatchId, IdempotencyKey, ItemKey, Note, Sequence, TenantId, WorkflowName } from "./Ids.js"
import { Tag as ItemTag } from "./ItemState.js"
import { BatchView, ItemResult, ItemView, Page, Progress, RedrivePlan, Trends } from "./Views.js"

/**
 * The caller of a request: its tenant, and a name shown as the actor of its commands.
 *
 * @since 0.1.0
 */
export class CurrentTenant extends Context.Tag("@effect-batch/CurrentTenant")<CurrentTenant, {
  readonly tenant: TenantId
  readonly actor: string
}>() {}

/**
 * Bearer-token authentication: every RPC runs with its caller's `CurrentTenant`.
 *
 * @since 0.1.0
 */
export class Authentication extends RpcMiddleware.Tag<Authentication>()("@effect-batch/Authentication", {
  provides: CurrentTenant,
  failure: Unauthorized
}) {}

/**
 * The most items one `CreateBatch` call may carry.
 *
 * @since 0.1.0
 */
export const maxItemsPerRequest = 100_000

/**
 * One item of a new batch: its key and its encoded input. The server decodes both (the key as an
 * `ItemKey`, the input by the workflow's input schema), so that a bad item is an `InvalidItems`
 * naming it.
 *
 * @since 0.1.0
 */
export class NewItem extends Schema.Class<NewItem>("NewItem")({
  key: Schema.String,
  input: Schema.Unknown
}) {}

const Limit = Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1000)), { default: () => 100, exact: true })
const Cursor = Schema.optionalWith(Schema.String.pipe(Schema.maxLength(1024)), { exact: true })
const ById = { batchId: BatchId }
/** Every RPC may fail with `StorageUnavailable`: the database could not be reached. */
const LookupErrors = Schema.Union(BatchNotFound, StorageUnavailable)
const CommandErrors = Schema.Union(BatchNotFound, InvalidTransition, VersionConflict, StorageUnavailable)

/**
 * The payload of `CreateBatch`.
 *
 * @since 0.1.0
 */
export const CreateBatchPayload = Schema.Struct({
  workflow: WorkflowName,
  items: Schema.Array(NewItem).pipe(
    Schema.maxItems(maxItemsPerRequest, { message: () => `at most ${maxItemsPerRequest} items per request` })
  ),
  /** the encoded `BatchConfig`; decoded by the server so that a bad field is an `InvalidBatchConfig` */
  config: Schema.optionalWith(Schema.Unknown, { exact: true }),
  idempotencyKey: Schema.optionalWith(IdempotencyKey, { exact: true })
})

/**
 * The payload of the RPCs that name one batch (`GetBatch`, `GetProgress`, `GetResults`).
 *
 * @since 0.1.0
 */
export const BatchRef = Schema.Struct(ById)

/**
 * The payload of `ListBatches`.
 *
 * @since 0.1.0
 */
export const ListBatchesPayload = Schema.Struct({
  state: Schema.optionalWith(StateTag, { exact: true }),
  limit: Limit,
  cursor: Cursor
})

/**
 * The payload of `ListItems`.
 *
 * @since 0.1.0
 */
export const ListItemsPayload = Schema.Struct({
  ...ById,
  state: Schema.optionalWith(ItemTag, { exact: true }),
  limit: Limit,
  cursor: Cursor
})

/**
 * The payload of `StreamProgress`: the events after sequence `after`.
 *
 * @since 0.1.0
 */
export const StreamProgressPayload = Schema.Struct({
  ...ById,
  after: Schema.optionalWith(Sequence, { default: () => 0, exact: true })
})

/**
 * The payload of `Pause`, `Resume`, `Cancel`, `Approve` and `Reject`.
 *
 * @since 0.1.0
 */
export const CommandPayload = Schema.Struct({
  ...ById,
  note: Schema.optionalWith(Note, { default: () => "", exact: true })
})

/**
 * The payload of `RetryFailed`.
 *
 * @since 0.1.0
 */
export const RetryFailedPayload = Schema.Struct({
  ...ById,
  dryRun: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true })
})

/**
 * The payload of `ReleaseQuarantined`: all quarantined items, or the given keys.
 *
 * @since 0.1.0
 */
export const ReleaseQuarantinedPayload = Schema.Struct({
  ...ById,
  itemKeys: Schema.optionalWith(Schema.Array(ItemKey).pipe(Schema.maxItems(10_000)), { exact: true })
})

/**
 * The payload of `RerunFromStep`: the items to run again from the named durable step.
 *
 * @since 0.3.0
 */
export const RerunFromStepPayload = Schema.Struct({
  ...ById,
  itemKeys: Schema.Array(ItemKey).pipe(Schema.minItems(1), Schema.maxItems(10_000)),
  step: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))
})

/**
 * The payload of `UpdateConfig`.
 *
 * @since 0.1.0
 */
export const UpdateConfigPayload = Schema.Struct({ ...ById, patch: ConfigPatch })

/**
 * Every RPC of effect-batch.
 *
 * @since 0.1.0
 */
export class BatchRpcs extends RpcGroup.make(
  Rpc.make("CreateBatch", {
    payload: CreateBatchPayload,
    success: BatchView,
    error: Schema.Union(
      InvalidItems,
      EmptyBatch,
      InvalidBatchConfig,
      WorkflowNotFound,
      LimitExceeded,
      StorageUnavailable
    )
  }),
  Rpc.make("GetBatch", { payload: BatchRef, success: BatchView, error: LookupErrors }),
  Rpc.make("ListBatches", {
    payload: ListBatchesPayload,
    success: Page(BatchView),
    /** a cursor that is not one this server returned */
    error: Schema.Union(InvalidRequest, StorageUnavailable)
  }),
  Rpc.make("ListItems", { payload: ListItemsPayload, success: Page(ItemView), error: LookupErrors }),
  Rpc.make("GetProgress", { payload: BatchRef, success: Progress, error: LookupErrors }),
  Rpc.make("GetTrends", { payload: BatchRef, success: Trends, error: LookupErrors }),
  Rpc.make("GetResults", { payload: BatchRef, success: ItemResult, error: LookupErrors, stream: true }),
  Rpc.make("StreamProgress", {
    payload: StreamProgressPayload,
    success: BatchEvent,
    /** `InvalidRequest`: `after` is beyond the batch's last event; `LimitExceeded`: too many open event streams */
    error: Schema.Union(BatchNotFound, InvalidRequest, LimitExceeded, StorageUnavailable),
    stream: true
  }),
  Rpc.make("Pause", { payload: CommandPayload, success: BatchView, error: CommandErrors }),
  Rpc.make("Resume", { payload: CommandPayload, success: BatchView, error: CommandErrors }),
  Rpc.make("Cancel", { payload: CommandPayload, success: BatchView, error: CommandErrors }),
  Rpc.make("Approve", { payload: CommandPayload, success: BatchView, error: CommandErrors }),
  Rpc.make("Reject", { payload: CommandPayload, success: BatchView, error: CommandErrors }),
  Rpc.make("RetryFailed", { payload: RetryFailedPayload, success: RedrivePlan, error: CommandErrors }),
  Rpc.make("ReleaseQuarantined", {
    payload: ReleaseQuarantinedPayload,
    success: Schema.Struct({ released: Schema.NonNegativeInt }),
    error: CommandErrors
  }),
  Rpc.make("RerunFromStep", {
    payload: RerunFromStepPayload,
    success: Schema.Struct({ requeued: Schema.NonNegativeInt, discarded: Schema.NonNegativeInt }),
    error: CommandErrors
  }),
  Rpc.make("UpdateConfig", { payload: UpdateConfigPayload, success: BatchView, error: CommandErrors })
).middleware(Authentication) {}
