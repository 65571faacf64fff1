/**
 * A typed client of the effect-batch HTTP server: every RPC over `POST /rpc` (NDJSON), and `watch`,
 * a batch's events over SSE that reconnects by itself.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const client = yield* BatchClient.BatchClient
 *   const batch = yield* client.create({ workflow: "extract", items: [{ key: "a", input: { title: "A" } }] })
 *   yield* client.watch(batch.id).pipe(Stream.runForEach((event) => Console.log(event._tag)))
 * }).pipe(Effect.provide(BatchClient.layerFetch({ url: "http://localhost:8080", token: "s3cret" })))
 * ```
 *
 * Every method decodes its input first (a bad one fails with `InvalidRequest` and sends nothing), and
 * may fail with `Unauthorized`, `LimitExceeded` (a body over the server's limit), `StorageUnavailable`
 * (the server's database cannot be reached: retry later) or `RpcClientError`
 * (the server could not be reached or answered something else), besides its RPC's own errors.
 *
 * @since 0.1.0
 */
import type { BatchEvent, Views } from "@effect-batch/domain"
import { Api, type BatchConfig, Errors, Rpcs, SharedLimiter } from "@effect-batch/domain"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { decodeHttpError, watch, type WatchError, type WatchOptions } from "./BatchClient/Watch.js"

export {
  /**
   * The default reconnection policy of `watch`.
   *
   * @since 0.1.0
   */
  defaultReconnect,
  /**
   * Why `watch` stopped.
   *
   * @since 0.1.0
   */
  type WatchError
} from "./BatchClient/Watch.js"

/**
 * Failures every method may have besides its RPC's own errors.
 *
 * @since 0.1.0
 */
export type ClientError =
  | Errors.Unauthorized
  | Errors.InvalidRequest
  | Errors.LimitExceeded
  | Errors.StorageUnavailable
  | RpcClientError

/** @since 0.1.0 */
export type CommandError = Errors.BatchNotFound | Errors.InvalidTransition | Errors.VersionConflict | ClientError

/**
 * The underlying RPC client.
 *
 * @since 0.1.0
 */
export type Rpc = RpcClient.RpcClient<RpcGroup.Rpcs<typeof Api.Api>, RpcClientError>

/**
 * The client.
 *
 * @since 0.1.0
 */
export class BatchClient extends Context.Tag("@effect-batch/BatchClient")<BatchClient, {
  /** Submits a batch; an invalid item rejects it whole (`InvalidItems`, naming each bad item). */
  readonly create: (
    input: typeof Rpcs.CreateBatchPayload.Encoded
  ) => Effect.Effect<
    Views.BatchView,
    Errors.InvalidItems | Errors.EmptyBatch | Errors.InvalidBatchConfig | Errors.WorkflowNotFound | ClientError
  >
  readonly get: (batchId: string) => Effect.Effect<Views.BatchView, Errors.BatchNotFound | ClientError>
  /** A page of the tenant's batches, newest first. */
  readonly list: (
    input?: typeof Rpcs.ListBatchesPayload.Encoded
  ) => Effect.Effect<Page<Views.BatchView>, ClientError>
  /** A page of a batch's items in key order. */
  readonly listItems: (
    batchId: string,
    options?: Omit<typeof Rpcs.ListItemsPayload.Encoded, "batchId">
  ) => Effect.Effect<Page<Views.ItemView>, Errors.BatchNotFound | ClientError>
  readonly progress: (batchId: string) => Effect.Effect<Views.Progress, Errors.BatchNotFound | ClientError>
  /** The slowdown trends: the latest sampled windows, the baseline and the status. */
  readonly trends: (batchId: string) => Effect.Effect<Views.Trends, Errors.BatchNotFound | ClientError>
  /** Every item's result, in key order. */
  readonly results: (batchId: string) => Stream.Stream<Views.ItemResult, Errors.BatchNotFound | ClientError>
  /** The events after `after` over one `StreamProgress` call (no reconnection; see `watch`). */
  readonly events: (
    batchId: string,
    after?: number
  ) => Stream.Stream<BatchEvent.BatchEvent, Errors.BatchNotFound | ClientError>
  /** The events after `after` over SSE; reconnects by itself and ends after the terminal event. */
  readonly watch: (batchId: string, after?: number) => Stream.Stream<BatchEvent.BatchEvent, WatchError>
  readonly pause: (batchId: string, note?: string) => Effect.Effect<Views.BatchView, CommandError>
  readonly resume: (batchId: string) => Effect.Effect<Views.BatchView, CommandError>
  readonly cancel: (batchId: string, note?: string) => Effect.Effect<Views.BatchView, CommandError>
  readonly approve: (batchId: string, note?: string) => Effect.Effect<Views.BatchView, CommandError>
  readonly reject: (batchId: string, note?: string) => Effect.Effect<Views.BatchView, CommandError>
  /** Re-queues the failed items of a settled batch; with `dryRun`, only says which it would. */
  readonly retryFailed: (
    batchId: string,
    options?: { readonly dryRun?: boolean | undefined }
  ) => Effect.Effect<Views.RedrivePlan, CommandError>
  /** Runs items of a settled batch again from a named durable step (see `BatchOrchestrator`). */
  readonly rerunFromStep: (
    batchId: string,
    options: { readonly itemKeys: ReadonlyArray<string>; readonly step: string }
  ) => Effect.Effect<{ readonly requeued: number; readonly discarded: number }, CommandError>
  /** Releases quarantined items (all, or the given keys) back into the queue. */
  readonly releaseQuarantined: (
    batchId: string,
    itemKeys?: ReadonlyArray<string>
  ) => Effect.Effect<{ readonly released: number }, CommandError>
  readonly updateConfig: (
    batchId: string,
    patch: typeof BatchConfig.ConfigPatch.Encoded
  ) => Effect.Effect<Views.BatchView, CommandError>
  /** Creates or redefines one of the tenant's shared rate limiters. */
  readonly defineLimiter: (
    input: typeof SharedLimiter.Definition.Encoded
  ) => Effect.Effect<SharedLimiter.View, ClientError>
  readonly getLimiter: (name: string) => Effect.Effect<SharedLimiter.View, Errors.LimiterNotFound | ClientError>
  /** The tenant's shared limiters with their state across the fleet, by name. */
  readonly listLimiters: () => Effect.Effect<ReadonlyArray<SharedLimiter.View>, ClientError>
  readonly deleteLimiter: (name: string) => Effect.Effect<void, Errors.LimiterNotFound | ClientError>
  /** The underlying RPC client, for anything else. */
  readonly rpc: Rpc
}>() {}

/**
 * A page of a listing.
 *
 * @since 0.1.0
 */
export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor?: string | undefined
}

/**
 * Where the server is and the token to use.
 *
 * @since 0.1.0
 */
export interface Options extends Omit<WatchOptions, "token"> {
  readonly token: string | Redacted.Redacted<string>
}

/**
 * A payload decoder whose failure is an `InvalidRequest` naming the field.
 *
 * @since 0.4.0
 */
export const decoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknown(schema)
  return (input: unknown): Effect.Effect<A, Errors.InvalidRequest> =>
    Effect.mapError(
      decode(input),
      (error) => new Errors.InvalidRequest({ message: ParseResult.TreeFormatter.formatErrorSync(error) })
    )
}

const decodeCreate = decoder(Rpcs.CreateBatchPayload)
const decodeRef = decoder(Rpcs.BatchRef)
const decodeList = decoder(Rpcs.ListBatchesPayload)
const decodeListItems = decoder(Rpcs.ListItemsPayload)
const decodeProgress = decoder(Rpcs.StreamProgressPayload)
const decodeCommand = decoder(Rpcs.CommandPayload)
const decodeRetry = decoder(Rpcs.RetryFailedPayload)
const decodeRerun = decoder(Rpcs.RerunFromStepPayload)
const decodeRelease = decoder(Rpcs.ReleaseQuarantinedPayload)
const decodeUpdate = decoder(Rpcs.UpdateConfigPayload)
const decodeDefinition = decoder(SharedLimiter.Definition)
const decodeLimiterName = decoder(Schema.Struct({ name: SharedLimiter.Definition.fields.name }))

const withNote = (batchId: string, note: string | undefined) => note === undefined ? { batchId } : { batchId, note }

const isTransport = (error: unknown): error is RpcClientError => error instanceof RpcClientError

/** A non-2xx answer to `/rpc` carries a typed error (401, 413, 400): surface it. */
const fromTransport = (error: RpcClientError): Effect.Effect<never, ClientError> => {
  const cause = error.cause
  if (cause instanceof HttpClientError.ResponseError && cause.description !== undefined) {
    const typed = decodeHttpError(cause.description)
    if (Option.isSome(typed) && typed.value._tag !== "BatchNotFound") return Effect.fail(typed.value)
  }
  return Effect.fail(error)
}

const checkStatus = (client: HttpClient.HttpClient): HttpClient.HttpClient =>
  HttpClient.transformResponse(
    client,
    (effect) =>
      Effect.flatMap(effect, (response) =>
        response.status >= 200 && response.status < 300
          ? Effect.succeed(response)
          : Effect.flatMap(Effect.orElseSucceed(response.text, () => ""), (body) =>
            Effect.fail(
              new HttpClientError.ResponseError({
                request: response.request,
                response,
                reason: "StatusCode",
                description: body
              })
            )))
  )

/**
 * The RPC protocol to the server's `POST /rpc` with the bearer token (what `make` and the campaign
 * client build their RPC clients on), with the base URL and token it uses.
 *
 * @since 0.4.0
 */
export const makeProtocol = (options: Options) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    const token = Redacted.isRedacted(options.token) ? Redacted.value(options.token) : options.token
    const base = options.url.replace(/\/+$/, "")
    const protocol = yield* RpcClient.makeProtocolHttp(
      checkStatus(http).pipe(
        HttpClient.mapRequest(HttpClientRequest.prependUrl(`${base}/rpc`)),
        HttpClient.mapRequest(HttpClientRequest.bearerToken(token))
      )
    ).pipe(Effect.provide(RpcSerialization.layerNdjson))
    return { http, token, base, protocol }
  })

/**
 * Calls an RPC with a decoded payload; a transport failure that carries a typed error surfaces it.
 *
 * @since 0.4.0
 */
export const call = <P, A, E>(
  input: Effect.Effect<P, Errors.InvalidRequest>,
  f: (payload: P) => Effect.Effect<A, E | RpcClientError>
): Effect.Effect<A, E | ClientError> => Effect.flatMap(input, f).pipe(Effect.catchIf(isTransport, fromTransport))

/**
 * Like `call`, for a streaming RPC.
 *
 * @since 0.4.0
 */
export const callStream = <P, A, E>(
  input: Effect.Effect<P, Errors.InvalidRequest>,
  f: (payload: P) => Stream.Stream<A, E | RpcClientError>
): Stream.Stream<A, E | ClientError> =>
  Stream.unwrap(Effect.map(input, f)).pipe(
    Stream.catchAll((error): Stream.Stream<A, E | ClientError> =>
      isTransport(error) ? Stream.fromEffect(fromTransport(error)) : Stream.fail(error)
    )
  )

/**
 * Builds the client over an `HttpClient`.
 *
 * @since 0.1.0
 */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const { base, http, protocol, token } = yield* makeProtocol(options)
    const rpc: Rpc = yield* RpcClient.make(Api.Api).pipe(Effect.provideService(RpcClient.Protocol, protocol))

    return BatchClient.of({
      create: (input) => call(decodeCreate(input), (payload) => rpc.CreateBatch(payload)),
      get: (batchId) => call(decodeRef({ batchId }), (payload) => rpc.GetBatch(payload)),
      list: (input = {}) => call(decodeList(input), (payload) => rpc.ListBatches(payload)),
      listItems: (batchId, options = {}) =>
        call(decodeListItems({ ...options, batchId }), (payload) => rpc.ListItems(payload)),
      progress: (batchId) => call(decodeRef({ batchId }), (payload) => rpc.GetProgress(payload)),
      trends: (batchId) => call(decodeRef({ batchId }), (payload) => rpc.GetTrends(payload)),
      results: (batchId) => callStream(decodeRef({ batchId }), (payload) => rpc.GetResults(payload)),
      events: (batchId, after = 0) =>
        callStream(decodeProgress({ batchId, after }), (payload) => rpc.StreamProgress(payload)),
      watch: (batchId, after) => watch(http, { ...options, url: base, token }, batchId, after),
      pause: (batchId, note) => call(decodeCommand(withNote(batchId, note)), (payload) => rpc.Pause(payload)),
      resume: (batchId) => call(decodeCommand({ batchId }), (payload) => rpc.Resume(payload)),
      cancel: (batchId, note) => call(decodeCommand(withNote(batchId, note)), (payload) => rpc.Cancel(payload)),
      approve: (batchId, note) => call(decodeCommand(withNote(batchId, note)), (payload) => rpc.Approve(payload)),
      reject: (batchId, note) => call(decodeCommand(withNote(batchId, note)), (payload) => rpc.Reject(payload)),
      retryFailed: (batchId, options = {}) =>
        call(
          decodeRetry(options.dryRun === undefined ? { batchId } : { batchId, dryRun: options.dryRun }),
          (payload) => rpc.RetryFailed(payload)
        ),
      rerunFromStep: (batchId, options) =>
        call(decodeRerun({ batchId, ...options }), (payload) => rpc.RerunFromStep(payload)),
      releaseQuarantined: (batchId, itemKeys) =>
        call(
          decodeRelease(itemKeys === undefined ? { batchId } : { batchId, itemKeys }),
          (payload) => rpc.ReleaseQuarantined(payload)
        ),
      updateConfig: (batchId, patch) => call(decodeUpdate({ batchId, patch }), (payload) => rpc.UpdateConfig(payload)),
      defineLimiter: (input) => call(decodeDefinition(input), (payload) => rpc.DefineLimiter(payload)),
      getLimiter: (name) => call(decodeLimiterName({ name }), (payload) => rpc.GetLimiter(payload)),
      listLimiters: () => call(Effect.void, () => rpc.ListLimiters()),
      deleteLimiter: (name) => call(decodeLimiterName({ name }), (payload) => rpc.DeleteLimiter(payload)),
      rpc
    })
  })

/**
 * The client over the `HttpClient` in context (Node's or fetch).
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<BatchClient, never, HttpClient.HttpClient> =>
  Layer.scoped(BatchClient, make(options))

/**
 * The client over `fetch`.
 *
 * @since 0.1.0
 */
export const layerFetch = (options: Options): Layer.Layer<BatchClient> =>
  layer(options).pipe(Layer.provide(FetchHttpClient.layer))
