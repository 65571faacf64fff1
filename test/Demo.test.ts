import { Ids } from "@effect-batch/domain"
import { CampaignOrchestrator, EffectBatch, Worker, WorkflowRegistry } from "@effect-batch/server"
import * as Demo from "@effect-batch/server/Demo"
import { Database } from "@effect-batch/tables"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const bin = Path.resolve(import.meta.dirname, "../packages/server/src/bin.ts")

const demo = (dataDir: string) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    const env: Record<string, string | undefined> = { ...process.env, EFFECT_BATCH_DATA_DIR: dataDir }
    delete env["DATABASE_URL"]
    delete env["EFFECT_BATCH_TOKENS"]
    const child = ChildProcess.execFile(
      process.execPath,
      [
        "--conditions=@effect-batch/source",
        "--import",
        "tsx",
        bin,
        "demo",
        "--until-review",
        "--items",
        "50",
        "--port",
        "0"
      ],
      { env, timeout: 120_000 },
      (error, stdout, stderr) =>
        resume(
          Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
        )
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const caller = { tenant: Schema.decodeSync(Ids.TenantId)(Demo.tenant) }

/** The demo tenant's campaigns, read from the demo's database once the demo has exited (no worker runs). */
const campaignsIn = (dataDir: string) =>
  Effect.gen(function*() {
    const campaigns = yield* CampaignOrchestrator.CampaignOrchestrator
    const page = yield* campaigns.list(caller, { limit: 10 })
    return yield* Effect.forEach(page.items, (campaign) =>
      Effect.all({
        campaign: Effect.succeed(campaign),
        batches: Effect.map(campaigns.batches(caller, campaign.id, { after: -1, limit: 100 }), (p) => p.items),
        merge: campaigns.mergeCheck(caller, campaign.id),
        results: Stream.runCollect(campaigns.results(caller, campaign.id))
      }))
  }).pipe(
    Effect.provide(
      EffectBatch.layer.pipe(
        Layer.provide(WorkflowRegistry.layer(Demo.workflow, Demo.materialWorkflow)),
        Layer.provide(Worker.layerConfig({ enabled: false })),
        Layer.provide(Database.layerEmbedded({ dataDir }))
      )
    )
  )

describe("the demo", () => {
  it.live(
    "runs non-interactively until the batch and the campaign wait for review, and a second run resumes both",
    () =>
      Effect.gen(function*() {
        const dataDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-batch-demo-"))
        const first = yield* demo(dataDir)
        assert.strictEqual(first.code, 0, first.stderr)
        assert.match(first.stdout, /Dashboard: http:\/\/127\.0\.0\.1:\d+\/\?token=demo-token/)
        assert.match(first.stdout, /100% 50\/50 ok 49 failed 0 quarantined 1 running 0 .* AwaitingReview/)
        const id = /Batch ([0-9a-f-]{36}) is AwaitingReview: 49 succeeded, 0 failed, 1 quarantined\./.exec(first.stdout)
          ?.[1]
        assert.isDefined(id, first.stdout)
        const campaignId = /Campaign ([0-9a-f-]{36}) is AwaitingReview: 12\/12 batches, 120 succeeded, 0 failed\./.exec(
          first.stdout
        )?.[1]
        assert.isDefined(campaignId, first.stdout)
        assert.include(
          first.stdout,
          `Follow it (in another terminal): bun run cli campaign watch ${campaignId} --token demo-token --url http://127.0.0.1:`
        )
        const found = yield* campaignsIn(dataDir)
        assert.deepStrictEqual(found.map((c) => c.campaign.id), [campaignId])
        const stored = found[0]
        assert.isDefined(stored)
        assert.strictEqual(stored.campaign.state._tag, "AwaitingReview")
        assert.strictEqual(stored.campaign.total, 120)
        assert.deepStrictEqual(
          stored.batches.map((b) => [b.index, b.batch.state._tag, b.batch.counts.succeeded]),
          Array.from({ length: 12 }, (_, i) => [i, "Completed", 10])
        )
        assert.isTrue(stored.merge.ok)
        assert.strictEqual(stored.merge.outcomes, 120)
        const keys = Array.from(stored.results, (r) => r.key)
        assert.deepStrictEqual(keys, Demo.materials(120).map((m) => m.key))
        assert.isTrue(Array.from(stored.results).every((r) => r.state === "Succeeded"))

        const second = yield* demo(dataDir)
        assert.strictEqual(second.code, 0, second.stderr)
        assert.include(second.stdout, `Batch ${id} is AwaitingReview`)
        assert.include(second.stdout, `Campaign ${campaignId} is AwaitingReview: 12/12 batches`)
        const again = yield* campaignsIn(dataDir)
        assert.deepStrictEqual(again.map((c) => c.campaign.id), [campaignId])
        Fs.rmSync(dataDir, { recursive: true, force: true })
      }),
    240_000
  )
})
