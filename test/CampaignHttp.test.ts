import { CampaignEvent } from "@effect-batch/domain"
import { Http } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { bearer, items, paced, request, rpcExit, rpcLine, rpcOutcome } from "./support/HttpServer.js"
import { server } from "./support/HttpServer.js"
import { connect, eventually, type SseEvent } from "./support/SseClient.js"

const decodeEvent = Schema.decodeUnknownSync(Schema.parseJson(CampaignEvent.CampaignEvent))

const decodeCreated = Schema.decodeUnknownSync(Schema.Struct({ id: Schema.String, lastSeq: Schema.Number }))
const decodeState = Schema.decodeUnknownSync(Schema.Struct({ state: Schema.Struct({ _tag: Schema.String }) }))

const rpc = (base: string, tag: string, payload: unknown, tenant: "acme" | "globex" = "acme") =>
  request(`${base}/rpc`, {
    method: "POST",
    headers: { ...bearer(tenant), "content-type": "application/ndjson" },
    body: rpcLine(tag, payload)
  })

/** The success value of a non-streaming RPC answer. */
const value = (answer: Parameters<typeof rpcExit>[0]) => {
  const exit = rpcExit(answer)
  assert.strictEqual(exit?._tag, "Success", answer.body.slice(0, 500))
  return exit.value
}

/** The chunks of a streaming RPC answer, flattened. */
const chunks = (answer: { readonly body: string }) =>
  answer.body.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)).filter((m) => m._tag === "Chunk")
    .flatMap((m) => m.values)

const create = (base: string, n: number, ms: number, config: Record<string, unknown>) =>
  Effect.map(
    rpc(base, "CreateCampaign", { workflow: paced.name, items: items(n, ms), config }),
    (answer) => decodeCreated(value(answer))
  )

const stateOf = (base: string, id: string) =>
  Effect.map(rpc(base, "GetCampaign", { campaignId: id }), (a) => decodeState(value(a)).state._tag)

/** Exactly events 1..last, in order, each frame's id and event name its sequence and tag. */
const assertComplete = (received: ReadonlyArray<SseEvent>, last: number) => {
  const events = received.map((e) => {
    const event = decodeEvent(e.data)
    assert.strictEqual(e.event, event._tag)
    assert.strictEqual(e.id, String(event.seq))
    return event
  })
  assert.deepStrictEqual(events.map((e) => e.seq), Array.from({ length: last }, (_, i) => i + 1))
  assert.isTrue(CampaignEvent.isTerminal(events[events.length - 1] ?? { _tag: "none" }))
  return events
}

for (const [name, db] of TestDatabase.databases) {
  layer(server(db, { heartbeat: "500 millis" }), { excludeTestServices: true, timeout: "90 seconds" })(
    `campaigns over HTTP (${name})`,
    (it) => {
      it.scoped("the RPC group: create, get, list, batches, progress, results; another tenant gets not found", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const campaign = yield* create(base, 23, 5, { batchSize: 5, concurrency: 2, review: true })
          for (let i = 0; i < 400 && (yield* stateOf(base, campaign.id)) !== "AwaitingReview"; i++) {
            yield* Effect.sleep("50 millis")
          }
          assert.strictEqual(yield* stateOf(base, campaign.id), "AwaitingReview")
          const listed = value(yield* rpc(base, "ListCampaigns", {}))
          assert.isTrue(listed.items.some((c: { id: string }) => c.id === campaign.id))
          const page = value(yield* rpc(base, "ListCampaignBatches", { campaignId: campaign.id, limit: 3 }))
          assert.deepStrictEqual(page.items.map((b: { index: number }) => b.index), [0, 1, 2])
          assert.strictEqual(page.nextCursor, "2")
          const progress = value(yield* rpc(base, "GetCampaignProgress", { campaignId: campaign.id }))
          assert.deepStrictEqual([progress.batches.done, progress.batches.total, progress.counts.succeeded], [5, 5, 23])
          const results = chunks(yield* rpc(base, "GetCampaignResults", { campaignId: campaign.id }))
          assert.deepStrictEqual(results.map((r: { key: string }) => r.key), items(23, 5).map((i) => i.key))
          const approveEarly = yield* rpc(base, "ResumeCampaign", { campaignId: campaign.id })
          assert.strictEqual(rpcOutcome(approveEarly), "InvalidTransition")

          for (
            const [tag, payload] of [
              ["GetCampaign", { campaignId: campaign.id }],
              ["GetCampaignProgress", { campaignId: campaign.id }],
              ["ListCampaignBatches", { campaignId: campaign.id }],
              ["GetCampaignResults", { campaignId: campaign.id }],
              ["StreamCampaignEvents", { campaignId: campaign.id }],
              ["PauseCampaign", { campaignId: campaign.id }],
              ["ResumeCampaign", { campaignId: campaign.id }],
              ["CancelCampaign", { campaignId: campaign.id }],
              ["ApproveCampaign", { campaignId: campaign.id }],
              ["RejectCampaign", { campaignId: campaign.id }],
              ["RetryFailedCampaign", { campaignId: campaign.id, dryRun: true }],
              ["ReleaseCampaignQuarantined", { campaignId: campaign.id }],
              ["UpdateCampaignConfig", { campaignId: campaign.id, patch: { concurrency: 2 } }]
            ] as const
          ) {
            assert.strictEqual(rpcOutcome(yield* rpc(base, tag, payload, "globex")), "CampaignNotFound", tag)
          }
          const sse = yield* request(`${base}/campaigns/${campaign.id}/events`, { headers: bearer("globex") })
          assert.strictEqual(sse.status, 404)
          assert.strictEqual(JSON.parse(sse.body)._tag, "CampaignNotFound")
          const bad = yield* rpc(base, "GetCampaign", { campaignId: "not-a-uuid" })
          assert.strictEqual(bad.status, 400)

          const approved = value(yield* rpc(base, "ApproveCampaign", { campaignId: campaign.id, note: "ok" }))
          assert.strictEqual(approved.state._tag, "Completed")
        }))

      it.scoped("SSE: a client that drops mid-campaign resumes with Last-Event-ID; nothing missed or repeated", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const campaign = yield* create(base, 60, 150, {
            batchSize: 5,
            concurrency: 1,
            batchConfig: { concurrency: 5 }
          })
          const url = `${base}/campaigns/${campaign.id}/events`
          const first = yield* connect(url, bearer("acme"))
          assert.strictEqual(first.status, 200)
          assert.match(String(first.headers["content-type"]), /^text\/event-stream/)
          yield* eventually(
            () => first.events.some((e) => e.event === "CampaignBatchSettled"),
            30_000,
            "a batch settled"
          )
          first.close()
          const lastId = first.events[first.events.length - 1]?.id ?? "0"
          const second = yield* connect(url, { ...bearer("acme"), "last-event-id": lastId })
          assert.strictEqual(second.status, 200)
          assert.strictEqual(yield* Deferred.await(second.ended), "end", "the stream ends after the terminal event")
          assert.isAbove(second.comments(), 1, "heartbeats while the campaign ran")
          const events = assertComplete([...first.events, ...second.events], Number(second.events.at(-1)?.id))
          assert.strictEqual(events.at(-1)?._tag, "CampaignCompleted")
          assert.strictEqual(events.filter((e) => e._tag === "CampaignBatchSettled").length, 12)
          assert.isTrue(events.some((e) => e._tag === "CampaignProgress"))

          const whole = yield* connect(`${url}?after=0`, bearer("acme"))
          assert.strictEqual(yield* Deferred.await(whole.ended), "end")
          assertComplete(whole.events, events.length)
          const done = yield* request(url, { headers: { ...bearer("acme"), "last-event-id": String(events.length) } })
          assert.strictEqual(done.status, 204)
          const beyond = yield* request(`${url}?after=${events.length + 5}`, { headers: bearer("acme") })
          assert.strictEqual(beyond.status, 400)
        }))
    }
  )
}
