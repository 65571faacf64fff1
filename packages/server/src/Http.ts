/**
 * The HTTP server of effect-batch, on one port:
 *
 * - `POST /rpc` — every RPC of the `Api` (NDJSON; streaming RPCs stream), `Authorization: Bearer`.
 * - `GET /batches/:id/events` — a batch's events as Server-Sent Events (see `Http/Sse`).
 * - `GET /campaigns/:id/events` — a campaign's events, likewise (see `Http/CampaignSse`).
 * - `GET /health` — database reachable, worker loop alive, claim lag (JSON; 200 or 503).
 * - `GET /metrics` — Prometheus text.
 *
 * ```ts
 * const server = Http.layer({ port: 8080 }).pipe(
 *   Layer.provide(Http.layerAuthConfig), // EFFECT_BATCH_TOKENS="token1=tenant-a,token2=tenant-b"
 *   Layer.provide(EffectBatch.layer),
 *   Layer.provide(WorkflowRegistry.layer(myWorkflow)),
 *   Layer.provide(Database.layer)
 * )
 * ```
 *
 * @since 0.1.0
 */
import { LimiterRepo } from "@effect-batch/tables/LimiterRepo"
import { StatsReader } from "@effect-batch/tables/StatsReader"
import { StreamRepo } from "@effect-batch/tables/StreamRepo"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import type { SqlClient } from "@effect/sql/SqlClient"
import type { ConfigError } from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Http from "node:http"
import type { BatchOrchestrator } from "./BatchOrchestrator.js"
import type { CampaignOrchestrator } from "./CampaignOrchestrator.js"
import * as Auth from "./Http/Auth.js"
import * as CampaignSse from "./Http/CampaignSse.js"
import * as Config from "./Http/Config.js"
import * as Health from "./Http/Health.js"
import * as Metrics from "./Http/Metrics.js"
import { OpenStreams } from "./Http/OpenStreams.js"
import * as Rpc from "./Http/Rpc.js"
import * as Sse from "./Http/Sse.js"
import type { SharedLimiters } from "./SharedLimiters.js"
import type { Worker } from "./Worker.js"

export {
  /**
   * Maps bearer tokens to tenants.
   *
   * @since 0.1.0
   */
  HttpAuth,
  /**
   * One accepted token: `{ token, tenant, actor? }`.
   *
   * @since 0.1.0
   */
  type Token
} from "./Http/Auth.js"
export {
  /**
   * Limits and timings of the HTTP server.
   *
   * @since 0.1.0
   */
  HttpConfig,
  /**
   * Limits and timings as a caller writes them.
   *
   * @since 0.1.0
   */
  type HttpOptionsInput
} from "./Http/Config.js"
export {
  /**
   * The body of `GET /health`.
   *
   * @since 0.1.0
   */
  Health
} from "./Http/Health.js"

/**
 * Accepts the given tokens: `Http.layerAuth([{ token: "s3cret", tenant: "acme", actor: "ci" }])`.
 *
 * @since 0.1.0
 */
export const layerAuth: (tokens: Iterable<Auth.Token>) => Layer.Layer<Auth.HttpAuth, ConfigError> = Auth.layer

/**
 * Accepts the tokens of `EFFECT_BATCH_TOKENS="token1=tenant-a,token2=tenant-b"` (an entry may name
 * its actor: `token3=tenant-a:alice`).
 *
 * @since 0.1.0
 */
export const layerAuthConfig: Layer.Layer<Auth.HttpAuth, ConfigError> = Auth.layerConfig

/**
 * Overrides limits and timings (body size, streams per tenant, heartbeat, stream buffer, stall timeout,
 * request timeout).
 *
 * @since 0.1.0
 */
export const layerConfig: (options: Config.HttpOptionsInput) => Layer.Layer<Config.HttpConfig> = Config.layer

/**
 * What the routes need: the orchestrator with its worker and shared limiters (`EffectBatch.layer`), a
 * database and the token map.
 *
 * @since 0.1.0
 */
export type Requirements =
  | BatchOrchestrator
  | CampaignOrchestrator
  | Worker
  | SharedLimiters
  | SqlClient
  | Auth.HttpAuth

/**
 * Every route, for an `HttpLayerRouter`. Merge other route layers (a dashboard) beside it.
 *
 * @since 0.1.0
 */
export const layerRoutes: Layer.Layer<never, never, HttpLayerRouter.HttpRouter | Requirements> = Layer.mergeAll(
  Rpc.layer,
  Sse.layer,
  CampaignSse.layer,
  Health.layer,
  Metrics.layer
).pipe(
  Layer.provide([OpenStreams.Default, StatsReader.Default, LimiterRepo.Default]),
  Layer.provide(StreamRepo.Default)
)

/**
 * Where and how to serve.
 *
 * @since 0.1.0
 */
export interface ServeOptions {
  /** the port; 0 picks a free one (read it with `url`) */
  readonly port: number
  /** the interface to listen on; default all */
  readonly host?: string | undefined
  /** log each request (default false) */
  readonly logRequests?: boolean | undefined
  /** limits and timings; the defaults of `HttpConfig` otherwise */
  readonly config?: Config.HttpOptionsInput | undefined
  /** more routes on the same server (e.g. the dashboard), with their own requirements provided */
  readonly routes?: Layer.Layer<never, never, HttpLayerRouter.HttpRouter> | undefined
}

/** How long connections still open get on shutdown, once the routes have ended their streams, before they are cut. */
const closeGrace = Duration.seconds(3)

/**
 * Stops listening and closes the connections as they become idle (a kept-alive one would hold the close
 * for Node's keep-alive timeout); those still busy after `closeGrace` are cut.
 */
const close = (server: Http.Server) =>
  Effect.async<void>((resume) => {
    if (!server.listening) return resume(Effect.void)
    const idle = setInterval(() => server.closeIdleConnections(), 25)
    const cut = setTimeout(() => server.closeAllConnections(), Duration.toMillis(closeGrace))
    const stop = () => {
      clearInterval(idle)
      clearTimeout(cut)
    }
    server.close(() => {
      stop()
      resume(Effect.void)
    })
    return Effect.sync(stop)
  })

/**
 * The server, listening on `options.port` with Node's `http` module until the layer is released. On
 * release the routes end their event streams and answer their last RPCs, then the server closes its
 * connections (cutting those still busy after a few seconds).
 *
 * @since 0.1.0
 */
export const layer = (options: ServeOptions): Layer.Layer<HttpServer.HttpServer, ServeError, Requirements> => {
  const routes = options.routes === undefined ? layerRoutes : Layer.merge(layerRoutes, options.routes)
  const requestTimeout = Duration.toMillis(
    Config.resolve(options.config ?? {}, Config.HttpConfig.defaultValue()).requestTimeout
  )
  return Layer.unwrapEffect(Effect.sync(() => {
    const server = Http.createServer({
      requestTimeout,
      headersTimeout: Math.min(60_000, requestTimeout),
      // Node looks for timed-out requests only this often (every 30 s by default)
      connectionsCheckingInterval: Math.min(1_000, requestTimeout)
    })
    return HttpLayerRouter.serve(
      options.config === undefined ? routes : Layer.provide(routes, Config.layer(options.config)),
      { disableLogger: options.logRequests !== true, disableListenLog: true }
    ).pipe(
      // released after the routes, before the server's own release
      Layer.provide(Layer.scopedDiscard(Effect.addFinalizer(() => close(server)))),
      Layer.provideMerge(NodeHttpServer.layer(() => server, {
        port: options.port,
        ...(options.host === undefined ? {} : { host: options.host })
      }))
    )
  }))
}

/**
 * The base URL of the running server (`http://127.0.0.1:PORT` when it listens on every interface).
 *
 * @since 0.1.0
 */
export const url: Effect.Effect<string, never, HttpServer.HttpServer> = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address
  if (address._tag === "UnixAddress") return `http+unix://${encodeURIComponent(address.path)}`
  const host = address.hostname === "0.0.0.0" || address.hostname === "::" ? "127.0.0.1" : address.hostname
  return `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`
})
