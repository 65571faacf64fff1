import { BatchClient, BatchOrchestrator, Http } from "@effect-batch/server"
import { Database, TestDatabase } from "@effect-batch/tables"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { caller } from "./support/Harness.js"
import { bearer, items, paced, request, server, tokens } from "./support/HttpServer.js"
import { freshDatabase } from "./support/Processes.js"
import { parse } from "./support/Prometheus.js"
import { connect } from "./support/SseClient.js"

const clientFor = (token: string) =>
  Effect.flatMap(Http.url, (url) =>
    Effect.map(
      Layer.build(BatchClient.layerFetch({ url, token })),
      (context) => Context.get(context, BatchClient.BatchClient)
    ))

for (const [name, db] of TestDatabase.databases) {
  layer(server(db), { excludeTestServices: true, timeout: "60 seconds" })(
    `shared limiters over HTTP (${name})`,
    (it) => {
      it.scoped("define, get, list and delete by RPC, per tenant; the limiter's state in /metrics", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const acme = yield* clientFor(tokens.acme)
          const globex = yield* clientFor(tokens.globex)
          const defined = yield* acme.defineLimiter({ name: "anthropic", limit: 10, interval: "1 minute" })
          assert.deepStrictEqual([defined.name, defined.limit, defined.available, defined.permitsInWindow], [
            "anthropic",
            10,
            10,
            0
          ])
          assert.strictEqual((yield* acme.getLimiter("anthropic")).limit, 10)
          assert.deepStrictEqual((yield* acme.listLimiters()).map((l) => l.name), ["anthropic"])

          // another tenant neither sees nor changes it
          assert.deepStrictEqual(yield* globex.listLimiters(), [])
          const theirs = yield* Effect.flip(globex.getLimiter("anthropic"))
          assert.strictEqual(theirs._tag, "LimiterNotFound")
          assert.strictEqual((yield* Effect.flip(globex.deleteLimiter("anthropic")))._tag, "LimiterNotFound")

          // bad definitions are refused before anything is sent, and over the wire with a 400
          const bad = yield* Effect.either(acme.defineLimiter({ name: "x y", limit: 0, interval: "soon" }))
          assert.isTrue(Either.isLeft(bad) && bad.left._tag === "InvalidRequest")
          const raw = yield* request(`${base}/rpc`, {
            method: "POST",
            headers: bearer("acme"),
            body: JSON.stringify({
              _tag: "Request",
              id: "1",
              tag: "DefineLimiter",
              payload: { name: "api", limit: -1, interval: "1 second" },
              headers: []
            }) + "\n"
          })
          assert.strictEqual(raw.status, 400)
          assert.deepStrictEqual((yield* acme.listLimiters()).map((l) => l.name), ["anthropic"])

          const metrics = yield* request(`${base}/metrics`)
          assert.strictEqual(parse(metrics.body).get("effect_batch_limiter_limit")?.type, "gauge")
          assert.include(metrics.body, `effect_batch_limiter_limit{tenant="acme",limiter="anthropic"} 10`)
          assert.include(metrics.body, `effect_batch_limiter_interval_seconds{tenant="acme",limiter="anthropic"} 60`)
          assert.include(metrics.body, `effect_batch_limiter_permits_in_window{tenant="acme",limiter="anthropic"} 0`)
          assert.include(metrics.body, `effect_batch_limiter_held_back_seconds{tenant="acme",limiter="anthropic"} 0`)

          yield* acme.deleteLimiter("anthropic")
          assert.strictEqual((yield* Effect.flip(acme.getLimiter("anthropic")))._tag, "LimiterNotFound")
        }))
    }
  )
}

describe("open streams across processes (Postgres)", () => {
  it.scoped(
    "a tenant's limit on open streams counts the streams of every server on the database",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        const database = Database.layerPostgres(url)
        const start = () =>
          Effect.map(
            Layer.build(server(database, { maxStreamsPerTenant: 2 })),
            (context) => ({
              base: Effect.runSync(Effect.provide(Http.url, context)),
              orchestrator: Context.get(context, BatchOrchestrator.BatchOrchestrator)
            })
          )
        const a = yield* start()
        const b = yield* start()
        const batch = yield* a.orchestrator.submitEncoded(paced.name, items(2, 1), { review: true }, caller)
        yield* a.orchestrator.await(caller, batch.id)
        const events = (base: string) => `${base}/batches/${batch.id}/events`
        const first = yield* connect(events(a.base), bearer("acme"))
        const second = yield* connect(events(b.base), bearer("acme"))
        assert.deepStrictEqual([first.status, second.status], [200, 200])
        for (const base of [a.base, b.base]) {
          const refused = yield* request(events(base), { headers: bearer("acme") })
          assert.strictEqual(refused.status, 429, `the third stream, on ${base}`)
          assert.strictEqual(JSON.parse(refused.body)._tag, "LimitExceeded")
        }
        second.close()
        yield* Effect.sleep("300 millis")
        const again = yield* connect(events(a.base), bearer("acme"))
        assert.strictEqual(again.status, 200, "a closed stream frees its slot for every server")
        yield* a.orchestrator.approve(caller, batch.id)
      }),
    { timeout: 60_000 }
  )
})
