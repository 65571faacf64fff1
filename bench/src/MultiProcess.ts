/**
 * W3: the no-op workload run by two worker processes sharing one Postgres database, submitted and
 * awaited from a third, API-only process; checks that every item was recorded exactly once.
 */
import { Database } from "@effect-batch/tables"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import * as Url from "node:url"
import { freshPostgres, report, withPg } from "./Harness.js"
import { noop, orchestrator, submitAndAwait } from "./Workloads.js"

const child = Path.join(Path.dirname(Url.fileURLToPath(import.meta.url)), "..", "child.ts")

/** How often the worker processes look for new batches (they learn of batches only by polling). */
const workerPollMs = 50

/** Starts a worker process and waits for it to say it is ready; kills it when the scope closes. */
const spawnWorker = (url: string, owner: string) =>
  Effect.acquireRelease(
    Effect.async<ChildProcess.ChildProcess, Error>((resume) => {
      const proc = ChildProcess.spawn(
        process.execPath,
        [
          "--conditions=@effect-batch/source",
          "--import",
          "tsx",
          child,
          "worker",
          JSON.stringify({ url, owner, pollMs: workerPollMs })
        ],
        { stdio: ["ignore", "pipe", "inherit"] }
      )
      let output = ""
      proc.stdout.on("data", (data: Buffer) => {
        output += data.toString()
        if (output.includes("READY")) resume(Effect.succeed(proc))
      })
      proc.on("exit", (code) => resume(Effect.fail(new Error(`worker ${owner} exited with ${code}`))))
    }),
    (proc) => Effect.sync(() => proc.kill("SIGKILL"))
  )

/** A worker process: the orchestrator with its worker loop on the database at `url`, until killed. */
export const workerProcess = (options: { readonly url: string; readonly owner: string; readonly pollMs: number }) =>
  Effect.gen(function*() {
    yield* Effect.sync(() => process.stdout.write("READY\n"))
    return yield* Effect.never
  }).pipe(
    Effect.provide(
      orchestrator(Database.layerPostgres(options.url), {
        owner: options.owner,
        pollInterval: Duration.millis(options.pollMs)
      })
    )
  )

/** W3 on Postgres: two worker processes, `items` no-op items at a global concurrency. */
export const twoProcesses = (options: { readonly items: number; readonly concurrency: number }) =>
  Effect.gen(function*() {
    const { url } = yield* freshPostgres
    const api = yield* Layer.build(orchestrator(Database.layerPostgres(url), { enabled: false }))
    yield* Effect.all([spawnWorker(url, "worker-a"), spawnWorker(url, "worker-b")], { concurrency: 2 })
    const result = yield* Effect.provide(submitAndAwait(noop.name, options.items, options.concurrency), api)
    const check = yield* withPg(url, async (client) => {
      const items = await client.query<{ total: number; succeeded: number; rerun: number }>(
        `SELECT count(*)::int AS total, (count(*) FILTER (WHERE state = 'succeeded'))::int AS succeeded,
          (count(*) FILTER (WHERE attempt <> 1))::int AS rerun
         FROM effect_batch_items WHERE batch_id = $1`,
        [result.batchId]
      )
      const events = await client.query<{ n: number; distinct_keys: number }>(
        `SELECT count(*)::int AS n, count(DISTINCT payload->>'itemKey')::int AS distinct_keys
         FROM effect_batch_events WHERE batch_id = $1 AND tag = 'ItemSucceeded'`,
        [result.batchId]
      )
      const [itemRow] = items.rows
      const [eventRow] = events.rows
      if (itemRow === undefined || eventRow === undefined) throw new Error("no counts")
      return { items: itemRow, events: eventRow }
    })
    const exactlyOnce = check.items.total === options.items && check.items.succeeded === options.items &&
      check.events.n === options.items && check.events.distinct_keys === options.items
    yield* report({
      bench: "w3",
      db: "postgres",
      variant: "2 worker processes",
      items: options.items,
      ms: result.totalMs,
      extra: {
        itemsPerSecond: Math.round(options.items / result.totalMs * 1000),
        runPhaseItemsPerSecond: Math.round(options.items / result.runMs * 1000),
        submitMs: Math.round(result.submitMs),
        runMs: Math.round(result.runMs),
        exactlyOnce,
        succeededEvents: check.events.n,
        reRunAttempts: check.items.rerun
      }
    })
  }).pipe(Effect.scoped)
