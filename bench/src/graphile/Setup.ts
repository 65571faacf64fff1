/**
 * What the graphile-worker benchmarks share: loading the library quietly, the two configurations
 * ("tuned" with graphile's documented batching options, "default" without), the task list that
 * records every job it runs, and the wait for the jobs table to be empty.
 */
import * as Effect from "effect/Effect"
import type * as GraphileWorker from "graphile-worker"
import { setTimeout as sleep } from "node:timers/promises"
import pg from "pg"
import { itemKey, processCpuMs, serverCpuMs, withPg } from "../Harness.js"

export type Workload = "w1" | "w2" | "w3" | "enqueue"
export type Variant = "tuned" | "default"

/** What a worker runs: the database, the variant and the workload, at a concurrency per process. */
export interface RunConfig {
  readonly url: string
  readonly variant: Variant
  readonly workload: Workload
  readonly concurrency: number
}

/** The name a result row carries in `extra.system`. */
export const systemName = (variant: Variant) => `graphile-worker ${variant}`

/**
 * graphile-worker, imported only once `NO_LOG_SUCCESS` is set: without it every completed job
 * formats an info line (the flag is read when the module loads, so a static import would be too early).
 */
export const loadGraphile = Effect.promise(() => {
  process.env["NO_LOG_SUCCESS"] ??= "1"
  return import("graphile-worker")
})

export type Graphile = Effect.Effect.Success<typeof loadGraphile>

/** A logger printing only warnings and errors, like the Effect logger of the other benchmarks. */
export const quietLogger = (gw: Graphile) =>
  new gw.Logger(() => (level, message) => {
    if (level === "error" || level === "warning") process.stderr.write(`graphile-worker ${level}: ${message}\n`)
  })

/** graphile's recommended pool size: 10 or `concurrentJobs + 2`, whichever is larger. */
const poolSize = (concurrency: number) => Math.max(10, concurrency + 2)

/**
 * The worker options of a variant. "tuned" adds the batching options of graphile's performance
 * page: a local queue (500 jobs, 100 for the 10 ms jobs of W2) and batched completions and failures
 * (`completeJobBatchDelay` / `failJobBatchDelay` 0); "default" leaves them at their defaults (-1:
 * off). Both run on a pool of graphile's recommended size (`running`), not its default of 10.
 */
export const workerPreset = (
  options: RunConfig,
  logger: GraphileWorker.Logger
): GraphileConfig.Preset => ({
  worker: {
    concurrentJobs: options.concurrency,
    logger,
    ...(options.variant === "tuned"
      ? {
        localQueue: { size: options.workload === "w2" ? 100 : 500 },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0
      }
      : {})
  }
})

/** The task a workload's jobs run: `noop` (W1, W3) or `sleepy` (10 ms, W2). */
export const taskOf = (workload: Workload) => (workload === "w2" ? "sleepy" : "noop")

/** `count` jobs for `addJobs`, each payload carrying the item's key. */
export const jobSpecs = (workload: Workload, count: number): Array<GraphileWorker.AddJobsJobSpec> =>
  Array.from({ length: count }, (_, i) => ({ identifier: taskOf(workload), payload: { key: itemKey(i), n: i } }))

/** Records the key of every job this process ran, and how many ran more than once. */
export class Tracker {
  readonly seen = new Set<string>()
  handled = 0
  duplicates = 0
  private waiters: Array<{ readonly count: number; readonly resolve: () => void }> = []

  constructor(private readonly onRecord: (handled: number) => void = () => {}) {}

  /** Called by the task handler when a job has run. */
  record(payload: unknown) {
    const key = typeof payload === "object" && payload !== null && "key" in payload ? payload.key : undefined
    if (typeof key !== "string") throw new Error(`job payload without a key: ${JSON.stringify(payload)}`)
    if (this.seen.has(key)) this.duplicates++
    else this.seen.add(key)
    this.handled++
    this.onRecord(this.handled)
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => this.handled >= w.count)
      this.waiters = this.waiters.filter((w) => this.handled < w.count)
      for (const w of ready) w.resolve()
    }
  }

  /** Resolves once `count` jobs have run in this process. */
  reached(count: number) {
    return Effect.async<void>((resume) => {
      if (this.handled >= count) return resume(Effect.void)
      this.waiters.push({ count, resolve: () => resume(Effect.void) })
    })
  }

  /** Whether this process ran exactly the keys of items `0 … count - 1`, each once. */
  ranEachOnce(count: number) {
    if (this.duplicates > 0 || this.handled !== count || this.seen.size !== count) return false
    for (let i = 0; i < count; i++) if (!this.seen.has(itemKey(i))) return false
    return true
  }
}

/** The task list: both tasks record the job's key once they have run it. */
export const taskList = (tracker: Tracker): GraphileWorker.TaskList => ({
  noop: (payload) => {
    tracker.record(payload)
  },
  sleepy: async (payload) => {
    await sleep(10)
    tracker.record(payload)
  }
})

/** The options of `run` for a variant (no signal handlers, no crontab). */
export const runnerOptions = (
  gw: Graphile,
  options: RunConfig,
  tracker: Tracker
): GraphileWorker.RunnerOptions => ({
  preset: workerPreset(options, quietLogger(gw)),
  taskList: taskList(tracker),
  noHandleSignals: true,
  parsedCronItems: []
})

/**
 * A `pg` pool for graphile, ended (and awaited) when the scope closes: graphile ends the pools it
 * creates itself without waiting (`pgPool.end()` in a releaser), so their idle clients could still be
 * connected when the fresh database is dropped, and the drop's termination would crash the process.
 */
export const ownPool = (url: string, max: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new pg.Pool({ connectionString: url, max })
      const ignore = () => {}
      pool.on("error", ignore)
      pool.on("connect", (client) => client.on("error", ignore))
      return pool
    }),
    (pool) => Effect.promise(() => pool.end())
  )

/** Runs graphile-worker on its own pool until the scope closes (then stops it gracefully). */
export const running = (
  gw: Graphile,
  options: RunConfig,
  tracker: Tracker
) =>
  Effect.flatMap(ownPool(options.url, poolSize(options.concurrency)), (pgPool) =>
    Effect.acquireRelease(
      Effect.promise(() => gw.run({ ...runnerOptions(gw, options, tracker), pgPool })),
      (runner) => Effect.promise(() => runner.stop())
    ))

/**
 * Adds `specs` with `WorkerUtils.addJobs` (one call): the milliseconds the call took, and the CPU
 * milliseconds of this process and of the server backends meanwhile (sampled while the pool is
 * still connected).
 */
export const addJobs = (gw: Graphile, url: string, specs: ReadonlyArray<GraphileWorker.AddJobsJobSpec>) =>
  Effect.gen(function*() {
    const pgPool = yield* ownPool(url, 2)
    const utils = yield* Effect.acquireRelease(
      Effect.promise(() => gw.makeWorkerUtils({ pgPool, logger: quietLogger(gw) })),
      (utils) => Effect.promise(async () => await utils.release())
    )
    const server0 = yield* serverCpuMs(url)
    const cpu0 = processCpuMs()
    const start = performance.now()
    const added = yield* Effect.promise(() => utils.addJobs(specs))
    const ms = performance.now() - start
    const cpuMs = processCpuMs() - cpu0
    if (added.length !== specs.length) {
      return yield* Effect.dieMessage(`addJobs added ${added.length} of ${specs.length} jobs`)
    }
    return { ms, cpuMs, serverMs: (yield* serverCpuMs(url)) - server0 }
  }).pipe(Effect.scoped)

/** The migrations graphile-worker runs on first use, run before anything is timed. */
export const migrate = (gw: Graphile, url: string) =>
  Effect.flatMap(
    ownPool(url, 2),
    (pgPool) => Effect.promise(() => gw.runMigrations({ pgPool, logger: quietLogger(gw) }))
  ).pipe(Effect.scoped)

const countJobs = "SELECT count(*)::int AS n FROM graphile_worker._private_jobs"

/** The number of jobs in graphile's jobs table (completed jobs are deleted). */
export const remainingJobs = (url: string) =>
  withPg(url, async (client) => (await client.query<{ n: number }>(countJobs)).rows[0]?.n ?? -1)

/**
 * Polls (every 2 ms, at most `timeoutMs`) until graphile's jobs table is empty: every completion
 * committed. Called once every job has run, so the polling is short.
 */
export const awaitEmpty = (url: string, timeoutMs = 60_000) =>
  withPg(url, async (client) => {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const n = (await client.query<{ n: number }>(countJobs)).rows[0]?.n ?? -1
      if (n === 0) return
      if (performance.now() > deadline) throw new Error(`${n} jobs still in the table after ${timeoutMs} ms`)
      await sleep(2)
    }
  })
