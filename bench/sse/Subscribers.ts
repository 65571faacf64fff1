/**
 * SSE subscribers for the fan-out benchmark: plain `node:http` requests (one socket each) with a small
 * line parser. Each one checks what it receives — every event once, in order, without a gap, up to
 * the terminal event, and an `id:` that matches the event's `seq` — and records when each arrived.
 */
import { BatchEvent } from "@effect-batch/domain"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"

/**
 * A wall clock (ms since the epoch) with sub-millisecond resolution: `performance.now()` anchored on a
 * tick of `Date.now()`, so that two processes on one machine read the same time.
 */
export const makeWallClock = (): () => number => {
  const start = Date.now()
  let now = start
  while (now === start) now = Date.now()
  const offset = now - performance.now()
  return () => offset + performance.now()
}

/** How a subscription ended: the server ended the response, or the connection broke. */
export type Outcome = "end" | "error"

/** One SSE subscriber (from sequence 0). */
export class Subscriber {
  /** the HTTP status (0 until the response arrives, or when the request failed) */
  status = 0
  /** when the opening comment arrived (wall clock) */
  openedAt = Number.NaN
  /** the latest sequence received */
  last = 0
  /** events received */
  events = 0
  /** the sequence of the terminal event (0: not yet) */
  terminal = 0
  /** the first thing that was wrong, if any */
  problem: string | undefined = undefined
  /** how the response ended (undefined: still open) */
  outcome: Outcome | undefined = undefined
  /** when each sequence arrived (wall clock; index = sequence) */
  receivedAt: Float64Array
  private pending = ""
  private id: string | undefined = undefined
  private tag = "message"
  private data: Array<string> = []

  constructor(capacity: number, private readonly clock: () => number) {
    this.receivedAt = new Float64Array(capacity + 1).fill(Number.NaN)
  }

  /** Parses a chunk of the stream (lines, `field: value`, a blank line dispatches, `:` is a comment). */
  feed(chunk: string) {
    const at = this.clock()
    const text = this.pending + chunk
    let start = 0
    let newline = text.indexOf("\n")
    while (newline >= 0) {
      const line = text.slice(start, newline)
      start = newline + 1
      newline = text.indexOf("\n", start)
      if (line === "") this.dispatch(at)
      else if (line.startsWith(":")) {
        if (Number.isNaN(this.openedAt)) this.openedAt = at
      } else {
        const colon = line.indexOf(":")
        const field = colon < 0 ? line : line.slice(0, colon)
        const value = colon < 0 ? "" : line.slice(line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1)
        if (field === "data") this.data.push(value)
        else if (field === "event") this.tag = value
        else if (field === "id") this.id = value
        else this.fail(`unexpected field ${field}`)
      }
    }
    this.pending = text.slice(start)
  }

  /** Records the end of the response. */
  finish(outcome: Outcome) {
    if (this.outcome === undefined) this.outcome = outcome
  }

  /** Records the first problem. */
  fail(problem: string) {
    if (this.problem === undefined) this.problem = problem
  }

  /** Whether it received the complete sequence `1..lastSeq`, ending with the terminal event. */
  complete(lastSeq: number): boolean {
    return this.status === 200 && this.outcome === "end" && this.problem === undefined &&
      this.terminal === lastSeq && this.last === lastSeq && this.events === lastSeq
  }

  /** Why it is not complete (for the report). */
  verdict(lastSeq: number): string {
    if (this.complete(lastSeq)) return "ok"
    if (this.problem !== undefined) return this.problem
    if (this.status !== 200) return `status ${this.status}`
    if (this.outcome !== "end") return this.outcome === undefined ? "still open" : "connection broke"
    if (this.terminal === 0) return "no terminal event"
    return `ended at ${this.last} of ${lastSeq}`
  }

  private dispatch(at: number) {
    if (this.data.length === 0) return
    const data = this.data.join("\n")
    const tag = this.tag
    const seq = Number(this.id)
    this.data = []
    this.tag = "message"
    this.id = undefined
    if (!Number.isSafeInteger(seq)) return this.fail(`event without a numeric id (${tag})`)
    if (this.terminal > 0) this.fail(`event ${seq} after the terminal event`)
    if (seq <= this.last) this.fail(`duplicate or out of order: ${seq} after ${this.last}`)
    if (seq > this.last + 1) this.fail(`gap: ${seq} after ${this.last}`)
    const marker = `"seq":${seq}`
    const i = data.indexOf(marker)
    const next = data.charCodeAt(i + marker.length)
    if (i < 0 || (next !== 44 && next !== 125)) this.fail(`data of event ${seq} does not carry seq ${seq}`)
    if (seq >= this.receivedAt.length) {
      const grown = new Float64Array(seq * 2).fill(Number.NaN)
      grown.set(this.receivedAt)
      this.receivedAt = grown
    }
    this.receivedAt[seq] = at
    this.last = Math.max(this.last, seq)
    this.events++
    if (BatchEvent.isTerminal({ _tag: tag })) this.terminal = seq
  }
}

/**
 * Opens a subscription to `url` (its own socket, `Authorization: Bearer`); succeeds once the response
 * headers arrived, or with a failed subscriber. The connection is dropped when the scope closes.
 */
export const subscribe = (
  url: string,
  token: string,
  capacity: number,
  clock: () => number
): Effect.Effect<Subscriber, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<readonly [Subscriber, Http.ClientRequest]>((resume) => {
      const subscriber = new Subscriber(capacity, clock)
      let resumed = false
      const done = () => {
        if (!resumed) {
          resumed = true
          resume(Effect.succeed([subscriber, request]))
        }
      }
      const request = Http.request(url, {
        headers: { accept: "text/event-stream", authorization: `Bearer ${token}` },
        agent: false
      }, (response) => {
        subscriber.status = response.statusCode ?? 0
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => subscriber.feed(chunk))
        response.on("end", () => subscriber.finish("end"))
        response.on("error", () => subscriber.finish("error"))
        response.on("close", () => subscriber.finish(response.complete ? "end" : "error"))
        done()
      })
      request.on("error", (error) => {
        subscriber.fail(`request failed: ${error.message}`)
        subscriber.finish("error")
        done()
      })
      request.end()
      return Effect.sync(() => request.destroy())
    }),
    ([, request]) => Effect.sync(() => request.destroy())
  ).pipe(Effect.map(([subscriber]) => subscriber))
