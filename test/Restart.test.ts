import { Ids } from "@effect-batch/domain"
import { BatchOrchestrator, Http } from "@effect-batch/server"
import { Database } from "@effect-batch/tables"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { bearer, items, paced, request, server } from "./support/HttpServer.js"
import { privateCluster } from "./support/PgCluster.js"
import { apiAt, ledger, pollUntil } from "./support/Processes.js"
import * as SseClient from "./support/SseClient.js"

/**
 * A real Postgres restart in the middle of a batch: a private cluster (initdb in a temporary folder),
 * restarted with `pg_ctl restart -m fast`, which ends every session and stops and starts the server.
 * The server reconnects by itself, the batch completes with every item recorded once and its events
 * numbered without a gap, and an SSE client that reconnects with `Last-Event-ID` misses nothing. If
 * the machine has no `initdb`, the test fails saying where it looked.
 */

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }
const total = 300

describe("Postgres restart (a private cluster)", () => {
  it.live(
    "pg_ctl restart -m fast mid-batch: the batch completes, every item one outcome, events gapless, SSE resumes without gap",
    () =>
      Effect.gen(function*() {
        const cluster = yield* privateCluster
        const context = yield* Layer.build(server(Database.layerPostgres(cluster.url)))
        const base = yield* Effect.provide(Http.url, context)
        const o = yield* Effect.provide(BatchOrchestrator.BatchOrchestrator, context)
        const batch = yield* o.submitEncoded(paced.name, items(total, 20), { concurrency: 4 }, acme)
        const sse = SseClient.follower(`${base}/batches/${batch.id}/events`, bearer("acme"))
        const following = yield* Effect.fork(sse.run)
        yield* pollUntil("50 items succeeded", Effect.map(o.get(acme, batch.id), (b) => b.counts.succeeded >= 50))

        const restarting = yield* Effect.fork(cluster.restart)
        // the client's connection drops too, while the server is going down
        sse.drop()
        yield* Fiber.join(restarting)
        const before = yield* o.get(acme, batch.id).pipe(
          Effect.retry({ times: 20, while: (e) => e._tag === "StorageUnavailable" })
        )
        assert.isBelow(before.counts.succeeded, total, "the restart came before the batch's end")

        const done = yield* o.await(acme, batch.id).pipe(
          Effect.retry({ times: 20, while: (e) => e._tag === "StorageUnavailable" }),
          Effect.timeout("40 seconds")
        )
        assert.strictEqual(done.state._tag, "Completed")
        assert.strictEqual(done.counts.succeeded, total)
        assert.strictEqual((yield* request(`${base}/health`)).status, 200)

        const received = yield* Fiber.join(following).pipe(Effect.timeout("20 seconds"))
        assert.isAtLeast(sse.statuses.filter((s) => s === 200).length, 2, "the client resumed after the restart")
        assert.deepStrictEqual(
          received.map((e) => Number(e.id)),
          Array.from({ length: done.lastSeq }, (_, i) => i + 1),
          "every event once, in order, across the reconnections"
        )

        const recorded = yield* ledger(batch.id).pipe(Effect.provide(apiAt(cluster.url)))
        assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
        assert.strictEqual(recorded.derived.succeeded, total, "every item row is succeeded")
        assert.strictEqual(recorded.distinctSucceeded, total)
        assert.strictEqual(recorded.itemSucceeded, total, "one ItemSucceeded per item")
        assert.strictEqual(recorded.maxPerKey, 1, "no outcome recorded twice")
        assert.strictEqual(recorded.otherOutcomes, 0)
        assert.strictEqual(recorded.minSeq, 1, "sequences start at 1")
        assert.strictEqual(recorded.maxSeq, recorded.events, "sequences are gapless")
      }).pipe(Effect.scoped),
    60_000
  )
})
