import { Ids } from "@effect-batch/domain"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schema from "effect/Schema"
import { bearer, items, paced, request, rpcLine, rpcOutcome } from "./support/HttpServer.js"
import { apiAt, ledger, pollUntil } from "./support/Processes.js"
import { serverBehindProxy } from "./support/ProxiedServer.js"
import * as SseClient from "./support/SseClient.js"

/**
 * Postgres unreachable for ten seconds in the middle of a batch (every connection cut, new ones
 * refused, as when the server or the network between goes down): the server keeps answering — health
 * 503, RPCs a typed `StorageUnavailable` — reconnects by itself when Postgres is back, and the batch
 * completes with nothing lost; an SSE client that reconnects with `Last-Event-ID` misses nothing.
 */

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }

describe("Postgres outage (Postgres through a proxy)", () => {
  it.live(
    "unreachable for 10 s mid-batch: health 503 and typed RPC answers; then it reconnects, the batch completes, SSE resumes without gap",
    () =>
      Effect.gen(function*() {
        const { base, direct, orchestrator: o, proxy } = yield* serverBehindProxy
        const batch = yield* o.submitEncoded(paced.name, items(300, 20), { concurrency: 4 }, acme)
        const sse = SseClient.follower(`${base}/batches/${batch.id}/events`, bearer("acme"))
        const following = yield* Effect.fork(sse.run)
        yield* pollUntil("50 items succeeded", Effect.map(o.get(acme, batch.id), (b) => b.counts.succeeded >= 50))

        proxy.down()
        const downAt = Date.now()
        yield* Effect.sleep("1 second")
        // the client's connection drops while the database is out of reach: it is refused until it is back
        sse.drop()
        const health = yield* request(`${base}/health`)
        assert.strictEqual(health.status, 503)
        assert.strictEqual(JSON.parse(health.body).database.reachable, false)
        const answer = yield* request(`${base}/rpc`, {
          method: "POST",
          headers: bearer("acme"),
          body: rpcLine("GetBatch", { batchId: batch.id })
        })
        assert.strictEqual(answer.status, 200)
        assert.strictEqual(rpcOutcome(answer), "StorageUnavailable")
        yield* Effect.sleep(`${Math.max(0, 10_000 - (Date.now() - downAt))} millis`)
        proxy.up()

        const done = yield* o.await(acme, batch.id).pipe(
          Effect.retry({ times: 20, while: (e) => e._tag === "StorageUnavailable" }),
          Effect.timeout("60 seconds")
        )
        assert.strictEqual(done.state._tag, "Completed")
        assert.strictEqual((yield* request(`${base}/health`)).status, 200)

        const received = yield* Fiber.join(following).pipe(Effect.timeout("30 seconds"))
        assert.include(sse.statuses, 503, "a reconnection while the database was out of reach was refused")
        assert.isAtLeast(sse.statuses.filter((s) => s === 200).length, 2, "the client resumed after the outage")
        assert.deepStrictEqual(
          received.map((e) => Number(e.id)),
          Array.from({ length: done.lastSeq }, (_, i) => i + 1),
          "every event once, in order, across the reconnections"
        )

        const recorded = yield* ledger(batch.id).pipe(Effect.provide(apiAt(direct)))
        assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
        assert.strictEqual(recorded.distinctSucceeded, 300)
        assert.strictEqual(recorded.maxPerKey, 1, "no outcome recorded twice")
        assert.strictEqual(recorded.maxSeq, recorded.events, "sequences are gapless")
      }).pipe(Effect.scoped),
    120_000
  )
})
