/**
 * One benchmark in a fresh process: `node --conditions=@effect-batch/source --import tsx bench/child.ts <name> '<json options>'`.
 * Prints one `BENCH_RESULT {json}` line per measurement for `run.ts`.
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schema from "effect/Schema"
import { campaignOverhead } from "./src/Campaign.js"
import { claimComplete } from "./src/Claim.js"
import { enqueue } from "./src/Enqueue.js"
import { graphile } from "./src/Graphile.js"
import { graphileWorkerProcess } from "./src/graphile/WorkerProcess.js"
import { insert } from "./src/Insert.js"
import { acquireProcess, sharedLimiter } from "./src/Limiter.js"
import { loadLarge, loadRpc } from "./src/Load.js"
import { twoProcesses, workerProcess } from "./src/MultiProcess.js"
import { inMemory, workload } from "./src/Workloads.js"

const Db = Schema.Literal("postgres", "embedded")
const Count = { items: Schema.Int, concurrency: Schema.Int }

/** A benchmark taking options decoded from JSON. */
const command =
  <A, I>(schema: Schema.Schema<A, I>, run: (options: A) => Effect.Effect<void, unknown>) => (json: unknown) =>
    Effect.flatMap(Schema.decodeUnknown(schema)(json), run)

const benchmarks: Record<string, (json: unknown) => Effect.Effect<void, unknown>> = {
  insert: command(
    Schema.Struct({
      db: Db,
      variant: Schema.Literal("repo", "direct-values", "direct-repo-statement"),
      items: Schema.Int
    }),
    insert
  ),
  claim: command(
    Schema.Struct({
      db: Db,
      variant: Schema.Literal("repo", "direct"),
      bench: Schema.optional(Schema.String),
      ...Count
    }),
    claimComplete
  ),
  workload: command(
    Schema.Struct({
      name: Schema.Literal("w1", "w1-steps", "w1-private-limiter", "w1-shared-limiter", "w2"),
      db: Db,
      repeat: Schema.Int,
      ...Count
    }),
    workload
  ),
  campaign: command(
    Schema.Struct({ db: Db, batchSize: Schema.Int, campaignConcurrency: Schema.Int, ...Count }),
    campaignOverhead
  ),
  memory: command(Schema.Struct(Count), inMemory),
  "load-rpc": command(
    Schema.Struct({
      db: Db,
      requests: Schema.Int,
      warmup: Schema.Int,
      concurrencies: Schema.Array(Schema.Int),
      idleGets: Schema.Int,
      heapSnapshots: Schema.optional(Schema.String)
    }),
    loadRpc
  ),
  "load-large": command(Schema.Struct({ db: Db, items: Schema.Int, concurrency: Schema.Int }), loadLarge),
  limiter: command(Schema.Struct({ ms: Schema.Int, fibers: Schema.Int }), sharedLimiter),
  "limiter-acquire": command(Schema.Struct({ url: Schema.String, ms: Schema.Int, fibers: Schema.Int }), acquireProcess),
  w3: command(Schema.Struct(Count), twoProcesses),
  worker: command(Schema.Struct({ url: Schema.String, owner: Schema.String, pollMs: Schema.Number }), workerProcess),
  enqueue: command(Schema.Struct(Count), enqueue),
  graphile: command(
    Schema.Struct({
      workload: Schema.Literal("w1", "w2", "w3", "enqueue"),
      variant: Schema.Literal("tuned", "default"),
      ...Count
    }),
    graphile
  ),
  "graphile-worker": command(
    Schema.Struct({
      url: Schema.String,
      owner: Schema.String,
      variant: Schema.Literal("tuned", "default"),
      concurrency: Schema.Int
    }),
    graphileWorkerProcess
  )
}

const [name = "", json = "{}"] = process.argv.slice(2)
const program = benchmarks[name]?.(JSON.parse(json)) ?? Effect.dieMessage(`unknown benchmark ${name}`)

Effect.runPromise(program.pipe(Logger.withMinimumLogLevel(LogLevel.Warning))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
