/**
 * How a batch's event stream reaches its subscribers' sockets through the batch's fan-out: each
 * delivery's frames as one buffer (built once for every subscriber that got the same array), pushed to
 * a `Readable` piped to the response; one heartbeat loop and one stall check per route.
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Readable } from "node:stream"
import { HttpConfig } from "../Http/Config.js"
import { concat } from "./Bytes.js"
import type * as Fanout from "./Fanout.js"

const utf8 = new TextEncoder()

/** The comment line that opens an event stream (so that its headers flush). */
export const opening = utf8.encode(": effect-batch events\n\n")

/** The comment line sent on idle event streams. */
export const heartbeatLine = utf8.encode(": heartbeat\n\n")

/** Cuts the connection of a client that stopped reading (its pending writes would never finish). */
export const disconnect = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.try(() => NodeHttpServerRequest.toServerResponse(request).destroy()).pipe(
    Effect.catchAll((error) => Effect.logDebug("could not destroy a stalled SSE connection", error))
  )

/**
 * The frames of a delivery as one buffer. A fan-out hands the same array of live events to every
 * subscriber that is up to date, so the buffer is built once and written to each of their sockets.
 */
export const framesOf = <A>(frame: (event: A) => Uint8Array) => {
  const built = new WeakMap<ReadonlyArray<A>, Uint8Array>()
  return (events: ReadonlyArray<A>): Uint8Array => {
    const cached = built.get(events)
    if (cached !== undefined) return cached
    const bytes = concat(events.map(frame))
    built.set(events, bytes)
    return bytes
  }
}

/** The most bytes of frames a fanned-out client may have waiting: past this it is cut at once. */
const maxBufferedBytes = 8 * 1024 * 1024

/** An open fanned-out stream: what its client has not read yet waits in `readable`. */
interface Open {
  readonly readable: Readable
  readonly request: HttpServerRequest.HttpServerRequest
  /** the socket's bytes written at the last check, and since when they have not moved with frames waiting */
  written: number
  stalledSince: number | undefined
  ended: boolean
}

/**
 * Bytes handed to the client's socket so far (they stop moving when the client stops reading), and the
 * bytes waiting in the socket's own buffer.
 */
const socketOf = (request: HttpServerRequest.HttpServerRequest) => {
  try {
    const socket = NodeHttpServerRequest.toServerResponse(request).socket
    return { written: socket?.bytesWritten ?? 0, waiting: socket?.writableLength ?? 0 }
  } catch {
    return { written: 0, waiting: 0 }
  }
}

const push = (open: Open, bytes: Uint8Array | null) => {
  if (open.ended) return
  if (bytes === null) open.ended = true
  open.readable.push(bytes)
}

/**
 * The fanned-out streams of a route: one heartbeat loop and one stall check for all of them (not a
 * fiber per stream), and their end when the server stops.
 */
export const makeOpenStreams = Effect.gen(function*() {
  const config = yield* HttpConfig
  const open = new Set<Open>()
  yield* Effect.sleep(config.heartbeat).pipe(
    Effect.zipRight(Effect.sync(() => {
      for (const stream of open) push(stream, heartbeatLine)
    })),
    Effect.forever,
    Effect.forkScoped
  )
  const stallMs = Duration.toMillis(config.stallTimeout)
  yield* Effect.sleep(Duration.millis(Math.max(50, stallMs / 4))).pipe(
    Effect.zipRight(Clock.currentTimeMillis),
    Effect.flatMap((now) => {
      const cut: Array<Open> = []
      for (const stream of open) {
        const { waiting, written } = socketOf(stream.request)
        if (stream.readable.readableLength > maxBufferedBytes) cut.push(stream)
        else if (stream.readable.readableLength + waiting === 0 || written !== stream.written) {
          stream.written = written
          stream.stalledSince = undefined
        } else if (stream.stalledSince === undefined) stream.stalledSince = now
        else if (now - stream.stalledSince >= stallMs) cut.push(stream)
      }
      return Effect.forEach(cut, (stream) => {
        open.delete(stream)
        stream.ended = true
        return Effect.logInfo("disconnecting an SSE client that stopped reading").pipe(
          Effect.zipRight(disconnect(stream.request))
        )
      }, { discard: true })
    }),
    Effect.forever,
    Effect.forkScoped
  )
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const stream of open) push(stream, null)
    })
  )
  return open
})

/**
 * The `text/event-stream` response of a fanned-out stream: `subscribe` delivers the events to a sink
 * that writes their frames (built once per delivery) to a readable piped to the client's socket.
 */
export const respondFanned = <A>(
  open: Set<Open>,
  request: HttpServerRequest.HttpServerRequest,
  frames: (events: ReadonlyArray<A>) => Uint8Array,
  subscribe: (sink: Fanout.Sink<A>) => Effect.Effect<void, unknown, Scope.Scope>
) =>
  Effect.gen(function*() {
    const stream: Open = {
      readable: new Readable({ read() {} }),
      request,
      written: 0,
      stalledSince: undefined,
      ended: false
    }
    push(stream, opening)
    open.add(stream)
    yield* Effect.addFinalizer(() => Effect.sync(() => open.delete(stream)))
    yield* subscribe({ deliver: (events) => push(stream, frames(events)), end: () => push(stream, null) }).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.void
          : Effect.logWarning("event stream failed; the client resumes from its last id", cause)
      ),
      Effect.ensuring(Effect.sync(() => push(stream, null))),
      Effect.forkScoped
    )
    return HttpServerResponse.raw(stream.readable, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" }
    })
  })
