/**
 * `GET /batches/:id/events`: a batch's events as a `text/event-stream` (`id:` the sequence, `event:`
 * the tag, `data:` the JSON-encoded event). `Last-Event-ID` (or `?after=N`) replays what was missed,
 * then the stream goes live with no gap and no duplicate, and ends after the batch's terminal event (or
 * when the server shuts down: the client reconnects with its last id).
 * A comment line opens the stream (so the headers flush) and another is sent every `heartbeat`.
 *
 * The batch's events never wait for a client: each live event is written to every subscriber of the
 * batch in one pass (one fan-out per batch and process). A client that reads nothing for
 * `stallTimeout` while frames wait for it is disconnected and resumes from its last id. (Routes
 * without a fan-out, campaigns', buffer `streamBufferSize` events per client with the same stall rule.)
 *
 * Answers: 200 (the stream), 204 (a settled batch with nothing after `Last-Event-ID`: `EventSource`
 * stops reconnecting), 400 (invalid id or sequence), 401, 404 (unknown or another tenant's batch),
 * 429 (the tenant has `maxStreamsPerTenant` streams open), 503 (the database cannot be reached).
 *
 * @since 0.1.0
 */
import { BatchEvent, Errors, Ids, type Views } from "@effect-batch/domain"
import * as Sse from "@effect/experimental/Sse"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { BatchOrchestrator, type Caller } from "../BatchOrchestrator.js"
import { concat } from "../internal/Bytes.js"
import type * as Fanout from "../internal/Fanout.js"
import { disconnect, framesOf, heartbeatLine, makeOpenStreams, opening, respondFanned } from "../internal/SseFanout.js"
import * as Storage from "../internal/Storage.js"
import { browserToken, HttpAuth } from "./Auth.js"
import { HttpConfig } from "./Config.js"
import { checkAfter, follow, isSettled } from "./Events.js"
import { OpenStreams } from "./OpenStreams.js"
import { failure } from "./Responses.js"

/**
 * The route of the event stream.
 *
 * @since 0.1.0
 */
export const path = "/batches/:id/events"

class Stalled extends Data.TaggedError("Stalled") {}

const SequenceParam = Schema.String.pipe(
  Schema.pattern(/^[0-9]{1,15}$/),
  Schema.compose(Ids.SequenceFromString)
)
const decodeSequence = Schema.decodeUnknown(SequenceParam)
const decodeBatchId = Schema.decodeUnknown(Ids.BatchId)
const utf8 = new TextEncoder()

/**
 * How events of `schema` are written as SSE bytes: `id:` the sequence, `event:` the tag, `data:` the
 * encoded event. Encoding a decoded event cannot fail; if it did, that is a defect.
 *
 * A live event reaches every subscriber of its batch as the same object, so its frame is encoded
 * once and kept with the object for as long as the object lives.
 *
 * @since 0.4.0
 */
export const frames = <A extends { readonly _tag: string; readonly seq: number }, I>(schema: Schema.Schema<A, I>) => {
  const encode = Schema.encodeSync(schema)
  const encoded = new WeakMap<A, Uint8Array>()
  return (event: A): Uint8Array => {
    const cached = encoded.get(event)
    if (cached !== undefined) return cached
    const frame = utf8.encode(Sse.encoder.write({
      _tag: "Event",
      event: event._tag,
      id: String(event.seq),
      data: JSON.stringify(encode(event))
    }))
    encoded.set(event, frame)
    return frame
  }
}

/** What a client's buffer holds, as one buffer. */
const joined = (chunk: Chunk.Chunk<Uint8Array>): Chunk.Chunk<Uint8Array> =>
  chunk.length <= 1 ? chunk : Chunk.of(concat(Chunk.toReadonlyArray(chunk)))

const toFrame = frames(BatchEvent.BatchEvent)

/**
 * The sequence to resume after: `Last-Event-ID` wins over `?after=` (a reconnecting `EventSource`
 * sends both).
 *
 * @since 0.4.0
 */
export const afterOf = (
  request: HttpServerRequest.HttpServerRequest,
  search: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
): Effect.Effect<number, Errors.InvalidRequest> => {
  const header = request.headers["last-event-id"]
  const [source, value] = header !== undefined && header !== ""
    ? ["Last-Event-ID", header]
    : ["after", search["after"]]
  if (value === undefined) return Effect.succeed(0)
  return decodeSequence(value).pipe(
    Effect.mapError(() => new Errors.InvalidRequest({ message: `${source} must be a sequence number (0, 1, 2, ...)` }))
  )
}

/**
 * The bytes of an event stream, buffered for one client: the opening comment, then the events and
 * heartbeats. The events are pulled by a fiber of the request's scope.
 *
 * @since 0.1.0
 */
export const body = <E>(
  request: HttpServerRequest.HttpServerRequest,
  events: Stream.Stream<BatchEvent.BatchEvent, E>
): Effect.Effect<Stream.Stream<Uint8Array>, never, Scope.Scope> => bodyWith(request, events, toFrame, Effect.never)

/**
 * Like `body`, for any sequence-numbered events, each written as SSE bytes by `frame`; the stream
 * ends when `until` completes (one race for the whole stream: `Stream.interruptWhen` would race every
 * element, which costs more than delivering it).
 *
 * @since 0.4.0
 */
export const bodyWith = <A, E>(
  request: HttpServerRequest.HttpServerRequest,
  events: Stream.Stream<A, E>,
  frame: (event: A) => Uint8Array,
  until: Effect.Effect<void>
): Effect.Effect<Stream.Stream<Uint8Array>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* HttpConfig
    const mailbox = yield* Mailbox.make<Uint8Array>({ capacity: config.streamBufferSize, strategy: "suspend" })
    const stalled = Effect.timeoutFail({ duration: config.stallTimeout, onTimeout: () => new Stalled() })
    const heartbeats = mailbox.offer(heartbeatLine).pipe(
      stalled,
      Effect.delay(config.heartbeat),
      Effect.forever
    )
    // what fits goes in at once; the rest one by one, each within the stall timeout (no progress: cut)
    const offer = (frames: Chunk.Chunk<Uint8Array>) =>
      Effect.suspend(() => {
        const rest = mailbox.unsafeOfferAll(frames)
        return Chunk.isEmpty(rest)
          ? Effect.void
          : Effect.forEach(rest, (frame) => stalled(mailbox.offer(frame)), { discard: true })
      })
    const frames = events.pipe(
      Stream.runForEachChunk((chunk) => offer(Chunk.map(chunk, frame))),
      Effect.raceFirst(heartbeats),
      Effect.raceFirst(until)
    )
    yield* frames.pipe(
      Effect.catchTag("Stalled", () =>
        Effect.logInfo("disconnecting an SSE client that stopped reading").pipe(
          Effect.zipRight(disconnect(request))
        )),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.void
          : Effect.logWarning("event stream failed; the client resumes from its last id", cause)
      ),
      Effect.ensuring(mailbox.end),
      Effect.forkScoped
    )
    return Stream.concat(Stream.succeed(opening), Mailbox.toStream(mailbox).pipe(Stream.mapChunks(joined)))
  })

/**
 * The `text/event-stream` response of `events` for one client (see `bodyWith`).
 *
 * @since 0.4.0
 */
export const respond = <A, E>(
  request: HttpServerRequest.HttpServerRequest,
  events: Stream.Stream<A, E>,
  frame: (event: A) => Uint8Array,
  until: Effect.Effect<void>
) =>
  Effect.map(bodyWith(request, events, frame, until), (bytes) =>
    HttpServerResponse.stream(bytes, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" }
    }))

const isRouteError = (
  error: unknown
): error is Errors.Unauthorized | Errors.InvalidRequest | Errors.LimitExceeded | Errors.StorageUnavailable =>
  error instanceof Errors.Unauthorized || error instanceof Errors.InvalidRequest ||
  error instanceof Errors.LimitExceeded || error instanceof Errors.StorageUnavailable

/**
 * What an event-stream route follows: how to read it by id, whether its stream has an end (settled,
 * terminal), and its events.
 *
 * @since 0.4.0
 */
export interface Followed<Id, V extends { readonly lastSeq: number }, A, E> {
  readonly what: "batch" | "campaign"
  readonly decodeId: (input: unknown) => Effect.Effect<Id, ParseResult.ParseError>
  readonly get: (caller: Caller, id: Id) => Effect.Effect<V, E | Errors.StorageUnavailable>
  readonly ended: (followed: V) => boolean
  readonly follow: (caller: Caller, followed: V, after: number) => Stream.Stream<A, unknown>
  /**
   * When given, the route delivers through it instead of `follow`: the events after `after` to `sink`
   * (through one fan-out per followed stream), ending the sink after the last one.
   */
  readonly subscribe?: (
    caller: Caller,
    followed: V,
    after: number,
    sink: Fanout.Sink<A>
  ) => Effect.Effect<void, unknown, Scope.Scope>
  readonly frame: (event: A) => Uint8Array
  /** the answer when `get` finds nothing (unknown, or another tenant's) */
  readonly notFound: (error: E) => Effect.Effect<HttpServerResponse.HttpServerResponse>
}

/**
 * A `GET <path>` event-stream route (`path` with an `:id` parameter) with the guarantees above: the
 * token from the header, cookie or query; 204 for an ended stream with nothing after `after`; the
 * tenant's open-stream limit; typed error answers.
 *
 * @since 0.4.0
 */
export const route = <Id, V extends { readonly lastSeq: number }, A, E, R>(
  path: HttpLayerRouter.PathInput,
  make: Effect.Effect<Followed<Id, V, A, E>, never, R>
): Layer.Layer<never, never, HttpLayerRouter.HttpRouter | HttpAuth | OpenStreams | R> =>
  HttpLayerRouter.use((router) =>
    Effect.gen(function*() {
      const auth = yield* HttpAuth
      const streams = yield* OpenStreams
      const config = yield* HttpConfig
      const followed = yield* make
      // the server stops: every stream of this route ends (its clients reconnect, to this server or another)
      const stopping = yield* Deferred.make<void>()
      yield* Effect.addFinalizer(() => Deferred.succeed(stopping, undefined))
      const open = yield* makeOpenStreams
      const frames = framesOf(followed.frame)
      const storageFailure = Storage.atEdge(`${followed.what} SSE request`)
      const handler = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const search = yield* HttpServerRequest.ParsedSearchParams
        const params = yield* HttpLayerRouter.params
        const principal = yield* auth.authenticate(browserToken(request, search))
        const id = yield* followed.decodeId(params["id"]).pipe(
          Effect.mapError(() => new Errors.InvalidRequest({ message: `the ${followed.what} id must be a UUID` }))
        )
        const after = yield* afterOf(request, search)
        const caller = { tenant: principal.tenant, actor: principal.actor }
        const current = yield* followed.get(caller, id)
        yield* checkAfter(current, after, followed.what)
        if (followed.ended(current) && after >= current.lastSeq) return HttpServerResponse.empty({ status: 204 })
        yield* streams.acquire(principal.tenant, "sse")
        const subscribe = followed.subscribe
        if (subscribe !== undefined) {
          return yield* respondFanned(open, request, frames, (sink) => subscribe(caller, current, after, sink))
        }
        const events = followed.follow(caller, current, after)
        return yield* respond(request, events, followed.frame, Deferred.await(stopping)).pipe(
          Effect.provideService(HttpConfig, config)
        )
      }).pipe(
        Effect.catchAll((error) => {
          if (error instanceof SqlError) {
            return storageFailure(error).pipe(
              Effect.catchTag("StorageUnavailable", (unavailable) => failure(unavailable))
            )
          }
          if (isRouteError(error)) {
            return failure(error, error._tag === "Unauthorized" ? { headers: { "www-authenticate": "Bearer" } } : {})
          }
          return followed.notFound(error)
        })
      )
      yield* router.add("GET", path, handler)
    })
  )

/**
 * The batch event-stream route.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<
  never,
  never,
  HttpLayerRouter.HttpRouter | HttpAuth | BatchOrchestrator | OpenStreams
> = route(
  path,
  Effect.map(BatchOrchestrator, (orchestrator) => ({
    what: "batch" as const,
    decodeId: decodeBatchId,
    get: orchestrator.get,
    ended: isSettled,
    follow: (caller: Caller, batch: Views.BatchView, after: number) => follow(orchestrator, caller, batch, after),
    subscribe: (caller: Caller, batch: Views.BatchView, after: number, sink: Fanout.Sink<BatchEvent.BatchEvent>) =>
      orchestrator.subscribe(caller, batch.id, after, sink, isSettled(batch) ? batch.lastSeq : undefined),
    frame: toFrame,
    notFound: (error: Errors.BatchNotFound) => failure(error)
  }))
)
