import { Api, Ids } from "@effect-batch/domain"
import { BatchOrchestrator, Http } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import { type Answer, bearer, items, paced, request, rpcLine, rpcOutcome, server } from "./support/HttpServer.js"

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }
const runs = 25
const sample = <A>(arbitrary: fc.Arbitrary<A>, numRuns = runs) => fc.sample(arbitrary, { numRuns, seed: 20261122 })

/** Everything a request could change, summed up. */
const snapshot = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly digest: string }>`SELECT md5(
    (SELECT coalesce(string_agg(id::text || state_tag || version || seq || config::text, ',' ORDER BY id), '')
      FROM effect_batch_batches) ||
    (SELECT coalesce(string_agg(batch_id::text || key || state || attempt, ',' ORDER BY batch_id, key), '')
      FROM effect_batch_items) ||
    (SELECT count(*)::text FROM effect_batch_events)) AS digest`
  return rows[0]?.digest ?? ""
})

const payloadSchemas = new Map<string, Schema.Schema.AnyNoContext>()
for (const rpc of Api.Api.requests.values()) payloadSchemas.set(rpc._tag, rpc.payloadSchema)
/** Whether the payload, as it goes over the wire (JSON drops `undefined`), decodes. */
const isValidPayload = (tag: string, payload: unknown) => {
  const schema = payloadSchemas.get(tag)
  const wire: unknown = JSON.parse(JSON.stringify(payload) ?? "null")
  return schema !== undefined && Either.isRight(Schema.decodeUnknownEither(schema)(wire))
}

/** A valid payload of each RPC (never sent as is) and the fields to corrupt. */
const validPayloads = (batchId: string): Record<string, readonly [Record<string, unknown>, ReadonlyArray<string>]> => ({
  CreateBatch: [{ workflow: "paced", items: [{ key: "k", input: { ms: 1 } }] }, [
    "workflow",
    "items",
    "idempotencyKey"
  ]],
  GetBatch: [{ batchId }, ["batchId"]],
  ListBatches: [{}, ["state", "limit", "cursor"]],
  ListItems: [{ batchId }, ["batchId", "state", "limit", "cursor"]],
  GetProgress: [{ batchId }, ["batchId"]],
  GetResults: [{ batchId }, ["batchId"]],
  StreamProgress: [{ batchId, after: 0 }, ["batchId", "after"]],
  Pause: [{ batchId, note: "" }, ["batchId", "note"]],
  Resume: [{ batchId }, ["batchId", "note"]],
  Cancel: [{ batchId }, ["batchId", "note"]],
  Approve: [{ batchId }, ["batchId", "note"]],
  Reject: [{ batchId }, ["batchId", "note"]],
  RetryFailed: [{ batchId }, ["batchId", "dryRun"]],
  ReleaseQuarantined: [{ batchId }, ["batchId", "itemKeys"]],
  UpdateConfig: [{ batchId, patch: { concurrency: 2 } }, ["batchId", "patch"]]
})

/** The same for the shared limiters' RPCs (they take no batch id). */
const limiterPayloads: Record<string, readonly [Record<string, unknown>, ReadonlyArray<string>]> = {
  DefineLimiter: [{ name: "api", limit: 10, interval: "1 second" }, ["name", "limit", "interval"]],
  GetLimiter: [{ name: "api" }, ["name"]],
  DeleteLimiter: [{ name: "api" }, ["name"]]
}

const expect400 = (answer: Answer, what: string) => {
  assert.strictEqual(answer.status, 400, `${what}: ${answer.body.slice(0, 300)}`)
  assert.strictEqual(JSON.parse(answer.body)._tag, "InvalidRequest", what)
}

for (const [name, db] of TestDatabase.databases) {
  layer(server(db, { maxRpcBodyBytes: 64 * 1024 }), { excludeTestServices: true, timeout: "90 seconds" })(
    `bad input over HTTP (${name})`,
    (it) => {
      it.scoped("fuzzed bad payloads on every RPC and route: 400 or the RPC's typed error; nothing changes", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const o = yield* BatchOrchestrator.BatchOrchestrator
          // a batch waiting for review: a request that slipped through would change it
          const waiting = yield* o.submitEncoded(paced.name, items(3, 1), { review: true }, acme)
          const settled = yield* o.submitEncoded(paced.name, items(3, 1), {}, acme)
          yield* o.await(acme, waiting.id)
          yield* o.await(acme, settled.id)
          yield* Effect.sleep("300 millis")
          const before = yield* snapshot
          const rpc = (body: string, headers: Record<string, string> = {}) =>
            request(`${base}/rpc`, { method: "POST", headers: { ...bearer("acme"), ...headers }, body })

          // 1. bodies that are not NDJSON RPC requests
          const bodies = [
            ...sample(fc.string({ maxLength: 300 })),
            ...sample(fc.json().map((json) => json + "\n")),
            ...sample(fc.anything().map((value) => JSON.stringify({ _tag: "Request", id: "1", tag: value }) + "\n")),
            ...sample(fc.anything().map((id) => JSON.stringify({ _tag: "Request", id, tag: "GetBatch" }) + "\n")),
            "",
            "\n",
            rpcLine("GetBatch", { batchId: waiting.id }).trimEnd(),
            rpcLine("NoSuchRpc", {}),
            rpcLine("GetBatch", { batchId: waiting.id }) + rpcLine("GetBatch", { batchId: waiting.id }),
            JSON.stringify({
              _tag: "Request",
              id: "1",
              tag: "GetBatch",
              payload: { batchId: waiting.id },
              headers: [["authorization", "Bearer x"]]
            }) + "\n",
            JSON.stringify({ _tag: "Ping" }) + "\n"
          ]
          for (const body of bodies) expect400(yield* rpc(body), `body ${JSON.stringify(body).slice(0, 80)}`)

          // 2. each field of each RPC's payload replaced by a value that does not decode, or missing
          for (const [tag, [valid, fields]] of Object.entries({ ...validPayloads(waiting.id), ...limiterPayloads })) {
            for (const field of fields) {
              const bad = sample(
                fc.anything({ withNullPrototype: false }).map((value) => ({ ...valid, [field]: value })).filter((p) =>
                  !isValidPayload(tag, p)
                ),
                10
              )
              const { [field]: _, ...missing } = valid
              for (const payload of isValidPayload(tag, missing) ? bad : [...bad, missing]) {
                expect400(yield* rpc(rpcLine(tag, payload)), `${tag}.${field} = ${JSON.stringify(payload[field])}`)
              }
            }
          }
          const specific: ReadonlyArray<readonly [string, unknown]> = [
            ["StreamProgress", { batchId: waiting.id, after: -1 }],
            ["StreamProgress", { batchId: waiting.id, after: 1.5 }],
            ["ListBatches", { limit: 0 }],
            ["ListBatches", { limit: 1001 }],
            ["ListItems", { batchId: waiting.id, state: "Nope" }],
            ["Pause", { batchId: waiting.id, note: "x".repeat(2001) }],
            ["UpdateConfig", { batchId: waiting.id, patch: { concurrency: 0 } }],
            ["CreateBatch", { workflow: "bad name!", items: [] }],
            ["ReleaseQuarantined", { batchId: waiting.id, itemKeys: [""] }]
          ]
          for (const [tag, payload] of specific) {
            expect400(yield* rpc(rpcLine(tag, payload)), `${tag} ${JSON.stringify(payload)}`)
          }

          // 3. payloads that decode but name nothing of this tenant, or break the workflow's rules: typed errors
          for (const id of sample(fc.uuid({ version: 4 }), 5)) {
            for (const [tag, [valid]] of Object.entries(validPayloads(id))) {
              if (tag === "CreateBatch" || tag === "ListBatches") continue
              assert.strictEqual(rpcOutcome(yield* rpc(rpcLine(tag, valid))), "BatchNotFound", `${tag} ${id}`)
            }
          }
          const badItems = sample(
            fc.tuple(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 5 }), fc.anything(), fc.nat(5)).map((
              [good, input, at]
            ) => {
              const list: Array<unknown> = good.map((ms, i) => ({ key: `ok-${i}`, input: { ms } }))
              list.splice(Math.min(at, list.length), 0, { key: "bad", input })
              return list
            }).filter((list) =>
              !list.some((item) => isValidPayload("CreateBatch", { workflow: "x", items: [item] }) === false) &&
              list.some((item) =>
                typeof item === "object" && item !== null && "key" in item && item.key === "bad" && "input" in item &&
                !(typeof item.input === "object" && item.input !== null && "ms" in item.input &&
                  typeof item.input.ms === "number")
              )
            )
          )
          for (const list of badItems) {
            const outcome = rpcOutcome(yield* rpc(rpcLine("CreateBatch", { workflow: "paced", items: list })))
            assert.strictEqual(outcome, "InvalidItems", JSON.stringify(list).slice(0, 200))
          }
          assert.strictEqual(
            rpcOutcome(
              yield* rpc(
                rpcLine("CreateBatch", {
                  workflow: "paced",
                  items: [{ key: "a", input: { ms: 1 } }, { key: "a", input: { ms: 1 } }]
                })
              )
            ),
            "InvalidItems"
          )
          assert.strictEqual(
            rpcOutcome(yield* rpc(rpcLine("CreateBatch", { workflow: "paced", items: [{ key: "", input: {} }] }))),
            "InvalidItems"
          )
          assert.strictEqual(
            rpcOutcome(yield* rpc(rpcLine("CreateBatch", { workflow: "unknown", items: [] }))),
            "WorkflowNotFound"
          )
          for (
            const config of [{ concurrency: 0 }, { failurePolicy: "whatever" }, { retry: { maxAttempts: -1 } }, "fast"]
          ) {
            const outcome = rpcOutcome(
              yield* rpc(rpcLine("CreateBatch", { workflow: "paced", items: items(1, 1), config }))
            )
            assert.strictEqual(outcome, "InvalidBatchConfig", JSON.stringify(config))
          }
          assert.strictEqual(
            rpcOutcome(yield* rpc(rpcLine("ListBatches", { cursor: "not-a-cursor" }))),
            "InvalidRequest"
          )
          for (const tag of ["Pause", "Resume", "RetryFailed"]) {
            assert.strictEqual(rpcOutcome(yield* rpc(rpcLine(tag, { batchId: waiting.id }))), "InvalidTransition", tag)
          }

          // 4. limits: body size (Content-Length over the limit) and requests per body
          const big = yield* rpc(rpcLine("CreateBatch", { workflow: "paced", items: items(2_000, 1) }))
          assert.strictEqual(big.status, 413)
          assert.strictEqual(JSON.parse(big.body)._tag, "LimitExceeded")
          const many = yield* rpc(
            Array.from({ length: 101 }, (_, i) => rpcLine("GetBatch", { batchId: waiting.id }, String(i))).join("")
          )
          assert.strictEqual(many.status, 413)
          const chunked = yield* request(`${base}/rpc`, {
            method: "POST",
            headers: bearer("acme"),
            body: rpcLine("GetBatch", { batchId: waiting.id }),
            chunked: true
          })
          assert.strictEqual(chunked.status, 411)

          // 5. the event stream route: ids, sequence numbers, query parameters
          const events = (id: string, headers: Record<string, string> = {}, query = "") =>
            request(`${base}/batches/${encodeURIComponent(id)}/events${query}`, {
              headers: { ...bearer("acme"), ...headers }
            })
          for (
            const id of sample(fc.string({ minLength: 1, maxLength: 60 }).filter((s) => !/^[0-9a-f-]{36}$/i.test(s)))
          ) {
            expect400(yield* events(id), `id ${JSON.stringify(id)}`)
          }
          for (const id of sample(fc.uuid({ version: 4 }), 5)) assert.strictEqual((yield* events(id)).status, 404)
          const sequences = sample(
            fc.oneof(fc.string({ maxLength: 20 }), fc.integer({ max: -1 }).map(String), fc.double().map(String))
              .filter((s) => s !== "" && !/^[0-9]{1,15}$/.test(s) && !/[\r\n\0]/.test(s) && s.trim() === s)
              .filter((s) => /^[\x20-\x7e]*$/.test(s))
          )
          for (const seq of sequences) {
            expect400(yield* events(waiting.id, { "last-event-id": seq }), `Last-Event-ID ${JSON.stringify(seq)}`)
            expect400(
              yield* events(waiting.id, {}, `?after=${encodeURIComponent(seq)}`),
              `after ${JSON.stringify(seq)}`
            )
          }
          expect400(yield* events(waiting.id, {}, "?after=1&after=2"), "after twice")
          expect400(yield* events(waiting.id, { "last-event-id": "999999" }), "beyond the last event")
          const elsewhere: ReadonlyArray<readonly [string, string]> = [
            ["GET", "/rpc"],
            ["PUT", "/rpc"],
            ["GET", "/nope"],
            ["POST", `/batches/${waiting.id}/events`]
          ]
          for (const [method, path] of elsewhere) {
            assert.strictEqual(
              (yield* request(`${base}${path}`, { method, headers: bearer("acme") })).status,
              404,
              `${method} ${path}`
            )
          }

          // nothing changed
          yield* Effect.sleep("300 millis")
          assert.strictEqual(yield* snapshot, before)
          assert.strictEqual((yield* o.get(acme, waiting.id)).state._tag, "AwaitingReview")
        }))
    }
  )
}
