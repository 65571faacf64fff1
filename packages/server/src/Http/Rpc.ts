/**
 * `POST /rpc`: every RPC of the `Api` (batches, campaigns and shared limiters) over HTTP with NDJSON framing (streaming RPCs stream),
 * authenticated by `Authorization: Bearer <token>` and scoped to the token's tenant. Requests are
 * checked before any handler runs (`RpcGuard`); a body of unary RPCs is answered directly
 * (`RpcUnary`), streamed responses are produced as fast as the client reads them (`RpcProtocol`).
 * `StreamProgress` counts against the tenant's open streams, like SSE.
 *
 * @since 0.1.0
 */
import { Api, Rpcs, SharedLimiter } from "@effect-batch/domain"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { BatchOrchestrator, type Caller } from "../BatchOrchestrator.js"
import type { CampaignOrchestrator } from "../CampaignOrchestrator.js"
import * as Storage from "../internal/Storage.js"
import { SharedLimiters } from "../SharedLimiters.js"
import { HttpAuth, layerRpc } from "./Auth.js"
import * as CampaignRpc from "./CampaignRpc.js"
import { checkAfter, follow } from "./Events.js"
import { OpenStreams } from "./OpenStreams.js"
import * as RpcProtocol from "./RpcProtocol.js"
import type { Handlers } from "./RpcUnary.js"

/**
 * The path of the RPC endpoint.
 *
 * @since 0.1.0
 */
export const path = "/rpc"

const caller = Effect.map(Rpcs.CurrentTenant, (principal): Caller => ({
  tenant: principal.tenant,
  actor: principal.actor
}))

/** Runs `f` as the request's caller; a database failure is `StorageUnavailable`. */
const as = <A, E, R>(f: (caller: Caller) => Effect.Effect<A, E, R>) => Storage.decide("RPC")(Effect.flatMap(caller, f))

/**
 * The handlers of every RPC, calling the orchestrator as the request's tenant.
 *
 * @since 0.1.0
 */
export const layerHandlers = Rpcs.BatchRpcs.toLayer(Effect.gen(function*() {
  const orchestrator = yield* BatchOrchestrator
  const streams = yield* OpenStreams

  return Rpcs.BatchRpcs.of({
    CreateBatch: (payload) =>
      as((c) =>
        orchestrator.submitEncoded(payload.workflow, payload.items, payload.config, {
          ...c,
          idempotencyKey: payload.idempotencyKey
        })
      ),
    GetBatch: ({ batchId }) => as((c) => orchestrator.get(c, batchId)),
    ListBatches: (payload) => as((c) => orchestrator.list(c, payload)),
    ListItems: ({ batchId, ...options }) => as((c) => orchestrator.listItems(c, batchId, options)),
    GetProgress: ({ batchId }) => as((c) => orchestrator.progress(c, batchId)),
    GetTrends: ({ batchId }) => as((c) => orchestrator.trends(c, batchId)),
    GetResults: ({ batchId }) =>
      Stream.unwrap(Effect.map(caller, (c) => orchestrator.results(c, batchId))).pipe(
        Storage.decideStream("RPC")
      ),
    StreamProgress: ({ after, batchId }) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const c = yield* caller
        const batch = yield* orchestrator.get(c, batchId)
        yield* checkAfter(batch, after)
        yield* streams.acquire(c.tenant, "rpc")
        return follow(orchestrator, c, batch, after)
      })).pipe(Storage.decideStream("RPC")),
    Pause: ({ batchId, note }) => as((c) => orchestrator.pause(c, batchId, note)),
    Resume: ({ batchId }) => as((c) => orchestrator.resume(c, batchId)),
    Cancel: ({ batchId, note }) => as((c) => orchestrator.cancel(c, batchId, note)),
    Approve: ({ batchId, note }) => as((c) => orchestrator.approve(c, batchId, note)),
    Reject: ({ batchId, note }) => as((c) => orchestrator.reject(c, batchId, note)),
    RetryFailed: ({ batchId, dryRun }) => as((c) => orchestrator.retryFailed(c, batchId, { dryRun })),
    ReleaseQuarantined: ({ batchId, itemKeys }) => as((c) => orchestrator.releaseQuarantined(c, batchId, itemKeys)),
    RerunFromStep: ({ batchId, itemKeys, step }) =>
      as((c) => orchestrator.rerunFromStep(c, batchId, { keys: itemKeys, step })),
    UpdateConfig: ({ batchId, patch }) => as((c) => orchestrator.updateConfig(c, batchId, patch))
  })
}))

/**
 * The handlers of the shared limiters' RPCs, as the request's tenant.
 *
 * @since 0.4.0
 */
export const layerLimiterHandlers = SharedLimiter.SharedLimiterRpcs.toLayer(Effect.gen(function*() {
  const limiters = yield* SharedLimiters
  return SharedLimiter.SharedLimiterRpcs.of({
    DefineLimiter: (definition) => as((c) => limiters.define(c, definition)),
    GetLimiter: ({ name }) => as((c) => limiters.get(c, name)),
    ListLimiters: () => as((c) => limiters.list(c)),
    DeleteLimiter: ({ name }) => as((c) => limiters.remove(c, name))
  })
}))

/**
 * The RPC protocol on `POST /rpc` (see `RpcProtocol`), answering unary RPCs with the given handlers.
 *
 * @since 0.1.0
 */
export const layerProtocol: Layer.Layer<
  RpcServer.Protocol,
  never,
  HttpLayerRouter.HttpRouter | HttpAuth | Handlers
> = Layer.scoped(
  RpcServer.Protocol,
  Effect.gen(function*() {
    const router = yield* HttpLayerRouter.HttpRouter
    const { handler, protocol } = yield* RpcProtocol.make
    yield* router.add("POST", path, handler)
    return protocol
  })
)

/**
 * Every RPC served on `/rpc`: the batch RPCs and their sibling group, the campaign RPCs.
 *
 * @since 0.4.0
 */
export const group = Api.Api

/**
 * The `/rpc` route with its handlers.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<
  never,
  never,
  HttpLayerRouter.HttpRouter | HttpAuth | BatchOrchestrator | CampaignOrchestrator | SharedLimiters | OpenStreams
> = RpcServer.layer(group, { disableFatalDefects: true }).pipe(
  Layer.provide(layerProtocol),
  // built once, for the RPC server and the protocol's unary answers alike
  Layer.provide([layerHandlers, CampaignRpc.layerHandlers, layerLimiterHandlers, layerRpc])
)
