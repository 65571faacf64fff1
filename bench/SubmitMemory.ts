/**
 * Memory while submitting: the peak heap and RSS above the baseline, and the heap retained after a
 * full collection, while 10,000 / 100,000 items,
 * generated as a stream, are submitted as one batch and as a campaign of batches of 10, on Postgres
 * (`DATABASE_URL` or the local server). No worker runs: only the submission is measured.
 *
 *   node --expose-gc --conditions=@effect-batch/source --import tsx bench/SubmitMemory.ts
 */
import { BatchOrchestrator, CampaignOrchestrator } from "@effect-batch/server"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { performance } from "node:perf_hooks"
import { freshDatabase, itemKey, memorySampler, tenant } from "./src/Harness.js"
import { noop, orchestrator } from "./src/Workloads.js"

const stream = (count: number) =>
  Stream.range(0, count - 1).pipe(Stream.map((i) => ({ key: itemKey(i), input: { n: i, text: "x".repeat(64) } })))

const measure = (count: number, asCampaign: boolean) =>
  Effect.gen(function*() {
    const db = yield* freshDatabase("postgres")
    return yield* Effect.gen(function*() {
      const sampler = memorySampler()
      const baseline = process.memoryUsage().heapUsed
      const t0 = performance.now()
      if (asCampaign) {
        const c = yield* CampaignOrchestrator.CampaignOrchestrator
        yield* c.submitEncoded(noop.name, stream(count), { batchSize: 10, concurrency: 1 }, { tenant })
      } else {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        yield* o.submitEncoded(noop.name, stream(count), { concurrency: 1 }, { tenant })
      }
      const ms = performance.now() - t0
      const peaks = sampler.stop()
      const global = globalThis
      if ("gc" in global && typeof global.gc === "function") global.gc()
      const retainedMiB = Math.round((process.memoryUsage().heapUsed - baseline) / 1024 / 1024 * 10) / 10
      return { count, shape: asCampaign ? "campaign of batches of 10" : "one batch", ms, retainedMiB, ...peaks }
    }).pipe(Effect.provide(orchestrator(db.layer, { enabled: false })))
  }).pipe(Effect.scoped)

const main = Effect.gen(function*() {
  console.log(
    "| items | shape | submit ms | heap peak over baseline MiB | heap retained after GC MiB | RSS peak over baseline MiB |"
  )
  console.log("|---:|---|---:|---:|---:|---:|")
  for (const count of [10_000, 100_000]) {
    for (const asCampaign of [false, true]) {
      const r = yield* measure(count, asCampaign)
      console.log(
        `| ${r.count} | ${r.shape} | ${Math.round(r.ms)} | ${r.heapPeakMiB} | ${r.retainedMiB} | ${r.rssPeakMiB} |`
      )
    }
  }
})

Effect.runPromise(main).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
