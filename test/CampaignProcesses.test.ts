import type { CampaignEvent, CampaignId } from "@effect-batch/domain"
import { CampaignOrchestrator } from "@effect-batch/server"
import { Tables } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import {
  type Attempt,
  campaignHookRuns,
  type CampaignHookStarted,
  type ChildMessage,
  createCampaignHookTable,
  durableWork,
  workItems
} from "./support/Durable.js"
import { caller } from "./support/Harness.js"
import { apiAt, freshDatabase, pollUntil, spawnWorker } from "./support/Processes.js"

const workflow = durableWork({ itemMs: 0 }).name
const isAttempt = (m: ChildMessage): m is typeof Attempt.Type => m._tag === "Attempt"
const isHookStarted = (m: ChildMessage): m is typeof CampaignHookStarted.Type => m._tag === "CampaignHookStarted"

const campaigns = CampaignOrchestrator.CampaignOrchestrator

/** The campaign's whole event log. */
const eventLog = (id: CampaignId.CampaignId) =>
  Effect.gen(function*() {
    const c = yield* campaigns
    const view = yield* c.get(caller, id)
    return yield* c.events(caller, id, 0).pipe(
      Stream.take(view.lastSeq),
      Stream.runCollect,
      Effect.map(Chunk.toReadonlyArray)
    )
  }).pipe(Effect.orDie)

const maxRunning = (events: ReadonlyArray<CampaignEvent.CampaignEvent>) => {
  let running = 0
  let max = 0
  for (const e of events) {
    if (e._tag === "CampaignBatchStarted") running++
    if (e._tag === "CampaignBatchSettled") running--
    max = Math.max(max, running)
  }
  return max
}

/** `BatchStarted` events per child and `ItemSucceeded` events per item, over the whole campaign. */
const childLedger = (id: CampaignId.CampaignId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    const starts = yield* sql<{ n: number }>`SELECT (SELECT count(*)::int FROM ${sql(t.events)} e
        WHERE e.batch_id = b.id AND e.tag = 'BatchStarted') AS n
      FROM ${sql(t.batches)} b WHERE b.campaign_id = ${id}::uuid ORDER BY b.campaign_index`
    const successes = yield* sql<{ n: number; distinct_keys: number }>`SELECT count(*)::int AS n,
        count(DISTINCT e.payload->>'itemKey')::int AS distinct_keys
      FROM ${sql(t.events)} e JOIN ${sql(t.batches)} b ON b.id = e.batch_id
      WHERE b.campaign_id = ${id}::uuid AND e.tag = 'ItemSucceeded'`
    return {
      starts: starts.map((r) => Number(r.n)),
      itemSucceeded: Number(successes[0]?.n),
      distinctSucceeded: Number(successes[0]?.distinct_keys)
    }
  }).pipe(Effect.orDie)

/** What every scenario must end with: completed, every batch started and announced once, the hook once. */
const assertCompletedOnce = (id: CampaignId.CampaignId, total: number, batches: number) =>
  Effect.gen(function*() {
    const c = yield* campaigns
    const view = yield* Effect.orDie(c.get(caller, id))
    assert.strictEqual(view.state._tag, "Completed")
    assert.strictEqual(view.batches.done, batches)
    const done = yield* Effect.orDie(c.doneBatches(caller, id))
    assert.deepStrictEqual(
      done.map((d) => d.index),
      Array.from({ length: batches }, (_, i) => i),
      "the done set is exact"
    )
    const events = yield* eventLog(id)
    const settled = events.flatMap((e) => e._tag === "CampaignBatchSettled" ? [e.batchId] : [])
    assert.strictEqual(settled.length, batches, "each batch's settlement announced once")
    assert.strictEqual(new Set(settled).size, batches)
    assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), "gapless campaign sequence")
    const ledger = yield* childLedger(id)
    assert.isTrue(ledger.starts.every((n) => n === 1), "no batch started twice")
    assert.strictEqual(ledger.distinctSucceeded, total)
    assert.strictEqual(ledger.itemSucceeded, total, "no outcome recorded twice")
    const results = Chunk.toReadonlyArray(yield* Stream.runCollect(c.results(caller, id)).pipe(Effect.orDie))
    assert.deepStrictEqual(results.map((r) => r.key), workItems(total).map((i) => i.key))
    assert.isTrue(results.every((r) => r.state === "Succeeded"))
    if (view.state._tag === "Completed") assert.isTrue(view.state.summary.merge.ok)
    yield* pollUntil("the hook ran", Effect.map(campaignHookRuns(id), (runs) => runs.length > 0))
    const runs = yield* campaignHookRuns(id)
    assert.strictEqual(runs.length, 1, "the settled hook ran once")
    assert.deepStrictEqual([runs[0]?.results, runs[0]?.succeeded], [total, total])
    return { events, runs }
  })

const submit = (total: number, batchSize: number, concurrency: number, extra: object = {}) =>
  Effect.gen(function*() {
    yield* createCampaignHookTable
    const c = yield* campaigns
    return yield* c.submitEncoded(
      workflow,
      workItems(total),
      { batchSize, concurrency, batchConfig: { concurrency: 4, leaseDuration: "2 seconds" }, ...extra },
      caller
    )
  }).pipe(Effect.orDie)

const view = (id: CampaignId.CampaignId) => Effect.flatMap(campaigns, (c) => Effect.orDie(c.get(caller, id)))

describe("campaigns across processes (Postgres, real processes)", () => {
  it.scopedLive(
    "two processes settle batches of one campaign at the same time: the done set is exact",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const c = yield* campaigns
          const campaign = yield* submit(800, 4, 8)
          yield* Effect.orDie(c.pause(caller, campaign.id, { note: "until both workers are up" }))
          const env = { ITEM_MS: "1", LOG_ATTEMPTS: "true", CAMPAIGN_HOOK: "record" }
          const workers = [
            yield* spawnWorker({ url, owner: "alpha", env }),
            yield* spawnWorker({ url, owner: "beta", env })
          ]
          for (const w of workers) yield* w.waitFor((m) => m._tag === "Ready")
          yield* Effect.orDie(c.resume(caller, campaign.id))
          yield* pollUntil(
            "the campaign completes",
            Effect.map(view(campaign.id), (v) => v.state._tag === "Completed"),
            "120 seconds"
          )
          const { events } = yield* assertCompletedOnce(campaign.id, 800, 200)
          assert.isAtMost(maxRunning(events), 8, "the campaign's concurrency holds across processes")
          const attempts = workers.map((w) => w.messages().filter(isAttempt).length)
          assert.isTrue(attempts.every((n) => n > 0), `both processes ran items: ${attempts.join(", ")}`)
        }).pipe(Effect.provide(apiAt(url)))
      }),
    180_000
  )

  it.scopedLive(
    "kill -9 mid-campaign, with batches running: a new process resumes from the first incomplete batch",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const campaign = yield* submit(400, 20, 3)
          const env = { ITEM_MS: "20", CAMPAIGN_HOOK: "record" }
          const first = yield* spawnWorker({ url, owner: "first", env })
          yield* pollUntil(
            "a third of the batches are done, items running",
            Effect.map(view(campaign.id), (v) => v.batches.done >= 6 && v.counts.running > 0)
          )
          yield* first.kill("SIGKILL")
          const atKill = yield* view(campaign.id)
          assert.strictEqual(atKill.state._tag, "Running")
          assert.isBelow(atKill.batches.done, 20)
          yield* spawnWorker({ url, owner: "second", env })
          yield* pollUntil("the campaign completes", Effect.map(view(campaign.id), (v) => v.state._tag === "Completed"))
          yield* assertCompletedOnce(campaign.id, 400, 20)
        }).pipe(Effect.provide(apiAt(url)))
      }),
    120_000
  )

  it.scopedLive(
    "kill -9 between the last batch's settlement and the campaign's: the campaign settles once",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const campaign = yield* submit(200, 20, 4)
          const first = yield* spawnWorker({ url, owner: "first", env: { ITEM_MS: "20" } })
          yield* pollUntil("every batch has started", Effect.map(view(campaign.id), (v) => v.batches.pending === 0))
          yield* first.kill("SIGKILL")
          // a process that runs batches but drives no campaign settles the last batches
          const batchesOnly = yield* spawnWorker({
            url,
            owner: "batches-only",
            env: { ITEM_MS: "5", CAMPAIGNS: "false" }
          })
          yield* pollUntil("every batch settled", Effect.map(view(campaign.id), (v) => v.batches.done === 10))
          yield* batchesOnly.kill("SIGKILL")
          const between = yield* view(campaign.id)
          assert.strictEqual(between.state._tag, "Running", "the batches settled, the campaign not yet")
          yield* spawnWorker({ url, owner: "third", env: { CAMPAIGN_HOOK: "record" } })
          yield* pollUntil("the campaign completes", Effect.map(view(campaign.id), (v) => v.state._tag === "Completed"))
          const { runs } = yield* assertCompletedOnce(campaign.id, 200, 10)
          assert.strictEqual(runs[0]?.owner, "third")
        }).pipe(Effect.provide(apiAt(url)))
      }),
    120_000
  )

  it.scopedLive(
    "kill -9 while the settled hook runs: it runs again elsewhere and commits once",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const campaign = yield* submit(60, 10, 3)
          const first = yield* spawnWorker({ url, owner: "first", env: { ITEM_MS: "1", CAMPAIGN_HOOK: "hang" } })
          yield* first.waitFor(isHookStarted)
          yield* first.kill("SIGKILL")
          assert.strictEqual((yield* view(campaign.id)).state._tag, "Completed")
          assert.strictEqual((yield* campaignHookRuns(campaign.id)).length, 0, "the killed hook committed nothing")
          yield* spawnWorker({ url, owner: "second", env: { CAMPAIGN_HOOK: "record" } })
          const { runs } = yield* assertCompletedOnce(campaign.id, 60, 6)
          assert.strictEqual(runs[0]?.owner, "second")
        }).pipe(Effect.provide(apiAt(url)))
      }),
    120_000
  )
})
