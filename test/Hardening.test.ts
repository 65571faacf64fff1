import { Errors, Ids } from "@effect-batch/domain"
import { BatchClient, BatchOrchestrator, Http } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { bearer, echo, items, paced, request, rpcExit, rpcLine, rpcOutcome, server } from "./support/HttpServer.js"
import { serverBehindProxy } from "./support/ProxiedServer.js"
import { serveEmbedded as serve } from "./support/ServeProcess.js"

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }

const stored = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly batches: number; readonly items: number }>`SELECT
    (SELECT count(*)::int FROM effect_batch_batches) AS batches,
    (SELECT count(*)::int FROM effect_batch_items) AS items`
  return rows[0]
})

const rpcTo = (base: string) => (body: string) =>
  request(`${base}/rpc`, { method: "POST", headers: bearer("acme"), body })

/** Arrays nested `depth` levels deep, as a value (never stringified: that recurses) or as JSON text. */
const nested = (depth: number): unknown => {
  let value: unknown = []
  for (let i = 1; i < depth; i++) value = [value]
  return value
}
const nestedJson = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

/** Items that Postgres would refuse or change, each beside a valid one. */
const unstorable = [
  { key: "nul\u0000key", input: { ms: 1 } },
  { key: "ok-1", input: { ms: 1 } },
  { key: "ok-2", input: { note: "nul \u0000 inside" } },
  { key: "ok-3", input: { note: "lone \ud800 surrogate" } },
  { key: "x\ud800y", input: { ms: 1 } },
  { key: "ok-4", input: { ["name\u0000"]: 1 } },
  { key: "ok-5", input: [{ deep: "\udc00" }] }
]
const unstorableIndexes = [0, 2, 3, 4, 5, 6]

const assertNamesUnstorable = (error: Errors.InvalidItems) => {
  assert.deepStrictEqual(error.items.map((item) => item.index), unstorableIndexes, error.message)
  assert.strictEqual(error.count, unstorableIndexes.length)
  for (const item of error.items) assert.match(item.reason, /NUL|surrogate/, item.reason)
}

const invalidItems = <A>(submit: Effect.Effect<A, BatchOrchestrator.SubmitError>) =>
  Effect.flip(submit).pipe(
    Effect.flatMap((e) => e._tag === "InvalidItems" ? Effect.succeed(e) : Effect.dieMessage(`got ${e._tag}`))
  )

for (const [name, db] of TestDatabase.databases) {
  layer(server(db, { requestTimeout: "1 second" }), { excludeTestServices: true, timeout: "120 seconds" })(
    `hardening (${name})`,
    (it) => {
      it.scoped("JSON nested 5,000 levels deep is a 400 saying so, and the server keeps answering", () =>
        Effect.gen(function*() {
          const rpc = rpcTo(yield* Http.url)
          for (const depth of [5_000, 100_000]) {
            const answer = yield* rpc(
              rpcLine("CreateBatch", { workflow: "echo", items: [{ key: "deep", input: "INPUT" }] })
                .replace("\"INPUT\"", nestedJson(depth))
            )
            assert.strictEqual(answer.status, 400, answer.body.slice(0, 300))
            const body = JSON.parse(answer.body)
            assert.strictEqual(body._tag, "InvalidRequest")
            assert.match(body.message, /nested deeper than/)
          }
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const library = yield* Effect.flip(o.submit(echo, [{ key: "deep", input: nested(5_000) }], undefined, acme))
          assert.strictEqual(library._tag, "InvalidItems")
          assert.match(library.message, /nested deeper than 100 levels/)
          const ok = yield* rpc(rpcLine("CreateBatch", { workflow: "echo", items: [{ key: "a", input: nested(95) }] }))
          assert.strictEqual(rpcOutcome(ok), "success")
          assert.strictEqual(rpcOutcome(yield* rpc(rpcLine("GetBatch", { batchId: rpcExit(ok).value.id }))), "success")
        }))

      it.scoped("a NUL or a lone surrogate in a key or an input is InvalidItems naming each, through the library and RPC", () =>
        Effect.gen(function*() {
          const rpc = rpcTo(yield* Http.url)
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const before = yield* stored
          assertNamesUnstorable(yield* invalidItems(o.submit(echo, unstorable, undefined, acme)))
          assertNamesUnstorable(yield* invalidItems(o.submitEncoded(echo.name, unstorable, {}, acme)))
          const answer = yield* rpc(rpcLine("CreateBatch", { workflow: "echo", items: unstorable }))
          assert.strictEqual(rpcOutcome(answer), "InvalidItems", answer.body.slice(0, 300))
          assertNamesUnstorable(Schema.decodeUnknownSync(Errors.InvalidItems)(rpcExit(answer).cause.error))
          assert.deepStrictEqual(yield* stored, before)
        }))

      it.scoped("StreamProgress after the batch's last event fails with InvalidRequest, as the SSE route answers 400", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const running = yield* o.submitEncoded(paced.name, items(2, 60_000), {}, acme)
          const settled = yield* o.submitEncoded(paced.name, items(1, 1), {}, acme)
          yield* o.await(acme, settled.id)
          for (const batch of [running, yield* o.get(acme, settled.id)]) {
            const after = batch.lastSeq + 5
            const answer = yield* rpcTo(base)(rpcLine("StreamProgress", { batchId: batch.id, after }))
            assert.strictEqual(rpcOutcome(answer), "InvalidRequest", answer.body.slice(0, 300))
            assert.match(rpcExit(answer).cause.error.message, /beyond the batch's last event/)
            const sse = yield* request(`${base}/batches/${batch.id}/events?after=${after}`, { headers: bearer("acme") })
            assert.strictEqual(sse.status, 400)
          }
          yield* o.cancel(acme, running.id)
        }))

      it.scoped("rejecting 100,001 items, or 1,000 items with large bad inputs, answers a bounded body", () =>
        Effect.gen(function*() {
          const rpc = rpcTo(yield* Http.url)
          const tooMany = yield* rpc(rpcLine("CreateBatch", { workflow: "paced", items: items(100_001, 1) }))
          assert.strictEqual(tooMany.status, 400)
          assert.isBelow(tooMany.body.length, 2_000)
          assert.match(JSON.parse(tooMany.body).message, /at most 100000 items/)
          const bad = Array.from({ length: 1_000 }, (_, i) => ({ key: `bad-${i}`, input: { ms: "x".repeat(10_000) } }))
          const answer = yield* rpc(rpcLine("CreateBatch", { workflow: "paced", items: bad }))
          assert.strictEqual(rpcOutcome(answer), "InvalidItems")
          assert.isBelow(answer.body.length, 100_000)
          const error = rpcExit(answer).cause.error
          assert.strictEqual(error.count, 1_000)
          assert.strictEqual(error.items.length, 100)
        }))

      it.scoped("a request body that stops arriving is cut after the configured request timeout", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const started = Date.now()
          const answer = yield* request(`${base}/rpc`, {
            method: "POST",
            headers: { ...bearer("acme"), "content-length": "100" },
            body: "0123456789"
          }).pipe(Effect.either)
          const elapsed = Date.now() - started
          assert.isBelow(elapsed, 10_000)
          assert.isAtLeast(elapsed, 900)
          if (answer._tag === "Right") assert.strictEqual(answer.right.status, 408)
          const ok = yield* rpcTo(base)(rpcLine("ListBatches", {}))
          assert.strictEqual(rpcOutcome(ok), "success")
        }))

      it.scoped("ReleaseQuarantined where the batch does not allow it names ReleaseQuarantined", () =>
        Effect.gen(function*() {
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const waiting = yield* o.submitEncoded(paced.name, items(1, 1), { review: true }, acme)
          yield* o.await(acme, waiting.id)
          const error = yield* Effect.flip(o.releaseQuarantined(acme, waiting.id))
          assert.strictEqual(error._tag, "InvalidTransition")
          assert.strictEqual(error._tag === "InvalidTransition" ? error.command : "", "ReleaseQuarantined")
          const answer = yield* rpcTo(yield* Http.url)(rpcLine("ReleaseQuarantined", { batchId: waiting.id }))
          assert.strictEqual(rpcOutcome(answer), "InvalidTransition")
          assert.strictEqual(rpcExit(answer).cause.error.command, "ReleaseQuarantined")
        }))

      it.scoped("an empty batch is EmptyBatch and a zero timeout InvalidBatchConfig; nothing is stored", () =>
        Effect.gen(function*() {
          const rpc = rpcTo(yield* Http.url)
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const before = yield* stored
          assert.strictEqual((yield* Effect.flip(o.submit(paced, [], undefined, acme)))._tag, "EmptyBatch")
          assert.strictEqual(
            rpcOutcome(yield* rpc(rpcLine("CreateBatch", { workflow: "paced", items: [] }))),
            "EmptyBatch"
          )
          const zero = yield* Effect.flip(o.submitEncoded(paced.name, items(1, 1), { timeout: "0 millis" }, acme))
          assert.strictEqual(zero._tag, "InvalidBatchConfig")
          assert.match(zero.message, /timeout must be longer than 0/)
          const answer = yield* rpc(
            rpcLine("CreateBatch", { workflow: "paced", items: items(1, 1), config: { timeout: "0 millis" } })
          )
          assert.strictEqual(rpcOutcome(answer), "InvalidBatchConfig")
          assert.deepStrictEqual(yield* stored, before)
        }))
    }
  )
}

/** The workflows every `serve` below runs. */
const workflows = ["--workflows", "test/support/ServeWorkflows.ts"]

const portOf = (line: string) => Number(/listening on http:\/\/[^:]+:(\d+)/.exec(line)?.[1])

/** Whether something answers HTTP at `host:port` (127.0.0.2 is loopback too, but not 127.0.0.1). */
const answers = (host: string, port: number) =>
  request(`http://${host}:${port}/health`).pipe(
    Effect.map(() => true),
    Effect.catchAll(() => Effect.succeed(false))
  )

describe("serve", () => {
  it.live(
    "listens on 127.0.0.1 unless --host says otherwise, and never prints a configured token",
    () =>
      Effect.gen(function*() {
        const secret = "s3cret-token-not-to-print"
        const line = yield* serve(workflows, { EFFECT_BATCH_TOKENS: `${secret}=acme` })
        assert.notInclude(line, secret)
        assert.match(line, /listening on http:\/\/127\.0\.0\.1:\d+ \(dashboard: http:\/\/127\.0\.0\.1:\d+\/\)/)
        assert.isTrue(yield* answers("127.0.0.1", portOf(line)))
        assert.isFalse(yield* answers("127.0.0.2", portOf(line)))
        const elsewhere = yield* serve([...workflows, "--host", "127.0.0.2"], { EFFECT_BATCH_TOKENS: `${secret}=acme` })
        assert.isTrue(yield* answers("127.0.0.2", portOf(elsewhere)))
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "refuses to start without tokens, naming the variable; --demo accepts only the demo token",
    () =>
      Effect.gen(function*() {
        const refused = yield* Effect.flip(serve([], { EFFECT_BATCH_TOKENS: "" }))
        assert.match(refused.message, /serve exited with [1-9]/)
        assert.include(refused.message, "EFFECT_BATCH_TOKENS")
        const demo = yield* serve(["--demo"], { EFFECT_BATCH_TOKENS: "" })
        assert.include(demo, "?token=demo-token")
      }).pipe(Effect.scoped),
    180_000
  )
})

describe("serve with shared limiters", () => {
  it.live(
    "defines the limiters EFFECT_BATCH_LIMITERS gives at start, and refuses a malformed value, naming it",
    () =>
      Effect.gen(function*() {
        const secret = "limiters-token-0123456789"
        const refused = yield* Effect.flip(serve(workflows, {
          EFFECT_BATCH_TOKENS: `${secret}=acme`,
          EFFECT_BATCH_LIMITERS: `{"acme":{"anthropic":{"limit":0,"interval":"1 minute"}}}`
        }))
        assert.include(refused.message, "EFFECT_BATCH_LIMITERS")
        const line = yield* serve(workflows, {
          EFFECT_BATCH_TOKENS: `${secret}=acme`,
          EFFECT_BATCH_LIMITERS: `{"acme":{"anthropic":{"limit":10,"interval":"1 minute"}}}`
        })
        const client = yield* Layer.build(
          BatchClient.layerFetch({ url: `http://127.0.0.1:${portOf(line)}`, token: secret })
        ).pipe(Effect.map((context) => Context.get(context, BatchClient.BatchClient)))
        const defined = yield* client.listLimiters()
        assert.deepStrictEqual(defined.map((l) => [l.name, l.limit, Duration.toMillis(l.interval)]), [
          ["anthropic", 10, 60_000]
        ])
      }).pipe(Effect.scoped),
    180_000
  )
})

describe("while Postgres is down", () => {
  it.live(
    "RPCs fail with StorageUnavailable, the SSE route answers 503, and both recover",
    () =>
      Effect.gen(function*() {
        const { base, orchestrator: o, proxy } = yield* serverBehindProxy
        const batch = yield* o.submitEncoded(paced.name, items(1, 1), { review: true }, acme)
        const rpc = rpcTo(base)
        const events = request(`${base}/batches/${batch.id}/events`, { headers: bearer("acme") })

        proxy.down()
        for (const line of [rpcLine("GetBatch", { batchId: batch.id }), rpcLine("ListBatches", {})]) {
          const answer = yield* rpc(line)
          assert.strictEqual(rpcOutcome(answer), "StorageUnavailable", answer.body.slice(0, 300))
        }
        const created = yield* rpc(rpcLine("CreateBatch", { workflow: "paced", items: items(1, 1) }))
        assert.strictEqual(rpcOutcome(created), "StorageUnavailable")
        const sse = yield* events
        assert.strictEqual(sse.status, 503)
        assert.strictEqual(JSON.parse(sse.body)._tag, "StorageUnavailable")

        proxy.up()
        assert.strictEqual(rpcOutcome(yield* rpc(rpcLine("GetBatch", { batchId: batch.id }))), "success")
      }).pipe(Effect.scoped),
    120_000
  )
})
