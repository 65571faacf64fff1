/**
 * effect-batch's enqueue, the counterpart of graphile-worker's `addJobs`: one batch of no-op items
 * through `BatchOrchestrator.submitEncoded` with the worker disabled, so nothing runs while it inserts.
 */
import { BatchOrchestrator } from "@effect-batch/server"
import { Database } from "@effect-batch/tables"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { performance } from "node:perf_hooks"
import { freshPostgres, processCpuMs, report, serverCpuMs, tenant } from "./Harness.js"
import { items, noop, orchestrator } from "./Workloads.js"

/** Submits `items` no-op items on a fresh Postgres database and reports the time of `submitEncoded`. */
export const enqueue = (options: { readonly items: number; readonly concurrency: number }) =>
  Effect.gen(function*() {
    const { url } = yield* freshPostgres
    const context = yield* Layer.build(orchestrator(Database.layerPostgres(url), { enabled: false }))
    const input = items(options.items)
    const server0 = yield* serverCpuMs(url)
    const cpu0 = processCpuMs()
    const start = performance.now()
    yield* Effect.provide(
      Effect.flatMap(
        BatchOrchestrator.BatchOrchestrator,
        (o) => o.submitEncoded(noop.name, input, { concurrency: options.concurrency }, { tenant })
      ),
      context
    )
    const ms = performance.now() - start
    const cpuMs = processCpuMs() - cpu0
    const serverMs = (yield* serverCpuMs(url)) - server0
    yield* report({
      bench: "enqueue",
      db: "postgres",
      variant: "effect-batch",
      items: options.items,
      ms,
      extra: {
        system: "effect-batch",
        itemsPerSecond: Math.round(options.items / ms * 1000),
        enqueueMs: Math.round(ms),
        nodeCpuUsPerItem: Math.round(cpuMs * 1000 / options.items),
        serverCpuUsPerItem: Math.round(serverMs * 1000 / options.items)
      }
    })
  }).pipe(Effect.scoped)
