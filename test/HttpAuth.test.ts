import { Ids } from "@effect-batch/domain"
import { BatchClient, BatchOrchestrator, Http } from "@effect-batch/server"
import * as Auth from "@effect-batch/server/Http/Auth"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { bearer, items, paced, request, rpcLine, server, tokens } from "./support/HttpServer.js"
import { parse } from "./support/Prometheus.js"
import { connect } from "./support/SseClient.js"

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }

const clientFor = (token: string) =>
  Effect.gen(function*() {
    const url = yield* Http.url
    return Context.get(yield* Layer.build(BatchClient.layerFetch({ url, token })), BatchClient.BatchClient)
  })

/** Every RPC that names a batch, called through the typed client. */
const everyBatchRpc = (
  c: BatchClient.BatchClient["Type"],
  id: string
): Record<string, Effect.Effect<unknown, { readonly _tag: string }>> => ({
  GetBatch: c.get(id),
  ListItems: c.listItems(id),
  GetProgress: c.progress(id),
  GetResults: Stream.runDrain(c.results(id)),
  StreamProgress: Stream.runDrain(c.events(id)),
  Pause: c.pause(id),
  Resume: c.resume(id),
  Cancel: c.cancel(id),
  Approve: c.approve(id),
  Reject: c.reject(id),
  RetryFailed: c.retryFailed(id),
  ReleaseQuarantined: c.releaseQuarantined(id),
  UpdateConfig: c.updateConfig(id, { concurrency: 3 })
})

for (const [name, db] of TestDatabase.databases) {
  layer(server(db, { maxStreamsPerTenant: 3 }), { excludeTestServices: true, timeout: "60 seconds" })(
    `auth, tenancy and limits over HTTP (${name})`,
    (it) => {
      it.scoped("401 without a token or with an unknown one, on every route that needs one", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const batch = yield* o.submitEncoded(paced.name, items(2, 1), {}, acme)
          const body = rpcLine("GetBatch", { batchId: batch.id })
          for (const headers of [{}, { authorization: "Bearer nope" }, { authorization: tokens.acme }]) {
            const rpc = yield* request(`${base}/rpc`, { method: "POST", headers, body })
            assert.strictEqual(rpc.status, 401)
            assert.strictEqual(rpc.headers["www-authenticate"], "Bearer")
            assert.strictEqual(JSON.parse(rpc.body)._tag, "Unauthorized")
            const sse = yield* request(`${base}/batches/${batch.id}/events`, { headers })
            assert.strictEqual(sse.status, 401)
            assert.strictEqual(JSON.parse(sse.body)._tag, "Unauthorized")
          }
          // 401 comes before anything is read or looked up
          const noId = yield* request(`${base}/batches/not-a-uuid/events`)
          assert.strictEqual(noId.status, 401)
          const ok = yield* request(`${base}/rpc`, { method: "POST", headers: bearer("acme"), body })
          assert.strictEqual(ok.status, 200)
          assert.include(ok.body, "\"Exit\"")
        }))

      it.scoped("a browser's EventSource authenticates with the cookie or the ?token= parameter", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const batch = yield* o.submitEncoded(paced.name, items(2, 1), {}, acme)
          yield* o.await(acme, batch.id)
          const url = `${base}/batches/${batch.id}/events`
          const viaCookie = yield* connect(url, { cookie: `theme=dark; effect_batch_token=${tokens.acme}` })
          assert.strictEqual(viaCookie.status, 200)
          assert.strictEqual(yield* Deferred.await(viaCookie.ended), "end")
          const viaQuery = yield* connect(`${url}?token=${tokens.acme}&after=1`)
          assert.strictEqual(viaQuery.status, 200)
          assert.strictEqual(yield* Deferred.await(viaQuery.ended), "end")
          assert.strictEqual(viaQuery.events[0]?.id, "2")
          const wrongCookie = yield* request(url, { headers: { cookie: "effect_batch_token=nope" } })
          assert.strictEqual(wrongCookie.status, 401)
        }))

      it.scoped("another tenant's batch is \"not found\" on every RPC and route, and nothing changes", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const batch = yield* o.submitEncoded(paced.name, items(3, 1), { review: true }, acme)
          const before = yield* o.await(acme, batch.id)
          assert.strictEqual(before.state._tag, "AwaitingReview")
          const globex = yield* clientFor(tokens.globex)
          for (const [rpc, call] of Object.entries(everyBatchRpc(globex, batch.id))) {
            const error = yield* Effect.flip(call)
            assert.strictEqual(error._tag, "BatchNotFound", rpc)
          }
          const listed = yield* globex.list()
          assert.isFalse(listed.items.some((b) => b.id === batch.id))
          const watched = yield* Effect.flip(Stream.runDrain(globex.watch(batch.id)))
          assert.strictEqual(watched._tag, "BatchNotFound")
          const sse = yield* request(`${base}/batches/${batch.id}/events`, { headers: bearer("globex") })
          assert.strictEqual(sse.status, 404)
          assert.deepStrictEqual(JSON.parse(sse.body), {
            _tag: "BatchNotFound",
            batchId: batch.id,
            message: `batch ${batch.id} not found`
          })
          const after = yield* o.get(acme, batch.id)
          assert.deepStrictEqual([after.version, after.lastSeq, after.state._tag], [
            before.version,
            before.lastSeq,
            "AwaitingReview"
          ])
          // the owner still can
          const owner = yield* clientFor(tokens.acme)
          assert.strictEqual((yield* owner.approve(batch.id)).state._tag, "Completed")
        }))

      it.scoped("open streams are limited per tenant (429 / LimitExceeded) and released when closed", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const batch = yield* o.submitEncoded(paced.name, items(2, 1), { review: true }, acme)
          yield* o.await(acme, batch.id)
          const url = `${base}/batches/${batch.id}/events`
          const open = yield* Effect.forEach([1, 2, 3], () => connect(url, bearer("acme")))
          assert.isTrue(open.every((c) => c.status === 200))
          const refused = yield* request(url, { headers: bearer("acme") })
          assert.strictEqual(refused.status, 429)
          assert.deepStrictEqual(JSON.parse(refused.body)._tag, "LimitExceeded")
          const acmeClient = yield* clientFor(tokens.acme)
          const viaRpc = yield* Effect.flip(Stream.runDrain(acmeClient.events(batch.id)))
          assert.strictEqual(viaRpc._tag, "LimitExceeded")
          const metrics = yield* request(`${base}/metrics`)
          assert.include(metrics.body, "effect_batch_open_streams{transport=\"sse\"} 3")
          // other tenants are not affected (globex's own batch)
          const globex = { tenant: Schema.decodeSync(Ids.TenantId)("globex") }
          const theirs = yield* o.submitEncoded(paced.name, items(1, 1), {}, globex)
          const other = yield* connect(`${base}/batches/${theirs.id}/events`, bearer("globex"))
          assert.strictEqual(other.status, 200)
          for (const c of open) c.close()
          yield* Effect.sleep("200 millis")
          const again = yield* connect(url, bearer("acme"))
          assert.strictEqual(again.status, 200)
          again.close()
          yield* o.approve(acme, batch.id)
        }))

      it.effect("EFFECT_BATCH_TOKENS parses token=tenant[:actor] entries and rejects malformed ones", () =>
        Effect.sync(() => {
          const parsed = Auth.parse(" abc== = acme , t2=globex:bob ,")
          assert.deepStrictEqual(Either.getOrThrow(parsed), [
            { token: "abc==", tenant: "acme", actor: undefined },
            { token: "t2", tenant: "globex", actor: "bob" }
          ])
          for (const bad of ["", "token", "=acme", "token=", " , "]) assert.isTrue(Either.isLeft(Auth.parse(bad)), bad)
          assert.isTrue(Either.isLeft(Either.flatMap(Auth.parse("a b=acme"), Auth.make)))
        }))

      it.effect("a tokens file holds the same entries by line or by comma, with # comment lines", () =>
        Effect.sync(() => {
          const parsed = Auth.parseFile("# ops\r\nabc#1=acme:ops, t2=globex\n\n   # retired: old=acme\nt3=initech\n")
          assert.deepStrictEqual(Either.getOrThrow(parsed), [
            { token: "abc#1", tenant: "acme", actor: "ops" },
            { token: "t2", tenant: "globex", actor: undefined },
            { token: "t3", tenant: "initech", actor: undefined }
          ])
          for (const bad of ["", "# only a comment\n", "token\n", "a=acme\nb=\n"]) {
            assert.isTrue(Either.isLeft(Auth.parseFile(bad)), bad)
          }
        }))

      it.scoped("/health and /metrics answer without a token, with no tenant data", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const health = yield* request(`${base}/health`)
          assert.strictEqual(health.status, 200)
          const body = JSON.parse(health.body)
          assert.strictEqual(body.status, "ok")
          assert.strictEqual(body.database.reachable, true)
          assert.strictEqual(body.worker.alive, true)
          assert.isNumber(body.claimLag.overdueRetryMs)
          const metrics = yield* request(`${base}/metrics`)
          assert.strictEqual(metrics.status, 200)
          assert.match(String(metrics.headers["content-type"]), /^text\/plain; version=0.0.4/)
          for (
            const family of [
              "effect_batch_batches{state=\"Completed\"}",
              "effect_batch_items{batch_state=\"Completed\",state=\"succeeded\"}",
              "effect_batch_open_streams{transport=\"rpc\"}",
              "effect_batch_worker_last_tick_age_seconds",
              "effect_batch_expired_lease_seconds 0"
            ]
          ) assert.include(metrics.body, family)
          assert.notInclude(metrics.body, "acme")
          // well-formed, with this process's attempt counters beside the gauges
          const families = parse(metrics.body)
          assert.strictEqual(families.get("effect_batch_attempts_started_total")?.type, "counter")
          assert.strictEqual(families.get("effect_batch_batches")?.type, "gauge")
        }))
    }
  )
}
