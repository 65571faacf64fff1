/**
 * `POST /rpc`: every RPC of `BatchRpcs` over HTTP with NDJSON framing (streaming RPCs stream),
 * authenticated by `Authorization: Bearer <token>` and scoped to the token's tenant. Requests are
 * checked before any handler runs (`RpcGuard`); responses are produced as fast as the client reads
 * them (`RpcProtocol`). `StreamProgress` counts against the tenant's open streams, like SSE.
 *
 * @since 0.1.0
 */
import { Rpcs } from "@effect-batch/domain"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as RpcServer from "@effect/rpc/RpcServer"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { BatchOrchestrator, type Caller } from "../BatchOrchestrator.js"
import * as Storage from "../internal/Storage.js"
import { HttpAuth, layerRpc } from "./Auth.js"
import { checkAfter, follow } from "./Events.js"
import { OpenStreams } from "./OpenStreams.js"
import * as RpcProtocol from "./RpcProtocol.js"

/**
 * The path of the RPC endpoint.
 *
 * @since 0.1.0
 */
export const path = "/rpc"

const storageFailure = Storage.atEdge("RPC")

const caller = Effect.map(Rpcs.CurrentTenant, (principal): Caller => ({
  tenant: principal.tenant,
  actor: principal.actor
}))

/**
 * The handlers of every RPC, calling the orchestrator as the request's tenant.
 *
 * @since 0.1.0
 */
export const layerHandlers = Rpcs.BatchRpcs.toLayer(Effect.gen(function*() {
  const orchestrator = yield* BatchOrchestrator
  const streams = yield* OpenStreams
  const as = <A, E, R>(f: (caller: Caller) => Effect.Effect<A, E | SqlError, R>) =>
    Effect.flatMap(caller, f).pipe(
      Effect.catchIf((error): error is SqlError => error instanceof SqlError, storageFailure)
    )

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
    GetResults: ({ batchId }) =>
      Stream.unwrap(Effect.map(caller, (c) => orchestrator.results(c, batchId))).pipe(
        Stream.catchTag("SqlError", (error) => Stream.fromEffect(storageFailure(error)))
      ),
    StreamProgress: ({ after, batchId }) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const c = yield* caller
        const batch = yield* orchestrator.get(c, batchId)
        yield* checkAfter(batch, after)
        yield* streams.acquire(c.tenant, "rpc")
        return follow(orchestrator, c, batch, after)
      })).pipe(Stream.catchTag("SqlError", (error) => Stream.fromEffect(storageFailure(error)))),
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
 * The RPC protocol on `POST /rpc` (see `RpcProtocol`).
 *
 * @since 0.1.0
 */
export const layerProtocol: Layer.Layer<
  RpcServer.Protocol,
  never,
  HttpLayerRouter.HttpRouter | HttpAuth
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
 * The `/rpc` route with its handlers.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<
  never,
  never,
  HttpLayerRouter.HttpRouter | HttpAuth | BatchOrchestrator | OpenStreams
> = RpcServer.layer(Rpcs.BatchRpcs, { disableFatalDefects: true }).pipe(
  Layer.provide([layerHandlers, layerRpc, layerProtocol])
)
