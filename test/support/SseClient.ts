import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"

/** One parsed server-sent event. */
export interface SseEvent {
  readonly id: string | undefined
  readonly event: string
  readonly data: string
}

/** A live SSE connection made with Node's `http` (so a test can stop reading from it). */
export interface SseConnection {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  /** events received so far */
  readonly events: ReadonlyArray<SseEvent>
  /** comment lines received so far (the opening one and heartbeats) */
  readonly comments: () => number
  /** bytes received so far */
  readonly bytes: () => number
  /** completes with how the response ended: "end" (the server ended it) or "error" (cut) */
  readonly ended: Deferred.Deferred<"end" | "error">
  /** stops reading: the socket's buffers fill up and the server sees a stalled client */
  readonly pause: () => void
  /** reads again */
  readonly resume: () => void
  /** drops the connection */
  readonly close: () => void
}

/** A small SSE parser: lines, `field: value`, a blank line dispatches, `:` lines are comments. */
const parser = (onEvent: (event: SseEvent) => void, onComment: () => void) => {
  let buffer = ""
  let data: Array<string> = []
  let event = "message"
  let id: string | undefined
  return (chunk: string) => {
    buffer += chunk
    let newline = buffer.indexOf("\n")
    while (newline >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, "")
      buffer = buffer.slice(newline + 1)
      newline = buffer.indexOf("\n")
      if (line === "") {
        if (data.length > 0) onEvent({ id, event, data: data.join("\n") })
        data = []
        event = "message"
        continue
      }
      if (line.startsWith(":")) {
        onComment()
        continue
      }
      const colon = line.indexOf(":")
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "")
      if (field === "data") data.push(value)
      else if (field === "event") event = value
      else if (field === "id") id = value
      else if (field === "retry") throw new Error("the server must not send retry: lines")
    }
  }
}

/**
 * Opens an SSE connection (or, with `body`, a POST whose streamed answer a test wants to read slowly);
 * it is dropped when the scope closes.
 */
export const connect = (
  url: string,
  headers: Record<string, string> = {},
  options: { readonly body?: string } = {}
): Effect.Effect<SseConnection, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const ended = yield* Deferred.make<"end" | "error">()
    const events: Array<SseEvent> = []
    let comments = 0
    let bytes = 0
    const request = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Http.request(url, {
          method: options.body === undefined ? "GET" : "POST",
          headers: options.body === undefined
            ? { accept: "text/event-stream", ...headers }
            : { "content-length": String(Buffer.byteLength(options.body)), ...headers },
          agent: false
        })
      ),
      (req) => Effect.sync(() => req.destroy())
    )
    const response = yield* Effect.async<Http.IncomingMessage, Error>((resume) => {
      request.on("response", (res) => resume(Effect.succeed(res)))
      request.on("error", (error) => resume(Effect.fail(error)))
      request.end(options.body)
    })
    const feed = parser((event) => events.push(event), () => comments++)
    response.setEncoding("utf8")
    response.on("data", (chunk: string) => {
      bytes += Buffer.byteLength(chunk)
      feed(chunk)
    })
    response.on("end", () => Deferred.unsafeDone(ended, Effect.succeed("end")))
    response.on("error", () => Deferred.unsafeDone(ended, Effect.succeed("error")))
    response.on("close", () => Deferred.unsafeDone(ended, Effect.succeed(response.complete ? "end" : "error")))
    return {
      status: response.statusCode ?? 0,
      headers: response.headers,
      events,
      comments: () => comments,
      bytes: () => bytes,
      ended,
      pause: () => {
        response.pause()
      },
      resume: () => {
        response.resume()
      },
      close: () => {
        request.destroy()
      }
    }
  })

/** Polls `done` every 10 ms until it holds, failing after `timeoutMs`. */
export const eventually = (done: () => boolean, timeoutMs = 30_000, what = "condition") =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!done()) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`${what} not reached within ${timeoutMs} ms`)
      yield* Effect.sleep("10 millis")
    }
  })

const terminal = new Set<string>(["BatchCompleted", "BatchFailed", "BatchCancelled"])

/**
 * Follows an SSE stream to its terminal event, reconnecting with `Last-Event-ID` after every cut or
 * refusal; `drop` cuts the connection it has open, as a network would.
 */
export const follower = (url: string, headers: Record<string, string>) => {
  let open: SseConnection | undefined
  const statuses: Array<number> = []
  const run = Effect.gen(function*() {
    const received: Array<SseEvent> = []
    while (received.length === 0 || !terminal.has(received[received.length - 1]!.event)) {
      const last = received[received.length - 1]?.id
      const connection = yield* connect(url, {
        ...headers,
        ...(last === undefined ? {} : { "last-event-id": last })
      }).pipe(Effect.option)
      if (connection._tag === "Some") {
        open = connection.value
        statuses.push(connection.value.status)
        yield* connection.value.ended
        if (connection.value.status === 200) received.push(...connection.value.events)
        connection.value.close()
        open = undefined
      }
      yield* Effect.sleep("200 millis")
    }
    return received
  }).pipe(Effect.scoped)
  return { run, statuses, drop: () => open?.close() }
}
