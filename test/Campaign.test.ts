import type { CampaignEvent, CampaignId } from "@effect-batch/domain"
import { CampaignOrchestrator } from "@effect-batch/server"
import { Tables, TestDatabase } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { campaignItems, campaignWork, makeRuns, type Runs } from "./support/CampaignWork.js"
import { caller, orchestrator } from "./support/Harness.js"
import { pollUntil } from "./support/Processes.js"

const workflowName = campaignWork(Ref.unsafeMake<ReadonlyArray<string>>([])).name

type Campaigns = CampaignOrchestrator.CampaignOrchestrator["Type"]

const withCampaigns = <A, E, R>(runs: Runs, body: (c: Campaigns) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(CampaignOrchestrator.CampaignOrchestrator, body).pipe(Effect.provide(orchestrator(campaignWork(runs))))

const allEvents = (c: Campaigns, id: CampaignId.CampaignId) =>
  Effect.gen(function*() {
    const view = yield* c.get(caller, id)
    return yield* c.events(caller, id, 0).pipe(
      Stream.take(view.lastSeq),
      Stream.runCollect,
      Effect.map(Chunk.toReadonlyArray)
    )
  })

/** The most child batches running at once, from the campaign's own event sequence. */
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

/** How many `BatchStarted` events each child batch of the campaign recorded. */
const startsPerChild = (id: CampaignId.CampaignId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    return yield* sql<{ n: number }>`SELECT (SELECT count(*)::int FROM ${sql(t.events)} e
        WHERE e.batch_id = b.id AND e.tag = 'BatchStarted') AS n
      FROM ${sql(t.batches)} b WHERE b.campaign_id = ${id}::uuid ORDER BY b.campaign_index`.pipe(
      Effect.map((rows) => rows.map((r) => Number(r.n)))
    )
  }).pipe(Effect.orDie)

/** Runs on the real clock (inside `it.effect`, whose layer gives the database). */
const onWallClock = Effect.withClock(Clock.make())

const stateIs = (c: Campaigns, id: CampaignId.CampaignId, tag: string) =>
  Effect.map(c.get(caller, id), (v) => v.state._tag === tag)

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "300 seconds" })(`campaigns (${name})`, (it) => {
    it.effect("3,518 items in batches of 10, 3 at a time: 352 batches, every item one outcome, in (batch, key) order", () =>
      Effect.gen(function*() {
        const runs = yield* makeRuns
        yield* withCampaigns(runs, (c) =>
          Effect.gen(function*() {
            const input = campaignItems(3_518)
            const submitted = yield* c.submitEncoded(
              workflowName,
              input,
              { batchSize: 10, concurrency: 3, batchConfig: { concurrency: 4 } },
              caller
            )
            assert.strictEqual(submitted.batches.total, 352)
            assert.strictEqual(submitted.total, 3_518)
            yield* pollUntil("the campaign completes", stateIs(c, submitted.id, "Completed"), "240 seconds")
            const done = yield* c.get(caller, submitted.id)
            assert.strictEqual(done.batches.done, 352)
            assert.strictEqual(done.counts.succeeded, 3_518)
            if (done.state._tag === "Completed") {
              assert.deepStrictEqual(done.state.summary.merge, {
                ...done.state.summary.merge,
                expected: 3_518,
                outcomes: 3_518,
                missing: 0,
                duplicated: 0,
                ok: true
              })
            }
            const doneSet = yield* c.doneBatches(caller, submitted.id)
            assert.deepStrictEqual(doneSet.map((d) => d.index), Array.from({ length: 352 }, (_, i) => i))
            assert.strictEqual(new Set(doneSet.map((d) => d.batchId)).size, 352)

            const results = Chunk.toReadonlyArray(yield* Stream.runCollect(c.results(caller, submitted.id)))
            assert.strictEqual(results.length, 3_518)
            assert.deepStrictEqual(results.map((r) => r.key), input.map((i) => i.key), "results in (batch, key) order")
            assert.isTrue(results.every((r, n) => r.state === "Succeeded" && r.batchIndex === Math.floor(n / 10)))

            const events = yield* allEvents(c, submitted.id)
            assert.strictEqual(maxRunning(events), 3, "never more than 3 batches at once, and 3 were reached")
            assert.strictEqual(events.filter((e) => e._tag === "CampaignBatchSettled").length, 352)
            assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), "gapless sequence")
            assert.strictEqual(events[events.length - 1]?._tag, "CampaignCompleted")
            assert.isTrue((yield* startsPerChild(submitted.id)).every((n) => n === 1), "no batch started twice")
          }))
      }).pipe(onWallClock))
  })
}
