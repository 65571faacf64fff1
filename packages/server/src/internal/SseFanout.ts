/**
 * How a batch's event stream reaches its subscribers' sockets through the batch's fan-out: each
 * delivery's frames as one buffer (built once for every subscriber that got the same array), written
 * straight to the client's Node response (no stream or pipe per client); one heartbeat loop and one
 * stall check per route.
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as NodeHttp from "node:http"
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

/** A replay reads its next page from the log only once the client's buffers hold less than this. */
const replayLowWater = 1024 * 1024

/** An open fanned-out stream: what its client has not read yet waits in the response's buffers. */
interface Open {
  readonly response: NodeHttp.ServerResponse
  /** the socket's bytes sent at the last check, and since when they have not moved with frames waiting */
  sent: number
  stalledSince: number | undefined
  ended: boolean
}

/** A number kept on a Node object under a name its types do not declare. */
const numberAt = (target: unknown, key: string): number | undefined => {
  if (typeof target !== "object" || target === null) return undefined
  const value: unknown = Reflect.get(target, key)
  return typeof value === "number" ? value : undefined
}

/**
 * The bytes the client's socket has handed to the kernel (they stop moving when the client stops
 * reading). The public counters move only by whole writes: `bytesWritten` counts what waits in the
 * socket's own buffer too, and a write leaves `writableLength` only once all of it is written (one
 * write of a large replay can take long to a client that reads), so what Node dispatched to libuv less
 * what libuv still queues is read when Node keeps them.
 */
const sent = (response: NodeHttp.ServerResponse) => {
  const socket = response.socket
  if (socket === null) return 0
  const dispatched = numberAt(socket, "_bytesDispatched")
  const queued = numberAt(Reflect.get(socket, "_handle"), "writeQueueSize")
  return dispatched !== undefined && queued !== undefined
    ? dispatched - queued
    : socket.bytesWritten - socket.writableLength
}

const write = (open: Open, bytes: Uint8Array) => {
  if (!open.ended) open.response.write(bytes)
}

const end = (open: Open) => {
  if (open.ended) return
  open.ended = true
  open.response.end()
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
      for (const stream of open) write(stream, heartbeatLine)
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
        // what the response holds and what its socket has not sent yet
        const waiting = stream.response.writableLength
        const sentNow = sent(stream.response)
        const moved = sentNow !== stream.sent
        stream.sent = sentNow
        if (waiting === 0 || moved) stream.stalledSince = undefined
        else if (stream.stalledSince === undefined) stream.stalledSince = now
        else if (now - stream.stalledSince >= stallMs) cut.push(stream)
      }
      return Effect.forEach(cut, (stream) => {
        open.delete(stream)
        stream.ended = true
        return Effect.logInfo("disconnecting an SSE client that stopped reading").pipe(
          Effect.zipRight(Effect.sync(() => stream.response.destroy()))
        )
      }, { discard: true })
    }),
    Effect.forever,
    Effect.forkScoped
  )
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const stream of open) end(stream)
    })
  )
  return open
})

/** The response is flushed to the kernel or its connection is closed: it emits nothing more. */
const isClosed = (response: NodeHttp.ServerResponse) => response.destroyed || response.writableFinished

/** Waits until `ready()` holds, checked now and at each of the response's `events` (and at its close). */
const until = (response: NodeHttp.ServerResponse, ready: () => boolean, events: ReadonlyArray<string>) =>
  Effect.async<void>((resume) => {
    if (ready() || isClosed(response)) return resume(Effect.void)
    const names = [...events, "close"]
    const check = () => {
      if (!ready() && !isClosed(response)) return
      for (const name of names) response.off(name, check)
      resume(Effect.void)
    }
    for (const name of names) response.on(name, check)
    return Effect.sync(() => {
      for (const name of names) response.off(name, check)
    })
  })

/**
 * The `text/event-stream` response of a fanned-out stream, written by the handler itself (in the
 * request's own fiber): `subscribe` delivers the events to a sink that writes their frames (built once
 * per delivery) to the client's response, until the stream ends, the client goes away or the server
 * stops. What it returns tells the HTTP server that the response is already written.
 */
export const respondFanned = <A>(
  open: Set<Open>,
  request: HttpServerRequest.HttpServerRequest,
  frames: (events: ReadonlyArray<A>) => Uint8Array,
  subscribe: (sink: Fanout.Sink<A>) => Effect.Effect<void, unknown, Scope.Scope>
) =>
  Effect.gen(function*() {
    const response = NodeHttpServerRequest.toServerResponse(request)
    response.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no"
    })
    const stream: Open = { response, sent: 0, stalledSince: undefined, ended: false }
    write(stream, opening)
    open.add(stream)
    yield* Effect.addFinalizer(() => Effect.sync(() => open.delete(stream)))
    yield* subscribe({
      deliver: (events) => write(stream, frames(events)),
      end: () => end(stream),
      // a replay reads its next page once the client's buffers are below the low-water mark
      ready: until(response, () => stream.ended || response.writableLength < replayLowWater, ["drain"]),
      onGone: (leave) => {
        if (isClosed(response)) leave()
        else response.once("close", leave)
      }
    }).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.void
          : Effect.logWarning("event stream failed; the client resumes from its last id", cause)
      ),
      Effect.scoped
    )
    end(stream)
    // until its last frames are sent the stall check still watches it (its client may have stopped reading)
    yield* until(response, () => false, [])
    return HttpServerResponse.empty()
  })
