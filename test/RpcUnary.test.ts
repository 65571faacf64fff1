/**
 * A body of unary RPCs is answered without the RPC server's protocol (`Http/RpcUnary`); a body with a
 * streaming RPC still goes through it. Both must answer a unary request with the same bytes: each case
 * sends the requests alone (the direct answer, with a `Content-Length`) and again beside a streaming
 * `GetResults` (the protocol's answer, chunked), and compares the `Exit` lines.
 */
import { Ids } from "@effect-batch/domain"
import { BatchOrchestrator, Http } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { bearer, items, paced, request, rpcLine, server } from "./support/HttpServer.js"

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }
const unknownBatch = "00000000-0000-4000-8000-000000000000"

type Line = { readonly tag: string; readonly payload: unknown; readonly id: string }

const post = (tenant: "acme" | "globex", lines: ReadonlyArray<Line>) =>
  Effect.flatMap(Http.url, (url) =>
    request(`${url}/rpc`, {
      method: "POST",
      headers: { ...bearer(tenant), "content-type": "application/ndjson" },
      body: lines.map((l) => rpcLine(l.tag, l.payload, l.id)).join("")
    }))

/** The answer's NDJSON lines by request id (each line as sent, with its newline). */
const byRequestId = (body: string) => {
  const lines = new Map<string, string>()
  for (const line of body.split("\n")) {
    if (line === "") continue
    const message = JSON.parse(line)
    assert.strictEqual(message._tag, "Exit", line)
    lines.set(message.requestId, `${line}\n`)
  }
  return lines
}

/** Sends `lines` alone and beside a streaming RPC; both answers carry the same bytes per request. */
const sameAnswers = (tenant: "acme" | "globex", lines: ReadonlyArray<Line>) =>
  Effect.gen(function*() {
    const direct = yield* post(tenant, lines)
    assert.strictEqual(direct.status, 200)
    assert.strictEqual(direct.headers["content-type"], "application/ndjson")
    assert.isDefined(direct.headers["content-length"], "answered at once, without the protocol's stream")
    const stream = { tag: "GetResults", payload: { batchId: unknownBatch }, id: "999" }
    const viaProtocol = yield* post(tenant, [...lines, stream])
    assert.strictEqual(viaProtocol.status, 200)
    assert.strictEqual(viaProtocol.headers["transfer-encoding"], "chunked")
    const expected = byRequestId(viaProtocol.body)
    assert.strictEqual(expected.size, lines.length + 1)
    // in request order, each line byte for byte what the protocol writes
    assert.strictEqual(direct.body, lines.map((l) => expected.get(l.id)).join(""))
    return direct.body.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l).exit)
  })

/** A settled batch of acme's with `n` items. */
const settled = (n: number) =>
  Effect.gen(function*() {
    const o = yield* BatchOrchestrator.BatchOrchestrator
    const batch = yield* o.submitEncoded(paced.name, items(n, 1), {}, acme)
    return yield* o.await(acme, batch.id)
  })

for (const [name, db] of TestDatabase.databases) {
  layer(server(db), { excludeTestServices: true, timeout: "60 seconds" })(`unary RPCs over HTTP (${name})`, (it) => {
    it.effect("a success answers what the protocol answers", () =>
      Effect.gen(function*() {
        const batch = yield* settled(3)
        const [exit] = yield* sameAnswers("acme", [{ tag: "GetBatch", payload: { batchId: batch.id }, id: "1" }])
        assert.strictEqual(exit._tag, "Success")
        assert.strictEqual(exit.value.id, batch.id)
        assert.strictEqual(exit.value.state._tag, "Completed")
      }))

    it.effect("a typed failure answers what the protocol answers", () =>
      Effect.gen(function*() {
        const [exit] = yield* sameAnswers("acme", [{ tag: "GetBatch", payload: { batchId: unknownBatch }, id: "7" }])
        assert.deepStrictEqual(exit, {
          _tag: "Failure",
          cause: {
            _tag: "Fail",
            error: { _tag: "BatchNotFound", batchId: unknownBatch }
          }
        })
      }))

    it.effect("several requests in one body are answered in request order, as the protocol answers each", () =>
      Effect.gen(function*() {
        const batch = yield* settled(4)
        const exits = yield* sameAnswers("acme", [
          { tag: "ListBatches", payload: { limit: 2 }, id: "3" },
          { tag: "GetBatch", payload: { batchId: unknownBatch }, id: "1" },
          { tag: "ListItems", payload: { batchId: batch.id, limit: 2 }, id: "12" },
          { tag: "GetBatch", payload: { batchId: batch.id }, id: "2" }
        ])
        assert.deepStrictEqual(exits.map((e) => e._tag), ["Success", "Failure", "Success", "Success"])
        assert.strictEqual(exits[0].value.items[0].id, batch.id)
        assert.strictEqual(exits[2].value.items.length, 2)
      }))

    it.effect("another tenant's batch is not found, as on the protocol", () =>
      Effect.gen(function*() {
        const batch = yield* settled(2)
        const [exit] = yield* sameAnswers("globex", [{ tag: "GetBatch", payload: { batchId: batch.id }, id: "1" }])
        assert.strictEqual(exit.cause.error._tag, "BatchNotFound")
        assert.strictEqual(exit.cause.error.batchId, batch.id)
      }))
  })
}
