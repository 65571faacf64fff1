import type { BatchEvent } from "@effect-batch/domain"
import { BatchClient, Http } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { items, server, tokens } from "./support/HttpServer.js"
import * as TcpProxy from "./support/TcpProxy.js"

const client = (token: string = tokens.acme) => Effect.map(Http.url, (url) => BatchClient.layerFetch({ url, token }))

const withClient = <A, E, R>(effect: Effect.Effect<A, E, R | BatchClient.BatchClient>, token?: string) =>
  Effect.flatMap(client(token), (layer) => Effect.provide(effect, layer))

const seqs = (events: ReadonlyArray<BatchEvent.BatchEvent>) => events.map((e) => e.seq)
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

const waitFor = <A, E>(effect: Effect.Effect<A, E>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.repeat({ until: done, schedule: Schedule.spaced("50 millis") }),
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("condition not reached") })
  )

for (const [name, db] of TestDatabase.databases) {
  layer(server(db, { streamBufferSize: 8, stallTimeout: "1 second" }), {
    excludeTestServices: true,
    timeout: "60 seconds"
  })(`BatchClient over HTTP (${name})`, (it) => {
    // 64 items of 60 ms at concurrency 2 take ≈ 2 s: room for the pause to land mid-batch on a busy machine.
    const endToEnd = items(64, 60)
    it.effect("create, stream progress, pause, resume, approve, results: end to end", () =>
      withClient(Effect.gen(function*() {
        const c = yield* BatchClient.BatchClient
        const batch = yield* c.create({
          workflow: "paced",
          items: endToEnd,
          config: { concurrency: 2, review: true },
          idempotencyKey: `e2e-${Math.random()}`
        })
        assert.strictEqual(batch.state._tag, "Running")
        const viaRpc = yield* c.events(batch.id).pipe(Stream.runCollect, Effect.fork)
        const viaSse = yield* c.watch(batch.id).pipe(Stream.runCollect, Effect.fork)
        yield* waitFor(c.get(batch.id), (b) => b.counts.succeeded >= 2)
        const paused = yield* c.pause(batch.id, "lunch")
        assert.strictEqual(paused.state._tag, "Paused")
        yield* Effect.sleep("300 millis")
        const whilePaused = yield* c.get(batch.id)
        yield* Effect.sleep("300 millis")
        assert.strictEqual((yield* c.get(batch.id)).counts.succeeded, whilePaused.counts.succeeded)
        const invalid = yield* Effect.either(c.approve(batch.id))
        assert.deepStrictEqual(Either.isLeft(invalid) ? invalid.left._tag : invalid.right, "InvalidTransition")
        assert.strictEqual((yield* c.resume(batch.id)).state._tag, "Running")
        yield* waitFor(c.get(batch.id), (b) => b.state._tag === "AwaitingReview")
        const progress = yield* c.progress(batch.id)
        assert.strictEqual(progress.counts.succeeded, endToEnd.length)
        const approved = yield* c.approve(batch.id, "looks good")
        assert.strictEqual(approved.state._tag, "Completed")
        const rpcEvents = Chunk.toReadonlyArray(yield* Fiber.join(viaRpc))
        const sseEvents = Chunk.toReadonlyArray(yield* Fiber.join(viaSse))
        const last = (yield* c.get(batch.id)).lastSeq
        assert.deepStrictEqual(seqs(rpcEvents), oneTo(last))
        assert.deepStrictEqual(seqs(sseEvents), oneTo(last))
        const tags = rpcEvents.map((e) => e._tag)
        for (const tag of ["BatchPaused", "BatchResumed", "ReviewRequested", "BatchApproved", "BatchCompleted"]) {
          assert.include(tags, tag)
        }
        assert.strictEqual(tags[tags.length - 1], "BatchCompleted")
        const results = Chunk.toReadonlyArray(yield* Stream.runCollect(c.results(batch.id)))
        assert.deepStrictEqual(results.map((r) => r.key), endToEnd.map((i) => i.key))
        assert.isTrue(results.every((r) => r.state === "Succeeded"))
        assert.deepStrictEqual(results[0]?.output, { slept: 60 })
        const page = yield* c.listItems(batch.id, { limit: 10 })
        assert.strictEqual(page.items.length, 10)
        const next = yield* c.listItems(batch.id, {
          limit: 10,
          ...(page.nextCursor ? { cursor: page.nextCursor } : {})
        })
        assert.deepStrictEqual(next.items.map((i) => i.key), endToEnd.slice(10, 20).map((i) => i.key))
        const listed = yield* c.list({ state: "Completed" })
        assert.isTrue(listed.items.some((b) => b.id === batch.id))
        const plan = yield* c.retryFailed(batch.id, { dryRun: true })
        assert.strictEqual(plan.count, 0)
      })))

    it.scoped("watch reconnects by itself after the connection is cut, resuming from the last sequence it saw", () =>
      Effect.gen(function*() {
        const url = yield* Http.url
        const proxy = yield* TcpProxy.make(url)
        const flaky = Context.get(
          yield* Layer.build(BatchClient.layerFetch({ url: proxy.url, token: tokens.acme })),
          BatchClient.BatchClient
        )
        yield* withClient(Effect.gen(function*() {
          const c = yield* BatchClient.BatchClient
          const batch = yield* c.create({ workflow: "paced", items: items(40, 40), config: { concurrency: 2 } })
          const seen = yield* Ref.make(0)
          const events = yield* flaky.watch(batch.id).pipe(
            Stream.tap(() =>
              Effect.flatMap(
                Ref.updateAndGet(seen, (n) => n + 1),
                (n) => n === 10 || n === 30 ? Effect.sync(() => proxy.cut()) : Effect.void
              )
            ),
            Stream.runCollect
          )
          const last = (yield* c.get(batch.id)).lastSeq
          assert.deepStrictEqual(seqs(Chunk.toReadonlyArray(events)), oneTo(last))
          // the second cut may land after the rest of the events are already buffered: one reconnect is certain
          assert.isAtLeast(proxy.accepted(), 2)
        }))
      }))

    it.effect("typed errors: unknown batch, bad input, invalid transition, wrong token", () =>
      Effect.gen(function*() {
        const unknownId = "00000000-0000-4000-8000-000000000000"
        yield* withClient(Effect.gen(function*() {
          const c = yield* BatchClient.BatchClient
          const missing = yield* Effect.flip(c.get(unknownId))
          assert.strictEqual(missing._tag, "BatchNotFound")
          const bad = yield* Effect.flip(c.get("not-a-uuid"))
          assert.strictEqual(bad._tag, "InvalidRequest")
          const watchMissing = yield* Effect.flip(Stream.runDrain(c.watch(unknownId)))
          assert.strictEqual(watchMissing._tag, "BatchNotFound")
          const items_ = yield* Effect.flip(c.create({ workflow: "paced", items: [{ key: "a", input: { ms: "x" } }] }))
          assert.strictEqual(items_._tag, "InvalidItems")
          const workflow = yield* Effect.flip(c.create({ workflow: "nope", items: [] }))
          assert.strictEqual(workflow._tag, "WorkflowNotFound")
          const done = yield* c.create({ workflow: "paced", items: items(2, 1) })
          yield* waitFor(c.get(done.id), (b) => b.state._tag === "Completed")
          const resume = yield* Effect.flip(c.resume(done.id))
          assert.strictEqual(resume._tag, "InvalidTransition")
        }))
        yield* withClient(
          Effect.gen(function*() {
            const c = yield* BatchClient.BatchClient
            const denied = yield* Effect.flip(c.list())
            assert.strictEqual(denied._tag, "Unauthorized")
            const deniedWatch = yield* Effect.flip(Stream.runDrain(c.watch(unknownId)))
            assert.strictEqual(deniedWatch._tag, "Unauthorized")
          }),
          "wrong-token"
        )
      }))
  })
}
