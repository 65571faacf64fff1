/**
 * Following a batch's events over Server-Sent Events, reconnecting by itself.
 *
 * @since 0.1.0
 */
import { BatchEvent, Errors, Ids } from "@effect-batch/domain"
import * as Sse from "@effect/experimental/Sse"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { HttpError } from "../Http/Responses.js"

/**
 * The typed error of a non-2xx answer, when its body is one.
 *
 * @since 0.1.0
 */
export const decodeHttpError: (body: string) => Option.Option<HttpError> = Schema.decodeUnknownOption(
  Schema.parseJson(HttpError)
)

/**
 * Why `watch` stopped: a typed answer of the server, or a transport failure once reconnecting gave up.
 *
 * @since 0.1.0
 */
export type WatchError =
  | Errors.BatchNotFound
  | Errors.Unauthorized
  | Errors.InvalidRequest
  | Errors.LimitExceeded
  | RpcClientError

/**
 * How `watch` connects and reconnects.
 *
 * @since 0.1.0
 */
export interface WatchOptions {
  /** the server's base URL */
  readonly url: string
  readonly token: string
  /** when to reconnect after a transport failure; default: exponential from 200 ms, capped at 5 s, forever */
  readonly reconnect?: Schedule.Schedule<unknown> | undefined
  /** reconnect when nothing (not even a heartbeat) arrives for this long; default 45 s */
  readonly idleTimeout?: Duration.DurationInput | undefined
}

/**
 * The default reconnection policy: exponential from 200 ms with jitter, capped at 5 s, forever.
 *
 * @since 0.1.0
 */
export const defaultReconnect: Schedule.Schedule<unknown> = Schedule.union(
  Schedule.exponential("200 millis").pipe(Schedule.jittered),
  Schedule.spaced("5 seconds")
)

const decodeEvent = Schema.decodeUnknown(Schema.parseJson(BatchEvent.BatchEvent))
const decodeBatchId = Schema.decodeUnknown(Ids.BatchId)
const decodeAfter = Schema.decodeUnknown(Ids.Sequence)

const transport = (message: string) => (cause: unknown) => new RpcClientError({ reason: "Protocol", message, cause })

interface Position {
  readonly seq: number
  /** the last event was terminal, or the server said there is nothing more */
  readonly done: boolean
}

/**
 * The events of a batch after `after` (default 0), from `GET /batches/:id/events`. On a transport
 * failure, a dropped connection or a silent one, it reconnects with `Last-Event-ID` set to the last
 * sequence it saw, so it misses nothing and repeats nothing. It ends after the batch's terminal event.
 *
 * @since 0.1.0
 */
export const watch = (
  http: HttpClient.HttpClient,
  options: WatchOptions,
  batchId: string,
  after = 0
): Stream.Stream<BatchEvent.BatchEvent, WatchError> =>
  Stream.unwrap(Effect.gen(function*() {
    const id = yield* decodeBatchId(batchId).pipe(
      Effect.mapError(() => new Errors.InvalidRequest({ message: "the batch id must be a UUID" }))
    )
    const from = yield* decodeAfter(after).pipe(
      Effect.mapError(() => new Errors.InvalidRequest({ message: "after must be a sequence number" }))
    )
    const position = yield* Ref.make<Position>({ seq: from, done: false })
    const idle = Duration.decode(options.idleTimeout ?? "45 seconds")
    const eventsUrl = `${options.url.replace(/\/+$/, "")}/batches/${id}/events`

    const connect = (last: number): Stream.Stream<BatchEvent.BatchEvent, WatchError> =>
      Stream.unwrap(Effect.gen(function*() {
        const response = yield* http.execute(
          HttpClientRequest.get(eventsUrl).pipe(
            HttpClientRequest.bearerToken(options.token),
            HttpClientRequest.setHeaders({ accept: "text/event-stream", "last-event-id": String(last) })
          )
        ).pipe(Effect.mapError(transport("could not reach the event stream")))
        if (response.status === 204) {
          yield* Ref.update(position, (p) => ({ ...p, done: true }))
          return Stream.empty
        }
        if (response.status !== 200) {
          const body = yield* Effect.orElseSucceed(response.text, () => "")
          const typed = decodeHttpError(body)
          // an unavailable database is waited out, like a transport failure
          if (Option.isSome(typed) && typed.value._tag !== "StorageUnavailable") return yield* Effect.fail(typed.value)
          return yield* Effect.fail(transport(`the event stream answered ${response.status}`)(body))
        }
        return response.stream.pipe(
          Stream.mapError(transport("the event stream broke")),
          Stream.timeoutFail(() => transport("the event stream went silent")(undefined), idle),
          Stream.decodeText(),
          Stream.pipeThroughChannel(Sse.makeChannel()),
          Stream.mapEffect((event) => Effect.orDie(decodeEvent(event.data)))
        )
      }))

    const once = Stream.unwrap(Effect.map(Ref.get(position), (p) => connect(p.seq))).pipe(
      Stream.filterEffect((event) =>
        Ref.modify(position, (p): readonly [boolean, Position] =>
          event.seq <= p.seq ? [false, p] : [true, { seq: event.seq, done: BatchEvent.isTerminal(event) }])
      ),
      Stream.concat(Stream.unwrap(Effect.map(Ref.get(position), (p) =>
        p.done ? Stream.empty : Stream.fail(transport("the event stream ended before the batch did")(undefined)))))
    )
    const policy = Schedule.intersect(
      options.reconnect ?? defaultReconnect,
      Schedule.recurWhile((error: WatchError) =>
        error._tag === "RpcClientError"
      )
    )
    return Stream.retry(once, policy)
  }))
