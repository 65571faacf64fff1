/**
 * graphile-worker 0.18 as a benchmark peer: the workloads of `Workloads.ts` and `MultiProcess.ts`
 * (W1, W2, W3) and the bulk enqueue, each on a fresh database migrated before anything is timed.
 * The jobs are added first (`WorkerUtils.addJobs`, while no worker runs); the run phase starts when
 * the worker is started and ends when graphile's jobs table is empty (completed jobs are deleted,
 * so every completion is committed). Every job records its key in its process, and the benchmark
 * checks that each of the items ran exactly once.
 */
import * as Effect from "effect/Effect"
import { performance } from "node:perf_hooks"
import {
  addJobs,
  awaitEmpty,
  type Graphile,
  jobSpecs,
  loadGraphile,
  migrate,
  remainingJobs,
  running,
  systemName,
  Tracker,
  type Variant,
  type Workload
} from "./graphile/Setup.js"
import { spawnGraphileWorker, type WorkerHandle } from "./graphile/WorkerProcess.js"
import { freshPostgres, itemKey, processCpuMs, report, serverCpuMs } from "./Harness.js"

export { graphileWorkerProcess } from "./graphile/WorkerProcess.js"

export interface GraphileOptions {
  readonly workload: Workload
  readonly variant: Variant
  readonly items: number
  readonly concurrency: number
}

/** The longest a run phase may take before the benchmark gives up. */
const runTimeout = "5 minutes"

const perItemUs = (ms: number, items: number) => Math.round(ms * 1000 / items)

/** The fields every row of a run (W1, W2, W3) reports, named like the effect-batch rows. */
const runFields = (options: GraphileOptions, t: { submitMs: number; startMs?: number; runMs: number }) => {
  const ideal = options.workload === "w2" ? options.items * 10 / options.concurrency : 0
  const totalMs = t.submitMs + t.runMs
  return {
    system: systemName(options.variant),
    concurrency: options.concurrency,
    itemsPerSecond: Math.round(options.items / totalMs * 1000),
    runPhaseItemsPerSecond: Math.round(options.items / t.runMs * 1000),
    submitMs: Math.round(t.submitMs),
    ...(t.startMs === undefined ? {} : { startMs: Math.round(t.startMs) }),
    runMs: Math.round(t.runMs),
    ...(ideal > 0 ? { efficiency: ideal / t.runMs, efficiencyTotal: ideal / totalMs } : {})
  }
}

/** W1 or W2 in this process: one graphile-worker runner at the concurrency. */
const singleProcess = (gw: Graphile, url: string, options: GraphileOptions) =>
  Effect.gen(function*() {
    const tracker = new Tracker()
    const { ms: submitMs } = yield* addJobs(gw, url, jobSpecs(options.workload, options.items))
    const server0 = yield* serverCpuMs(url)
    const cpu0 = processCpuMs()
    const elu0 = performance.eventLoopUtilization()
    const start = performance.now()
    yield* running(gw, { url, ...options }, tracker)
    const startMs = performance.now() - start
    yield* tracker.reached(options.items).pipe(Effect.timeoutFail({
      duration: runTimeout,
      onTimeout: () => new Error(`${tracker.handled} of ${options.items} jobs ran in ${runTimeout}`)
    }))
    yield* awaitEmpty(url)
    const runMs = performance.now() - start
    const elu = performance.eventLoopUtilization(elu0).utilization
    const cpuMs = processCpuMs() - cpu0
    const serverMs = (yield* serverCpuMs(url)) - server0
    const remaining = yield* remainingJobs(url)
    yield* report({
      bench: options.workload,
      db: "postgres",
      variant: systemName(options.variant),
      items: options.items,
      ms: submitMs + runMs,
      extra: {
        ...runFields(options, { submitMs, startMs, runMs }),
        processes: 1,
        nodeCpuUsPerItem: perItemUs(cpuMs, options.items),
        eventLoopUtilization: Math.round(elu * 100) / 100,
        mainThreadUsPerItem: perItemUs(elu * runMs, options.items),
        serverCpuUsPerItem: perItemUs(serverMs, options.items),
        exactlyOnce: remaining === 0 && tracker.ranEachOnce(options.items),
        handled: tracker.handled,
        duplicates: tracker.duplicates
      }
    })
  })

/** Resolves once the worker processes have run `count` jobs between them (by their progress lines). */
const progress = (count: number) => {
  const handles: Array<WorkerHandle> = []
  let wake: (() => void) | undefined
  const total = () => handles.reduce((sum, h) => sum + h.handled(), 0)
  return {
    handles,
    onProgress: () => {
      if (total() >= count) wake?.()
    },
    reached: Effect.async<void>((resume) => {
      if (total() >= count) return resume(Effect.void)
      wake = () => resume(Effect.void)
    }),
    total
  }
}

/**
 * W3: two worker processes (each half of the concurrency, so the global concurrency matches
 * effect-batch's batch concurrency), the jobs added from this process while they wait; exactly-once
 * is checked across both processes.
 */
const twoProcesses = (gw: Graphile, url: string, options: GraphileOptions) =>
  Effect.gen(function*() {
    const perProcess = Math.max(1, Math.floor(options.concurrency / 2))
    const tracking = progress(options.items)
    const handles = yield* Effect.all(
      ["worker-a", "worker-b"].map((owner) =>
        spawnGraphileWorker({ url, owner, variant: options.variant, concurrency: perProcess }, tracking.onProgress)
      ),
      { concurrency: 2 }
    )
    tracking.handles.push(...handles)
    const { ms: submitMs } = yield* addJobs(gw, url, jobSpecs("w3", options.items))
    const server0 = yield* serverCpuMs(url)
    const start = performance.now()
    yield* Effect.forEach(handles, (h) => h.go, { discard: true })
    yield* tracking.reached.pipe(Effect.timeoutFail({
      duration: runTimeout,
      onTimeout: () => new Error(`${tracking.total()} of ${options.items} jobs ran in ${runTimeout}`)
    }))
    yield* awaitEmpty(url)
    const runMs = performance.now() - start
    const serverMs = (yield* serverCpuMs(url)) - server0
    const remaining = yield* remainingJobs(url)
    const reports = yield* Effect.forEach(handles, (h) => h.report)
    const handled = reports.reduce((sum, r) => sum + r.handled, 0)
    const duplicates = reports.reduce((sum, r) => sum + r.duplicates, 0)
    const union = new Set(reports.flatMap((r) => r.keys))
    const overlap = reports.reduce((sum, r) => sum + r.keys.length, 0) - union.size
    const allKeys = Array.from({ length: options.items }, (_, i) => itemKey(i)).every((key) => union.has(key))
    const cpuMs = reports.reduce((sum, r) => sum + r.cpuMs, 0)
    yield* report({
      bench: "w3",
      db: "postgres",
      variant: systemName(options.variant),
      items: options.items,
      ms: submitMs + runMs,
      extra: {
        ...runFields(options, { submitMs, runMs }),
        processes: 2,
        concurrencyPerProcess: perProcess,
        nodeCpuUsPerItem: perItemUs(cpuMs, options.items),
        serverCpuUsPerItem: perItemUs(serverMs, options.items),
        exactlyOnce: remaining === 0 && handled === options.items && duplicates === 0 && overlap === 0 &&
          union.size === options.items && allKeys,
        handled,
        duplicates: duplicates + overlap,
        handledPerProcess: reports.map((r) => r.handled).join("/")
      }
    })
  })

/** Enqueue: `addJobs` of the items in one call, with no worker running. */
const enqueue = (gw: Graphile, url: string, options: GraphileOptions) =>
  Effect.gen(function*() {
    const specs = jobSpecs("enqueue", options.items)
    const { cpuMs, ms, serverMs } = yield* addJobs(gw, url, specs)
    const stored = yield* remainingJobs(url)
    if (stored !== options.items) return yield* Effect.dieMessage(`${stored} of ${options.items} jobs stored`)
    yield* report({
      bench: "enqueue",
      db: "postgres",
      variant: systemName(options.variant),
      items: options.items,
      ms,
      extra: {
        system: systemName(options.variant),
        itemsPerSecond: Math.round(options.items / ms * 1000),
        enqueueMs: Math.round(ms),
        nodeCpuUsPerItem: perItemUs(cpuMs, options.items),
        serverCpuUsPerItem: perItemUs(serverMs, options.items)
      }
    })
  })

/** One graphile-worker benchmark on a fresh, migrated database (`child.ts graphile`). */
export const graphile = (options: GraphileOptions) =>
  Effect.gen(function*() {
    const { url } = yield* freshPostgres
    const gw = yield* loadGraphile
    yield* migrate(gw, url)
    switch (options.workload) {
      case "enqueue":
        return yield* enqueue(gw, url, options)
      case "w3":
        return yield* twoProcesses(gw, url, options)
      default:
        return yield* singleProcess(gw, url, options)
    }
  }).pipe(Effect.scoped)
