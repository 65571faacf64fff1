/**
 * The RPC protocol of `POST /rpc`: NDJSON over HTTP, like `RpcServer.makeProtocolWithHttpApp`, with
 * three differences. Requests are checked first (`RpcGuard`: a bad one gets an HTTP error and reaches no
 * handler). A body of unary RPCs only is answered directly, without the protocol (`RpcUnary`).
 * Responses go through a bounded buffer per request (`streamBufferSize` messages, 1 MiB): a streaming
 * RPC (`GetResults`, `StreamProgress`) is produced only as fast as its client reads it, so a slow
 * client costs a bounded amount of memory, and one whose buffer stays full for `stallTimeout` is
 * disconnected.
 *
 * @since 0.1.0
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as RpcMessage from "@effect/rpc/RpcMessage"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { HttpAuth } from "./Auth.js"
import { HttpConfig } from "./Config.js"
import { check, type Envelope } from "./RpcGuard.js"
import { encodeLine, type Handlers, isUnary, respond } from "./RpcUnary.js"

interface Client {
  readonly write: (response: RpcMessage.FromServerEncoded) => Effect.Effect<void>
  readonly end: Effect.Effect<void>
}

const toRequest = (envelope: Envelope, headers: ReadonlyArray<[string, string]>): RpcMessage.RequestEncoded => ({
  _tag: "Request",
  id: envelope.id,
  tag: envelope.tag,
  payload: envelope.payload,
  headers: [...headers, ...envelope.headers.map(([name, value]): [string, string] => [name, value])],
  ...(envelope.traceId === undefined ? {} : { traceId: envelope.traceId }),
  ...(envelope.spanId === undefined ? {} : { spanId: envelope.spanId }),
  ...(envelope.sampled === undefined ? {} : { sampled: envelope.sampled })
})

/** The most bytes of responses buffered per streaming request before the server waits for the client. */
const maxBufferedBytes = 1024 * 1024

/** Cuts the connection of a client that stopped reading (its pending writes would never finish). */
const disconnect = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.try(() => NodeHttpServerRequest.toServerResponse(request).destroy()).pipe(
    Effect.catchAll((error) => Effect.logDebug("could not destroy a stalled RPC connection", error))
  )

/**
 * The protocol, and the HTTP handler to route `POST /rpc` to. It answers unary RPCs with the handlers
 * of its context.
 *
 * @since 0.1.0
 */
export const make: Effect.Effect<
  {
    readonly protocol: RpcServer.Protocol["Type"]
    readonly handler: Effect.Effect<
      HttpServerResponse.HttpServerResponse,
      never,
      HttpServerRequest.HttpServerRequest | Scope.Scope
    >
  },
  never,
  HttpAuth | Handlers
> = Effect.gen(function*() {
  const config = yield* HttpConfig
  const context = yield* Effect.context<HttpAuth>()
  const handlers = yield* Effect.context<Handlers>()
  const disconnects = yield* Mailbox.make<number>()
  const clients = new Map<number, Client>()
  const clientIds = new Set<number>()
  let nextClientId = 0
  let writeRequest: (clientId: number, message: RpcMessage.FromClientEncoded) => Effect.Effect<void> = () => Effect.void

  const protocol = yield* RpcServer.Protocol.make((write) => {
    writeRequest = write
    return Effect.succeed({
      disconnects,
      send: (clientId, response) => clients.get(clientId)?.write(response) ?? Effect.void,
      end: (clientId) => clients.get(clientId)?.end ?? Effect.void,
      clientIds: Effect.sync(() => clientIds),
      initialMessage: Effect.succeedNone,
      supportsAck: false,
      supportsTransferables: false,
      supportsSpanPropagation: false
    })
  })

  const handler = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const checked = yield* Effect.provide(check(request), context)
    if (Either.isLeft(checked)) return checked.left
    const { principal, requests } = checked.right
    const id = nextClientId++
    const headers = Object.entries(request.headers)
    if (isUnary(requests)) return yield* respond(handlers, { clientId: id, principal, headers }, requests)
    const envelopes = requests.map((checked) => checked.envelope)
    const mailbox = yield* Mailbox.make<Uint8Array>({ capacity: config.streamBufferSize, strategy: "suspend" })
    // a response message may carry a whole chunk of a stream: bound the buffer in bytes as well
    let buffered = 0
    const drained = yield* Effect.makeLatch(true)
    clientIds.add(id)
    clients.set(id, {
      write: (response) => {
        const bytes = encodeLine(response)
        if (bytes === undefined) return Effect.void
        buffered += bytes.length
        return mailbox.offer(bytes).pipe(
          Effect.zipRight(
            buffered > maxBufferedBytes ? drained.close.pipe(Effect.zipRight(drained.await)) : Effect.void
          ),
          Effect.timeoutFail({ duration: config.stallTimeout, onTimeout: () => "stalled" }),
          Effect.catchAll(() =>
            Effect.logInfo("disconnecting an RPC client that stopped reading").pipe(
              Effect.zipRight(disconnect(request)),
              Effect.zipRight(mailbox.end)
            )
          ),
          Effect.asVoid
        )
      },
      end: Effect.asVoid(mailbox.end)
    })
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        clientIds.delete(id)
        clients.delete(id)
        disconnects.unsafeOffer(id)
        // ended: every request was answered; otherwise the client left and its requests are interrupted
        if (Option.isNone(mailbox.unsafeSize())) return Effect.void
        return Effect.forEach(
          envelopes,
          (envelope) => writeRequest(id, { _tag: "Interrupt", requestId: envelope.id }),
          { discard: true }
        )
      })
    )
    for (const envelope of envelopes) yield* writeRequest(id, toRequest(envelope, headers))
    yield* writeRequest(id, RpcMessage.constEof)
    const body = Mailbox.toStream(mailbox).pipe(
      Stream.tap((bytes) => {
        buffered -= bytes.length
        return buffered <= maxBufferedBytes ? drained.open : Effect.void
      })
    )
    return HttpServerResponse.stream(body, { contentType: "application/ndjson" })
  }).pipe(Effect.interruptible)

  return { protocol, handler } as const
})
