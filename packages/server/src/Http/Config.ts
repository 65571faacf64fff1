/**
 * Limits and timings of the HTTP server.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * Limits and timings of the HTTP server.
 *
 * @since 0.1.0
 */
export interface HttpOptions {
  /** the largest `/rpc` request body, in bytes (a bigger one is answered 413) */
  readonly maxRpcBodyBytes: number
  /** the most RPC requests one `/rpc` body may carry */
  readonly maxRequestsPerBody: number
  /** the most event streams (SSE and `StreamProgress`) one tenant may hold open at once (more: 429) */
  readonly maxStreamsPerTenant: number
  /** how often an idle event stream gets a comment line, to keep proxies from closing it */
  readonly heartbeat: Duration.Duration
  /** messages (SSE events, RPC responses) buffered per streaming client before the server waits for it */
  readonly streamBufferSize: number
  /** a client whose buffer stays full this long is disconnected (an SSE client resumes with `Last-Event-ID`) */
  readonly stallTimeout: Duration.Duration
  /** `/health` reports the worker loop dead when its last tick is older than this */
  readonly workerStaleAfter: Duration.Duration
  /** a request whose headers and body have not all arrived this long after it started is answered 408 and closed */
  readonly requestTimeout: Duration.Duration
}

/**
 * The HTTP server's options. Defaults: 64 MiB per `/rpc` body, 100 requests per body, 64 open streams
 * per tenant, a heartbeat every 15 s, 256 buffered messages per streaming client, a 30 s stall timeout, a
 * worker loop considered dead after 30 s without a tick, and 30 s to receive a request.
 *
 * @since 0.1.0
 */
export class HttpConfig extends Context.Reference<HttpConfig>()("@effect-batch/HttpConfig", {
  defaultValue: (): HttpOptions => ({
    maxRpcBodyBytes: 64 * 1024 * 1024,
    maxRequestsPerBody: 100,
    maxStreamsPerTenant: 64,
    heartbeat: Duration.seconds(15),
    streamBufferSize: 256,
    stallTimeout: Duration.seconds(30),
    workerStaleAfter: Duration.seconds(30),
    requestTimeout: Duration.seconds(30)
  })
}) {}

/**
 * Options as a caller writes them: any subset, durations as `Duration` inputs (`"15 seconds"`, millis).
 *
 * @since 0.1.0
 */
export type HttpOptionsInput = {
  readonly [K in keyof HttpOptions]?: HttpOptions[K] extends Duration.Duration ? Duration.DurationInput
    : HttpOptions[K]
}

/**
 * The options of `input`, the others from `defaults`.
 *
 * @since 0.1.0
 */
export const resolve = (input: HttpOptionsInput, defaults: HttpOptions): HttpOptions => {
  const duration = (value: Duration.DurationInput | undefined, fallback: Duration.Duration) =>
    value === undefined ? fallback : Duration.decode(value)
  return {
    maxRpcBodyBytes: input.maxRpcBodyBytes ?? defaults.maxRpcBodyBytes,
    maxRequestsPerBody: input.maxRequestsPerBody ?? defaults.maxRequestsPerBody,
    maxStreamsPerTenant: input.maxStreamsPerTenant ?? defaults.maxStreamsPerTenant,
    heartbeat: duration(input.heartbeat, defaults.heartbeat),
    streamBufferSize: input.streamBufferSize ?? defaults.streamBufferSize,
    stallTimeout: duration(input.stallTimeout, defaults.stallTimeout),
    workerStaleAfter: duration(input.workerStaleAfter, defaults.workerStaleAfter),
    requestTimeout: duration(input.requestTimeout, defaults.requestTimeout)
  }
}

/**
 * Overrides some of the HTTP server's options.
 *
 * @since 0.1.0
 */
export const layer = (options: HttpOptionsInput): Layer.Layer<HttpConfig> =>
  Layer.effect(HttpConfig, Effect.map(HttpConfig, (defaults) => resolve(options, defaults)))
