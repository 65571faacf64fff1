import { BatchEvent, Ids } from "@effect-batch/domain"
import { BatchOrchestrator, Http } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { bearer, items, paced, request, rpcLine, server } from "./support/HttpServer.js"
import { connect, eventually, type SseEvent } from "./support/SseClient.js"

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }
const decodeEvent = Schema.decodeUnknownSync(Schema.parseJson(BatchEvent.BatchEvent))

/** Decodes what a client received and checks that it is exactly events 1..last, in order. */
const assertComplete = (received: ReadonlyArray<SseEvent>, last: number) => {
  const events = received.map((e) => {
    const event = decodeEvent(e.data)
    assert.strictEqual(e.event, event._tag)
    assert.strictEqual(e.id, String(event.seq))
    return event
  })
  assert.deepStrictEqual(events.map((e) => e.seq), Array.from({ length: last }, (_, i) => i + 1))
  assert.isTrue(BatchEvent.isTerminal(events[events.length - 1] ?? { _tag: "none" }))
  return events
}

const submit = (n: number, ms: number, config: Record<string, unknown>, input: Record<string, unknown> = {}) =>
  Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (o) =>
    o.submitEncoded(
      paced.name,
      items(n, ms).map((item) => ({ ...item, input: { ...item.input, ...input } })),
      config,
      acme
    ))

const finalSeq = (id: Ids.BatchId) =>
  Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (o) => Effect.map(o.await(acme, id), (b) => b.lastSeq))

for (const [name, db] of TestDatabase.databases) {
  layer(
    server(db, { streamBufferSize: 16, stallTimeout: "1 second", heartbeat: "1 second", maxStreamsPerTenant: 500 }),
    {
      excludeTestServices: true,
      timeout: "60 seconds"
    }
  )(`SSE over HTTP (${name})`, (it) => {
    it.scoped("a client that disconnects mid-batch and resumes with Last-Event-ID misses nothing, repeats nothing", () =>
      Effect.gen(function*() {
        const base = yield* Http.url
        const batch = yield* submit(60, 40, { concurrency: 2 })
        const url = `${base}/batches/${batch.id}/events`
        const first = yield* connect(url, bearer("acme"))
        assert.strictEqual(first.status, 200)
        assert.match(String(first.headers["content-type"]), /^text\/event-stream/)
        yield* eventually(() => first.events.length >= 10, 20_000, "10 events")
        first.close()
        const lastId = first.events[first.events.length - 1]?.id ?? "0"
        yield* Effect.sleep("300 millis")
        const second = yield* connect(url, { ...bearer("acme"), "last-event-id": lastId })
        assert.strictEqual(second.status, 200)
        assert.strictEqual(yield* Deferred.await(second.ended), "end")
        assert.isAbove(second.comments(), 0)
        const last = yield* finalSeq(batch.id)
        assert.isBelow(Number(lastId), last)
        const events = assertComplete([...first.events, ...second.events], last)
        assert.strictEqual(events[events.length - 1]?._tag, "BatchCompleted")
      }))

    it.scoped("200 concurrent clients each receive the full ordered sequence", () =>
      Effect.gen(function*() {
        const base = yield* Http.url
        const o = yield* BatchOrchestrator.BatchOrchestrator
        // the batch runs while clients connect, then waits for review with all 200 streams open
        const batch = yield* submit(30, 20, { concurrency: 4, review: true })
        const url = `${base}/batches/${batch.id}/events`
        const clients = yield* Effect.forEach(
          Array.from({ length: 200 }, () => url),
          (u) => connect(u, bearer("acme")),
          { concurrency: "unbounded" }
        )
        assert.isTrue(clients.every((c) => c.status === 200))
        yield* eventually(
          () => clients.every((c) => c.events.some((e) => e.event === "ReviewRequested")),
          30_000,
          "every client at the review"
        )
        const metrics = yield* request(`${base}/metrics`)
        assert.include(metrics.body, "effect_batch_open_streams{transport=\"sse\"} 200")
        yield* o.approve(acme, batch.id)
        const endings = yield* Effect.forEach(clients, (c) => Deferred.await(c.ended), { concurrency: "unbounded" })
        assert.isTrue(endings.every((e) => e === "end"))
        const last = yield* finalSeq(batch.id)
        for (const client of clients) assertComplete(client.events, last)
      }))

    it.scoped("a client that stops reading delays no one, is disconnected, and resumes from its last id", () =>
      Effect.gen(function*() {
        const base = yield* Http.url
        // ~100 KB per failure event: 12 MB in all, more than the sockets buffer
        const batch = yield* submit(120, 5, { concurrency: 8 }, { fail: true, pad: 100_000 })
        const url = `${base}/batches/${batch.id}/events`
        const stalled = yield* connect(url, bearer("acme"))
        yield* eventually(() => stalled.events.length > 0, 20_000, "a first event")
        stalled.pause()
        const startedAt = Date.now()
        const reader = yield* connect(url, bearer("acme"))
        assert.strictEqual(yield* Deferred.await(reader.ended), "end")
        const readerMs = Date.now() - startedAt
        const last = yield* finalSeq(batch.id)
        assertComplete(reader.events, last)
        assert.isBelow(readerMs, 15_000)
        // the stalled client was cut once its buffer stayed full for the stall timeout (1 s): when it
        // reads again, it gets what was in flight, then a broken stream
        yield* Effect.sleep("2 seconds")
        stalled.resume()
        assert.strictEqual(yield* Deferred.await(stalled.ended).pipe(Effect.timeout("15 seconds")), "error")
        assert.isBelow(stalled.events.length, last)
        const lastId = stalled.events[stalled.events.length - 1]?.id ?? "0"
        const resumed = yield* connect(url, { ...bearer("acme"), "last-event-id": lastId })
        assert.strictEqual(yield* Deferred.await(resumed.ended), "end")
        assertComplete([...stalled.events, ...resumed.events], last)
      }))

    it.scoped("a streaming RPC whose client stops reading is disconnected and frees its stream slot", () =>
      Effect.gen(function*() {
        const base = yield* Http.url
        // long enough (≈ 1 s of work) that the stream outlives the stall timeout
        const batch = yield* submit(400, 20, { concurrency: 8 }, { fail: true, pad: 100_000 })
        const stalled = yield* connect(`${base}/rpc`, bearer("acme"), {
          body: rpcLine("StreamProgress", { batchId: batch.id })
        })
        assert.strictEqual(stalled.status, 200)
        yield* eventually(() => stalled.bytes() > 0, 20_000, "a first chunk")
        stalled.pause()
        yield* finalSeq(batch.id)
        // the server cuts it once its buffer stayed full for the stall timeout (1 s)
        yield* Effect.sleep("2500 millis")
        const metrics = yield* request(`${base}/metrics`)
        assert.include(metrics.body, "effect_batch_open_streams{transport=\"rpc\"} 0")
        stalled.resume()
        assert.strictEqual(yield* Deferred.await(stalled.ended).pipe(Effect.timeout("15 seconds")), "error")
      }))

    it.scoped("a settled batch replays what is left and ends; nothing left is 204; an idle stream gets heartbeats", () =>
      Effect.gen(function*() {
        const base = yield* Http.url
        const done = yield* submit(5, 1, { concurrency: 5 })
        const last = yield* finalSeq(done.id)
        const url = `${base}/batches/${done.id}/events`
        const replay = yield* connect(`${url}?after=3`, bearer("acme"))
        assert.strictEqual(yield* Deferred.await(replay.ended), "end")
        assert.deepStrictEqual(
          replay.events.map((e) => e.id),
          Array.from({ length: last - 3 }, (_, i) => String(i + 4))
        )
        const nothing = yield* request(url, { headers: { ...bearer("acme"), "last-event-id": String(last) } })
        assert.strictEqual(nothing.status, 204)
        // a batch waiting for review: the stream stays open, with heartbeats, until it is approved
        const review = yield* submit(2, 1, { review: true })
        const waiting = yield* connect(`${base}/batches/${review.id}/events`, bearer("acme"))
        yield* eventually(() => waiting.events.some((e) => e.event === "ReviewRequested"), 20_000, "review")
        const comments = waiting.comments()
        yield* eventually(() => waiting.comments() >= comments + 2, 5_000, "2 heartbeats")
        const o = yield* BatchOrchestrator.BatchOrchestrator
        yield* o.approve(acme, review.id)
        assert.strictEqual(yield* Deferred.await(waiting.ended), "end")
        assert.strictEqual(waiting.events[waiting.events.length - 1]?.event, "BatchCompleted")
      }))
  })
}
