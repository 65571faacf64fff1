import { CampaignConfig, Ids } from "@effect-batch/domain"
import type { CampaignId } from "@effect-batch/domain"
import { BatchOrchestrator, CampaignOrchestrator, CampaignRunner } from "@effect-batch/server"
import { Tables, TestDatabase } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { campaignItems, campaignWork, makeRuns, type Runs } from "./support/CampaignWork.js"
import { advanceUntil, caller, orchestrator } from "./support/Harness.js"

const workflowName = campaignWork(Ref.unsafeMake<ReadonlyArray<string>>([])).name
type Campaigns = CampaignOrchestrator.CampaignOrchestrator["Type"]
type Batches = BatchOrchestrator.BatchOrchestrator["Type"]

const withCampaigns = <A, E, R>(
  runs: Runs,
  body: (c: Campaigns, b: Batches) => Effect.Effect<A, E, R>,
  extra: Layer.Layer<never> = Layer.empty
) =>
  Effect.flatMap(
    Effect.all([CampaignOrchestrator.CampaignOrchestrator, BatchOrchestrator.BatchOrchestrator]),
    ([c, b]) => body(c, b)
  ).pipe(Effect.provide(orchestrator(campaignWork(runs)).pipe(Layer.provide(extra))))

const stateIs = (c: Campaigns, id: CampaignId.CampaignId, ...tags: ReadonlyArray<string>) =>
  Effect.map(c.get(caller, id), (v) => tags.includes(v.state._tag))

const childStates = (c: Campaigns, id: CampaignId.CampaignId) =>
  Effect.map(c.batches(caller, id, { after: -1, limit: 1000 }), (page) => page.items.map((b) => b.batch.state._tag))

const eventTags = (c: Campaigns, id: CampaignId.CampaignId) =>
  Effect.gen(function*() {
    const view = yield* c.get(caller, id)
    return yield* c.events(caller, id, 0).pipe(
      Stream.take(view.lastSeq),
      Stream.map((e) => e._tag),
      Stream.runCollect,
      Effect.map(Chunk.toReadonlyArray)
    )
  })

const other = { tenant: Schema.decodeSync(Ids.TenantId)("intruder"), actor: "mallory" }

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "180 seconds" })(`campaign commands (${name})`, (it) => {
    for (const onExceeded of ["finish", "cancel"] as const) {
      it.effect(`failed batches beyond the tolerance fail the campaign; running batches ${onExceeded}`, () =>
        Effect.gen(function*() {
          const runs = yield* makeRuns
          yield* withCampaigns(runs, (c) =>
            Effect.gen(function*() {
              // batch 0 is slow (5 s per item), batch 1 fails at once (abort-all), batches 2.. wait
              const items = campaignItems(30, (n) => n < 5 ? { ms: 5_000 } : n === 6 ? { fail: "always" } : { ms: 100 })
              const campaign = yield* c.submitEncoded(workflowName, items, {
                batchSize: 5,
                concurrency: 2,
                batchConfig: { failurePolicy: "abort-all", concurrency: 5 },
                tolerance: { maxFailedBatches: 0, onExceeded }
              }, caller)
              yield* advanceUntil(stateIs(c, campaign.id, "Failed"))
              const failed = yield* c.get(caller, campaign.id)
              assert.strictEqual(failed.state._tag, "Failed")
              if (failed.state._tag === "Failed") {
                assert.deepStrictEqual(failed.state.reason._tag, "TooManyFailedBatches")
                assert.strictEqual(failed.state.reason.failed, 1)
              }
              yield* advanceUntil(Effect.map(childStates(c, campaign.id), (s) => s[0] !== "Running"))
              const states = yield* childStates(c, campaign.id)
              assert.strictEqual(states[0], onExceeded === "finish" ? "Completed" : "Cancelled")
              assert.strictEqual(states[1], "Failed")
              assert.deepStrictEqual(
                states.slice(2),
                ["Pending", "Pending", "Pending", "Pending"],
                "nothing new started"
              )
              const tags = yield* eventTags(c, campaign.id)
              assert.include(tags, "CampaignFailed")
            }))
        }))
    }

    it.effect("retry-failed: the dry run names what the redrive re-runs; items that succeeded never run again", () =>
      Effect.gen(function*() {
        const runs = yield* makeRuns
        yield* withCampaigns(runs, (c) =>
          Effect.gen(function*() {
            const items = campaignItems(20, (n) => n % 7 === 3 ? { fail: "once" } : {})
            const campaign = yield* c.submitEncoded(workflowName, items, { batchSize: 4, concurrency: 2 }, caller)
            yield* advanceUntil(stateIs(c, campaign.id, "Completed"))
            const first = yield* c.get(caller, campaign.id)
            assert.strictEqual(first.counts.failed, 3)
            const plan = yield* c.retryFailed(caller, campaign.id, { dryRun: true })
            assert.strictEqual(plan.dryRun, true)
            assert.strictEqual(plan.items, 3)
            assert.deepStrictEqual(plan.batches.map((b): [number, ReadonlyArray<string>] => [b.index, b.keys]), [
              [0, ["m-00003"]],
              [2, ["m-00010"]],
              [4, ["m-00017"]]
            ])
            assert.strictEqual((yield* c.get(caller, campaign.id)).version, first.version, "a dry run changes nothing")
            const before = yield* Ref.get(runs)
            const done = yield* c.retryFailed(caller, campaign.id, { dryRun: false })
            assert.deepStrictEqual(done.batches, plan.batches)
            yield* advanceUntil(stateIs(c, campaign.id, "Completed"))
            const rerun = (yield* Ref.get(runs)).slice(before.length)
            assert.deepStrictEqual([...rerun].sort(), plan.batches.flatMap((b) => b.keys), "only the failed items ran")
            const second = yield* c.get(caller, campaign.id)
            assert.strictEqual(second.counts.succeeded, 20)
            if (second.state._tag === "Completed") {
              assert.strictEqual(second.state.round, 2)
              assert.isTrue(second.state.summary.merge.ok)
            }
            const tags = yield* eventTags(c, campaign.id)
            assert.include(tags, "CampaignRedriven")
          }))
      }))

    it.effect("review: a settled campaign waits for approval (audited with its note), then completes", () =>
      Effect.gen(function*() {
        const runs = yield* makeRuns
        yield* withCampaigns(runs, (c) =>
          Effect.gen(function*() {
            const campaign = yield* c.submitEncoded(workflowName, campaignItems(12), {
              batchSize: 5,
              concurrency: 3,
              review: true
            }, caller)
            yield* advanceUntil(stateIs(c, campaign.id, "AwaitingReview"))
            const waiting = yield* c.get(caller, campaign.id)
            assert.strictEqual(waiting.batches.done, 3)
            const early = yield* Effect.either(c.resume(caller, campaign.id))
            assert.isTrue(Either.isLeft(early))
            const approved = yield* c.approve(caller, campaign.id, "checked by hand")
            assert.strictEqual(approved.state._tag, "Completed")
            if (approved.state._tag === "Completed") assert.strictEqual(approved.state.approvedBy, "tester")
            const events = yield* c.events(caller, campaign.id, 0).pipe(
              Stream.runCollect,
              Effect.map(Chunk.toReadonlyArray)
            )
            const approval = events.find((e) => e._tag === "CampaignApproved")
            assert.deepStrictEqual(
              approval?._tag === "CampaignApproved" ? [approval.actor, approval.note] : [],
              ["tester", "checked by hand"]
            )
            assert.deepStrictEqual(events.slice(-3).map((e) => e._tag), [
              "CampaignReviewRequested",
              "CampaignApproved",
              "CampaignCompleted"
            ])

            const second = yield* c.submitEncoded(
              workflowName,
              campaignItems(3),
              { batchSize: 5, review: true },
              caller
            )
            yield* advanceUntil(stateIs(c, second.id, "AwaitingReview"))
            const rejected = yield* c.reject(caller, second.id, "numbers look off")
            assert.strictEqual(rejected.state._tag, "Rejected")
          }))
      }))

    it.effect("cancel cascades to every child; invalid commands are rejected and change nothing", () =>
      Effect.gen(function*() {
        const runs = yield* makeRuns
        yield* withCampaigns(runs, (c) =>
          Effect.gen(function*() {
            const campaign = yield* c.submitEncoded(
              workflowName,
              campaignItems(40, () => ({ ms: 2_000 })),
              { batchSize: 5, concurrency: 2 },
              caller
            )
            yield* advanceUntil(Effect.map(c.get(caller, campaign.id), (v) => v.batches.active === 2))
            const running = yield* c.get(caller, campaign.id)
            for (const attempt of [c.approve(caller, campaign.id), c.resume(caller, campaign.id)]) {
              const result = yield* Effect.either(attempt)
              assert.isTrue(Either.isLeft(result))
              if (Either.isLeft(result)) {
                assert.strictEqual(result.left._tag, "InvalidTransition")
                if (result.left._tag === "InvalidTransition") {
                  assert.strictEqual(result.left.state, "Running")
                  assert.strictEqual(result.left.subject, "campaign")
                }
              }
            }
            const dry = yield* Effect.either(c.retryFailed(caller, campaign.id, { dryRun: true }))
            assert.isTrue(Either.isLeft(dry) && dry.left._tag === "InvalidTransition")
            const unchanged = yield* c.get(caller, campaign.id)
            assert.strictEqual(unchanged.version, running.version)
            assert.strictEqual(unchanged.state._tag, "Running")

            const cancelled = yield* c.cancel(caller, campaign.id, "wrong input file")
            assert.strictEqual(cancelled.state._tag, "Cancelled")
            const states = yield* childStates(c, campaign.id)
            assert.deepStrictEqual(states, Array.from({ length: 8 }, () => "Cancelled"))
            const after = yield* c.get(caller, campaign.id)
            assert.strictEqual(after.counts.running + after.counts.queued, 0)
            const again = yield* Effect.either(c.cancel(caller, campaign.id))
            assert.isTrue(Either.isLeft(again) && again.left._tag === "InvalidTransition")
          }))
      }))

    it.effect("pause starts no new batch (cascade pauses the running ones); resume goes on", () =>
      Effect.gen(function*() {
        const runs = yield* makeRuns
        yield* withCampaigns(runs, (c) =>
          Effect.gen(function*() {
            const campaign = yield* c.submitEncoded(
              workflowName,
              campaignItems(20, () => ({ ms: 1_000 })),
              { batchSize: 5, concurrency: 1 },
              caller
            )
            yield* advanceUntil(Effect.map(c.get(caller, campaign.id), (v) => v.batches.active === 1))
            yield* c.pause(caller, campaign.id, { note: "lunch", cascade: true })
            assert.deepStrictEqual(yield* childStates(c, campaign.id), ["Paused", "Pending", "Pending", "Pending"])
            yield* advanceUntil(Effect.succeed(false), { maxSteps: 50 }).pipe(Effect.catchAllDefect(() => Effect.void))
            assert.deepStrictEqual(yield* childStates(c, campaign.id), ["Paused", "Pending", "Pending", "Pending"])
            const updated = yield* c.updateConfig(
              caller,
              campaign.id,
              CampaignConfig.CampaignPatch.make({ concurrency: 4 })
            )
            assert.strictEqual(updated.config.concurrency, 4)
            yield* c.resume(caller, campaign.id)
            yield* advanceUntil(stateIs(c, campaign.id, "Completed"))
            assert.strictEqual((yield* c.get(caller, campaign.id)).counts.succeeded, 20)
          }))
      }))

    it.effect("another tenant's campaign answers not found everywhere; an invalid item rejects the whole campaign", () =>
      Effect.gen(function*() {
        const runs = yield* makeRuns
        yield* withCampaigns(runs, (c) =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const t = yield* Tables.Tables
            const count = (table: string) =>
              Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(table)}`, (rows) => Number(rows[0]?.n))
            const campaign = yield* c.submitEncoded(workflowName, campaignItems(6), { batchSize: 3 }, caller)
            const [campaignsBefore, batchesBefore] = [yield* count(t.campaigns), yield* count(t.batches)]
            const attempts: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
              c.get(other, campaign.id),
              c.progress(other, campaign.id),
              c.batches(other, campaign.id, { after: -1, limit: 10 }),
              c.doneBatches(other, campaign.id),
              c.mergeCheck(other, campaign.id),
              Stream.runCollect(c.results(other, campaign.id)),
              Stream.runCollect(c.events(other, campaign.id, 0)),
              c.pause(other, campaign.id),
              c.resume(other, campaign.id),
              c.cancel(other, campaign.id),
              c.approve(other, campaign.id),
              c.reject(other, campaign.id),
              c.retryFailed(other, campaign.id, { dryRun: true }),
              c.releaseQuarantined(other, campaign.id),
              c.updateConfig(other, campaign.id, CampaignConfig.CampaignPatch.make({ concurrency: 2 }))
            ]
            for (const attempt of attempts) {
              const result = yield* Effect.either(attempt)
              assert.isTrue(Either.isLeft(result) && result.left._tag === "CampaignNotFound")
            }
            const listed = yield* c.list(other, { limit: 10 })
            assert.strictEqual(listed.items.length, 0)

            const bad = [...campaignItems(5), { key: "bad-1", input: { n: "x" } }, { key: "", input: { n: 1 } }]
            const rejected = yield* Effect.either(c.submitEncoded(workflowName, bad, { batchSize: 2 }, caller))
            assert.isTrue(Either.isLeft(rejected))
            if (Either.isLeft(rejected) && rejected.left._tag === "InvalidItems") {
              assert.deepStrictEqual(rejected.left.items.map((i) => i.index), [5, 6])
            } else assert.fail("expected InvalidItems")
            const duplicate = [...campaignItems(3), { key: "m-00001", input: { n: 9 } }]
            const dup = yield* Effect.either(c.submitEncoded(workflowName, duplicate, { batchSize: 2 }, caller))
            assert.isTrue(Either.isLeft(dup) && dup.left._tag === "InvalidItems")
            const badConfig = yield* Effect.either(
              c.submitEncoded(workflowName, campaignItems(2), { batchSize: 0 }, caller)
            )
            assert.isTrue(Either.isLeft(badConfig) && badConfig.left._tag === "InvalidCampaignConfig")
            assert.strictEqual(
              yield* count(t.campaigns),
              campaignsBefore,
              "nothing of the rejected campaigns was stored"
            )
            assert.strictEqual(yield* count(t.batches), batchesBefore)
          }))
      }))

    it.effect("the settled hook runs once, after every batch settled, with the merged results", () =>
      Effect.gen(function*() {
        const runs = yield* makeRuns
        const seen = yield* Ref.make<ReadonlyArray<{ id: string; state: string; keys: ReadonlyArray<string> }>>([])
        const hook = Layer.succeed(
          CampaignRunner.CampaignSettledHook,
          (campaign, results) =>
            Effect.flatMap(Stream.runCollect(results), (all) =>
              Ref.update(seen, (s) => [...s, {
                id: campaign.id,
                state: campaign.state._tag,
                keys: Chunk.toReadonlyArray(all).map((r) => r.key)
              }]))
        )
        yield* withCampaigns(runs, (c) =>
          Effect.gen(function*() {
            const items = campaignItems(9, (n) => ({ ms: (9 - n) * 100 }))
            const campaign = yield* c.submitEncoded(workflowName, items, { batchSize: 2, concurrency: 5 }, caller)
            const mine = Effect.map(Ref.get(seen), (s) => s.filter((run) => run.id === campaign.id))
            yield* advanceUntil(Effect.map(mine, (s) => s.length > 0))
            yield* advanceUntil(Effect.succeed(false), { maxSteps: 30 }).pipe(Effect.catchAllDefect(() => Effect.void))
            assert.deepStrictEqual(yield* mine, [{
              id: campaign.id,
              state: "Completed",
              keys: items.map((i) => i.key)
            }])
            assert.strictEqual((yield* c.get(caller, campaign.id)).state._tag, "Completed")
          }), hook)
      }))
  })
}
