/**
 * effect-batch benchmarks. Every measurement runs in a fresh child process (`child.ts`) on a fresh
 * database; ratios are taken between measurements of the same run.
 *
 *   bun run bench                       every benchmark, once
 *   bun run bench -- --only insert,w1   a selection: insert, claim, memory, floor, w1, w1-warm, w2, w3,
 *                                       steps, limiters, campaign, load
 *   bun run bench -- --rounds 3         each measurement 3 times, reporting the median
 *   bun run bench -- --quick            smaller sizes (a smoke test of the harness)
 *   bun run bench -- --only peer        graphile-worker 0.18 (tuned and default) on W1, W2, W3 and enqueue
 *   bun run bench -- --compare --rounds 3
 *                                       effect-batch and graphile-worker interleaved within each round
 *                                       (W1, W1 embedded, W2, W3, enqueue), medians and ratios; raw
 *                                       results in bench/results/; a failed child leaves its cell empty.
 *                                       `--only w1,enqueue` narrows the workloads (`peer`: all of them),
 *                                       `--timeout 600` is the limit per child in seconds
 *   bun run bench -- --sources          children run the TypeScript sources through tsx instead of
 *                                       the JavaScript bundle built at start (bench/.build/child.mjs)
 */
import * as Esbuild from "esbuild"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Url from "node:url"
import pg from "pg"
import { bundleVariable, childArgs } from "./src/ChildCommand.js"
import { median, type Result, resultPrefix, serverUrl } from "./src/Harness.js"

const here = Path.dirname(Url.fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}
const quick = args.includes("--quick")
const rounds = Number(flag("rounds") ?? 1)
const only = flag("only")?.split(",")
const selected = (name: string) => only === undefined || only.includes(name)
const compare = args.includes("--compare")
const childTimeoutMs = Number(flag("timeout") ?? 600) * 1000

// Every child starts from one JavaScript bundle of `child.ts` (the packages and the harness), the
// way an installed package runs; what is loaded from node_modules at run time stays external.
if (!args.includes("--sources")) {
  const outfile = Path.join(here, ".build", "child.mjs")
  await Esbuild.build({
    entryPoints: [Path.join(here, "child.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["@electric-sql/pglite", "pg-native", "graphile-worker"],
    // the workspace packages from their sources, as in development: nothing needs building first
    conditions: ["@effect-batch/source"],
    // the bundle is ESM; CommonJS dependencies inside it still call `require`
    banner: {
      js:
        "import { createRequire as __createRequire } from \"node:module\"; const require = __createRequire(import.meta.url);"
    },
    logLevel: "warning"
  })
  process.env[bundleVariable] = outfile
}

const insertItems = quick ? 10_000 : 100_000
const loopItems = quick ? 2_000 : 10_000
const sleepyItems = quick ? 500 : 2_000

interface Job {
  readonly group: string
  readonly name: string
  readonly options: Record<string, unknown>
}

const jobs: Array<Job> = []
const add = (group: string, name: string, options: Record<string, unknown>) => {
  if (selected(group)) jobs.push({ group, name, options })
}
for (const db of ["postgres", "embedded"]) {
  for (const variant of ["repo", "direct-values", "direct-repo-statement"]) {
    add("insert", "insert", { db, variant, items: insertItems })
  }
  for (const variant of ["repo", "direct"]) {
    add("claim", "claim", { db, variant, items: loopItems, concurrency: 16 })
  }
}
add("memory", "memory", { items: loopItems, concurrency: 16 })
for (const db of ["postgres", "embedded"]) {
  add("floor", "claim", { db, variant: "direct", items: loopItems, concurrency: 16, bench: "floor" })
  add("w1", "workload", { name: "w1", db, items: loopItems, concurrency: 16, repeat: 1 })
  add("w1-warm", "workload", { name: "w1", db, items: loopItems, concurrency: 16, repeat: 2 })
  add("steps", "workload", { name: "w1-steps", db, items: loopItems, concurrency: 16, repeat: 1 })
  add("limiters", "workload", { name: "w1-private-limiter", db, items: loopItems, concurrency: 16, repeat: 1 })
  add("limiters", "workload", { name: "w1-shared-limiter", db, items: loopItems, concurrency: 16, repeat: 1 })
  add("w2", "workload", { name: "w2", db, items: sleepyItems, concurrency: 50, repeat: 1 })
}
add("w3", "w3", { items: loopItems, concurrency: 16 })
// one batch and a campaign of the same items side by side in every round, each batch at W1's concurrency
// batches of 100 (the measure asked for) and of 1,000 (how the overhead shrinks with the batch size)
const campaignBatchSizes = quick ? [20, 200] : [100, 1_000]
const campaignConcurrency = 4
for (const db of ["postgres", "embedded"]) {
  for (const batchSize of [0, ...campaignBatchSizes]) {
    add("campaign", "campaign", { db, items: loopItems, concurrency: 16, batchSize, campaignConcurrency })
  }
}
// the HTTP server under an RPC mix (Postgres), then one large batch over HTTP on each database
add("load", "load-rpc", {
  db: "postgres",
  requests: quick ? 200 : 1_000,
  warmup: quick ? 50 : 200,
  concurrencies: [1, 16],
  idleGets: quick ? 200 : 1_000
})
for (const db of ["postgres", "embedded"]) {
  add("load", "load-large", { db, items: quick ? 10_000 : 100_000, concurrency: 16 })
}
add("limiters", "limiter", { ms: quick ? 1_000 : 3_000, fibers: 16 })
for (const variant of ["tuned", "default"]) {
  add("peer", "graphile", { workload: "w1", variant, items: loopItems, concurrency: 16 })
  add("peer", "graphile", { workload: "w2", variant, items: sleepyItems, concurrency: 50 })
  add("peer", "graphile", { workload: "w3", variant, items: loopItems, concurrency: 16 })
  add("peer", "graphile", { workload: "enqueue", variant, items: loopItems, concurrency: 16 })
}

/** Runs one child process and collects its result lines. */
const runChild = (job: Job) =>
  new Promise<Array<Result>>((resolve, reject) => {
    const proc = ChildProcess.spawn(
      process.execPath,
      ["--expose-gc", ...childArgs([job.name, JSON.stringify(job.options)])],
      { stdio: ["ignore", "pipe", "inherit"] }
    )
    let output = ""
    proc.stdout.on("data", (data: Buffer) => {
      output += data.toString()
    })
    proc.on("error", reject)
    proc.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`${job.name} ${JSON.stringify(job.options)} exited with ${code}`))
      const results: Array<Result> = []
      for (const line of output.split("\n")) {
        if (line.startsWith(resultPrefix)) results.push(JSON.parse(line.slice(resultPrefix.length)))
      }
      resolve(results)
    })
  })

const keyOf = (r: Result) => `${r.bench}|${r.db ?? ""}|${r.variant}`

const main = async () => {
  const all = new Map<string, Array<Result>>()
  for (let round = 1; round <= rounds; round++) {
    for (const job of jobs) {
      process.stderr.write(
        `round ${round}: ${job.name} ${JSON.stringify(job.options)} (load ${Os.loadavg()[0]?.toFixed(1)})\n`
      )
      for (const result of await runChild(job)) {
        const key = keyOf(result)
        all.set(key, [...(all.get(key) ?? []), result])
      }
    }
  }
  /** The median result of a measurement (by items/s), with every extra field the median too. */
  const summary = new Map<string, Result>()
  for (const [key, results] of all) {
    const first = results[0]
    if (first === undefined) continue
    const extra: Record<string, number | string | boolean> = {}
    for (const field of Object.keys(first.extra ?? {})) {
      const values = results.map((r) => r.extra?.[field])
      const numbers = values.filter((v): v is number => typeof v === "number")
      extra[field] = numbers.length === values.length ? median(numbers) : values.every((v) => v === true)
    }
    summary.set(key, { ...first, ms: median(results.map((r) => r.ms)), extra })
  }
  const num = (r: Result | undefined, field: string) => {
    const value = r?.extra?.[field]
    return typeof value === "number" ? value : undefined
  }
  const get = (bench: string, db: string | undefined, variant: string) => summary.get(`${bench}|${db ?? ""}|${variant}`)
  const fmt = (n: number | undefined, digits = 0) =>
    n === undefined ? "–" : n.toLocaleString("en-US", {
      maximumFractionDigits: digits,
      minimumFractionDigits: digits
    })
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b === 0 ? "–" : `${(a / b * 100).toFixed(0)}%`

  const lines: Array<string> = []
  lines.push(`node ${process.version}, ${Os.cpus().length} cores, ${rounds} round(s), median of rounds`, "")
  if (selected("insert")) {
    lines.push(
      "### Bulk insert",
      "",
      "| database | path | items | items/s | vs direct repo statement | peak RSS − baseline (MiB) | peak heap − baseline (MiB) |",
      "|---|---|---:|---:|---:|---:|---:|"
    )
    for (const db of ["postgres", "embedded"]) {
      const direct = num(get("insert", db, "direct-repo-statement"), "itemsPerSecond")
      for (const variant of ["repo", "direct-repo-statement", "direct-values"]) {
        const r = get("insert", db, variant)
        lines.push(
          `| ${db} | ${variant} | ${fmt(r?.items)} | ${fmt(num(r, "itemsPerSecond"))} | ${
            ratio(num(r, "itemsPerSecond"), direct)
          } | ${fmt(num(r, "rssPeakMiB"), 1)} | ${fmt(num(r, "heapPeakMiB"), 1)} |`
        )
      }
    }
    lines.push("")
  }
  if (selected("claim")) {
    lines.push(
      "### Claim + complete, concurrency 16",
      "",
      "| database | path | items | statements | items/s | vs direct | Node main thread µs/item | Node process CPU µs/item | server CPU µs/item |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for (const db of ["postgres", "embedded"]) {
      const direct = num(get("claim", db, "direct"), "itemsPerSecond")
      for (const variant of ["repo", "direct"]) {
        const r = get("claim", db, variant)
        lines.push(
          `| ${db} | ${variant} | ${fmt(r?.items)} | ${fmt(num(r, "statements"))} | ${
            fmt(num(r, "itemsPerSecond"))
          } | ${ratio(num(r, "itemsPerSecond"), direct)} | ${fmt(num(r, "mainThreadUsPerItem"))} | ${
            fmt(num(r, "nodeCpuUsPerItem"))
          } | ${fmt(num(r, "serverCpuUsPerItem"))} |`
        )
      }
    }
    lines.push("")
  }
  const memory = num(get("ceiling", undefined, "in-memory Effect.forEach"), "itemsPerSecond")
  if (selected("memory")) {
    lines.push(
      `In-memory ceiling (Effect.forEach, concurrency 16, the same no-op work, no persistence): ${fmt(memory)} items/s`,
      ""
    )
  }
  const workloads: Array<[string, string, string]> = [
    ["w1", "fresh process", `W1: ${loopItems.toLocaleString("en-US")} no-op items, concurrency 16`],
    ["w1", "run 2 of 2", "W1 warm (second run in one process)"],
    ["w2", "fresh process", `W2: ${sleepyItems.toLocaleString("en-US")} items of 10 ms, concurrency 50`],
    ["w3", "2 worker processes", "W3: W1 on two worker processes"]
  ]
  if (workloads.some(([bench]) => selected(bench) || selected(`${bench}-warm`))) {
    lines.push(
      "### Orchestrator workloads",
      "",
      "| workload | database | items/s (submit → Completed) | run phase items/s | vs floor (run phase) | vs in-memory | Node main thread µs/item | Node process CPU µs/item | server CPU µs/item | other |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    for (const [bench, variant, label] of workloads) {
      for (const db of ["postgres", "embedded"]) {
        const r = get(bench, db, variant)
        if (r === undefined) continue
        const floor = num(get("floor", db, "direct"), "itemsPerSecond")
        const other = [
          num(r, "efficiency") === undefined
            ? ""
            : `efficiency ${fmt(num(r, "efficiency"), 2)} (run phase), ${fmt(num(r, "efficiencyTotal"), 2)} (total)`,
          r.extra?.["exactlyOnce"] === undefined ? "" : `exactly-once: ${r.extra["exactlyOnce"]}`,
          `submit ${fmt(num(r, "submitMs"))} ms`
        ].filter((s) => s !== "").join("; ")
        lines.push(
          `| ${label} | ${db} | ${fmt(num(r, "itemsPerSecond"))} | ${fmt(num(r, "runPhaseItemsPerSecond"))} | ${
            ratio(num(r, "runPhaseItemsPerSecond"), floor)
          } | ${ratio(num(r, "itemsPerSecond"), memory)} | ${fmt(num(r, "mainThreadUsPerItem"))} | ${
            fmt(num(r, "nodeCpuUsPerItem"))
          } | ${fmt(num(r, "serverCpuUsPerItem"))} | ${other} |`
        )
      }
    }
    for (const db of ["postgres", "embedded"]) {
      const floor = get("floor", db, "direct")
      if (floor !== undefined) {
        lines.push(
          `| database floor: the loop's own statement driven directly, no runtime | ${db} | ${
            fmt(num(floor, "itemsPerSecond"))
          } | | | | ${fmt(num(floor, "mainThreadUsPerItem"))} | ${fmt(num(floor, "nodeCpuUsPerItem"))} | ${
            fmt(num(floor, "serverCpuUsPerItem"))
          } | |`
        )
      }
    }
    lines.push("")
  }
  if (selected("limiters")) {
    lines.push(
      "### Rate limiters: W1 with every item through a limiter too high to bind",
      "",
      "| workload | database | run phase items/s | vs W1 | Node process CPU µs/item | server CPU µs/item |",
      "|---|---|---:|---:|---:|---:|"
    )
    for (const db of ["postgres", "embedded"]) {
      const w1 = num(get("w1", db, "fresh process"), "runPhaseItemsPerSecond")
      for (
        const [bench, label] of [
          ["w1", "W1, no limiter"],
          ["w1-private-limiter", "W1, the batch's own limiter"],
          ["w1-shared-limiter", "W1, the tenant's shared limiter"]
        ] as const
      ) {
        const r = get(bench, db, "fresh process")
        if (r === undefined) continue
        lines.push(
          `| ${label} | ${db} | ${fmt(num(r, "runPhaseItemsPerSecond"))} | ${
            ratio(num(r, "runPhaseItemsPerSecond"), w1)
          } | ${fmt(num(r, "nodeCpuUsPerItem"))} | ${fmt(num(r, "serverCpuUsPerItem"))} |`
        )
      }
    }
    lines.push(
      "",
      "Shared limiter alone (16 fibers per process acquiring in a loop):",
      "",
      "| processes | acquisitions/s | slowest process | Node CPU µs/acquisition | server CPU µs/acquisition |",
      "|---|---:|---|---:|---:|"
    )
    for (const variant of ["1 process", "2 processes"]) {
      const r = get("shared-limiter", "postgres", variant)
      if (r === undefined) continue
      lines.push(
        `| ${variant} | ${fmt(num(r, "acquisitionsPerSecond"))} | ${fmt(num(r, "slowestProcess"))} | ${
          fmt(num(r, "nodeCpuUsPerAcquisition"), 2)
        } | ${fmt(num(r, "serverCpuUsPerAcquisition"), 2)} |`
      )
    }
    lines.push("")
  }
  if (selected("campaign")) {
    const campaignVariants = campaignBatchSizes.map((size) =>
      `campaign: ${loopItems / size} batches of ${size}, ${campaignConcurrency} at a time`
    )
    lines.push(
      `### Campaign overhead: ${loopItems.toLocaleString("en-US")} no-op items, every batch at concurrency 16`,
      "",
      "| database | shape | items/s (submit → settled) | vs one batch | submit ms | submit → first start ms | batch start → first item ms | last item → batch settled ms | batch settled → next start ms (median / max) | last batch → campaign settled ms | occupancy | Node CPU µs/item | server CPU µs/item | exactly-once |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    for (const db of ["postgres", "embedded"]) {
      const single = num(get("campaign", db, "one batch"), "itemsPerSecond")
      for (const variant of ["one batch", ...campaignVariants]) {
        const r = get("campaign", db, variant)
        if (r === undefined) continue
        const isCampaign = variant !== "one batch"
        lines.push(
          `| ${db} | ${variant} | ${fmt(num(r, "itemsPerSecond"))} | ${ratio(num(r, "itemsPerSecond"), single)} | ${
            fmt(num(r, "submitMs"))
          } | ${fmt(num(r, "submitToFirstStartMs"))} | ${isCampaign ? fmt(num(r, "batchStartToFirstItemMs")) : "–"} | ${
            fmt(num(r, "batchLastItemToSettledMs"))
          } | ${
            isCampaign ? `${fmt(num(r, "settledToNextStartMs"))} / ${fmt(num(r, "settledToNextStartMaxMs"))}` : "–"
          } | ${isCampaign ? fmt(num(r, "lastBatchToSettledMs")) : "–"} | ${
            isCampaign ? fmt(num(r, "occupancy"), 2) : "–"
          } | ${fmt(num(r, "nodeCpuUsPerItem"))} | ${fmt(num(r, "serverCpuUsPerItem"))} | ${
            r.extra?.["exactlyOnce"] ?? "–"
          } |`
        )
      }
    }
    lines.push("")
  }
  if (selected("load")) {
    const kinds = ["CreateBatch", "GetBatch", "GetProgress", "ListItems", "GetResults", "ListBatches", "all"]
    lines.push(
      "### Load: RPC mix over HTTP (postgres), latency p50 / p95 / p99 / max (ms)",
      "",
      `| concurrency | requests/s | errors | ${
        kinds.join(" | ")
      } | heap before → after (MiB, after GC) | growth | Node CPU / Postgres CPU per request (ms) | Node CPU share |`,
      `|---:|---:|---:|${kinds.map(() => "---:|").join("")}---:|---:|---:|---:|`
    )
    for (const concurrency of [1, 16]) {
      const r = get("load-rpc", "postgres", `concurrency ${concurrency}`)
      if (r === undefined) continue
      const cell = (kind: string) =>
        ["P50", "P95", "P99", "Max"].map((p) => fmt(num(r, `${kind}${p}Ms`), 1)).join(" / ")
      lines.push(
        `| ${concurrency} | ${fmt(num(r, "requestsPerSecond"))} | ${fmt(num(r, "errors"))} | ${
          kinds.map(cell).join(" | ")
        } | ${fmt(num(r, "heapBeforeMiB"), 1)} → ${fmt(num(r, "heapAfterMiB"), 1)} | ${
          fmt(num(r, "heapGrowthPct"), 1)
        }% | ${fmt(num(r, "nodeCpuMsPerRequest"), 2)} / ${fmt(num(r, "serverCpuMsPerRequest"), 2)} | ${
          fmt(num(r, "nodeCpuShare"), 2)
        } |`
      )
    }
    const idle = get("load-idle-get", "postgres", "sequential GetBatch")
    if (idle !== undefined) {
      lines.push(
        "",
        `Idle server, ${fmt(idle.items)} sequential GetBatch: p50 / p95 / p99 / max ${
          ["P50", "P95", "P99", "Max"].map((p) => fmt(num(idle, `get${p}Ms`), 2)).join(" / ")
        } ms, ${fmt(num(idle, "errors"))} errors; Node CPU / Postgres CPU per request ${
          fmt(num(idle, "nodeCpuMsPerRequest"), 2)
        } / ${fmt(num(idle, "serverCpuMsPerRequest"), 2)} ms`
      )
    }
    lines.push(
      "",
      "| database | items | submit (CreateBatch) ms | total ms | items/s (submit → Completed) | run phase items/s | peak RSS − baseline (MiB) | peak heap − baseline (MiB) |",
      "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for (const db of ["postgres", "embedded"]) {
      const r = [...summary.values()].find((x) => x.bench === "load-large" && x.db === db)
      if (r === undefined) continue
      lines.push(
        `| ${db} | ${fmt(r.items)} | ${fmt(num(r, "submitMs"))} | ${fmt(r.ms)} | ${fmt(num(r, "itemsPerSecond"))} | ${
          fmt(num(r, "runPhaseItemsPerSecond"))
        } | ${fmt(num(r, "rssPeakMiB"), 1)} | ${fmt(num(r, "heapPeakMiB"), 1)} |`
      )
    }
    lines.push("")
  }
  if (selected("peer")) {
    lines.push(
      "### Peer: graphile-worker 0.18 (jobs added first, then the worker started; run phase until the jobs table is empty)",
      "",
      "| workload | system | items/s (add → done) | run phase items/s | efficiency (run phase) | add / enqueue ms | Node process CPU µs/item | server CPU µs/item | exactly-once |",
      "|---|---|---:|---:|---:|---:|---:|---:|---|"
    )
    for (const bench of ["w1", "w2", "w3", "enqueue"]) {
      for (const variant of ["tuned", "default"]) {
        const r = get(bench, "postgres", `graphile-worker ${variant}`)
        if (r === undefined) continue
        lines.push(
          `| ${bench} | graphile-worker ${variant} | ${fmt(num(r, "itemsPerSecond"))} | ${
            fmt(num(r, "runPhaseItemsPerSecond"))
          } | ${fmt(num(r, "efficiency"), 2)} | ${fmt(num(r, "submitMs") ?? num(r, "enqueueMs"))} | ${
            fmt(num(r, "nodeCpuUsPerItem"))
          } | ${fmt(num(r, "serverCpuUsPerItem"))} | ${r.extra?.["exactlyOnce"] ?? "–"} |`
        )
      }
    }
    lines.push("")
  }
  process.stdout.write(lines.join("\n") + "\n")
}

/** One cell of the comparison: a workload run by one system, in a fresh child process. */
interface Entry {
  readonly workload: "w1" | "w2" | "w3" | "enqueue"
  readonly system: string
  readonly job: Job
}

/** One run of an entry: its result, or why it failed. */
interface Run {
  readonly round: number
  readonly workload: string
  readonly system: string
  readonly job: Job
  readonly loadAverage: number
  readonly startedAt: string
  readonly wallMs: number
  readonly result?: Result | undefined
  readonly error?: string | undefined
}

const compareWorkloads = ["w1", "w2", "w3", "enqueue"] as const
const compareSelected = (workload: string) => only === undefined || only.includes("peer") || only.includes(workload)

/** The comparison, grouped by workload: effect-batch's children and graphile-worker's, tuned and default. */
const compareEntries = (): Array<Array<Entry>> => {
  const entry = (workload: Entry["workload"], system: string, name: string, options: Record<string, unknown>) => ({
    workload,
    system,
    job: { group: "peer", name, options }
  })
  const graphile = (workload: Entry["workload"], items: number, concurrency: number) =>
    ["tuned", "default"].map((variant) =>
      entry(workload, `graphile-worker ${variant}`, "graphile", { workload, variant, items, concurrency })
    )
  const groups: Record<Entry["workload"], Array<Entry>> = {
    w1: [
      entry("w1", "effect-batch", "workload", {
        name: "w1",
        db: "postgres",
        items: loopItems,
        concurrency: 16,
        repeat: 1
      }),
      ...graphile("w1", loopItems, 16),
      entry("w1", "effect-batch embedded", "workload", {
        name: "w1",
        db: "embedded",
        items: loopItems,
        concurrency: 16,
        repeat: 1
      })
    ],
    w2: [
      entry("w2", "effect-batch", "workload", {
        name: "w2",
        db: "postgres",
        items: sleepyItems,
        concurrency: 50,
        repeat: 1
      }),
      ...graphile("w2", sleepyItems, 50)
    ],
    w3: [entry("w3", "effect-batch", "w3", { items: loopItems, concurrency: 16 }), ...graphile("w3", loopItems, 16)],
    enqueue: [
      entry("enqueue", "effect-batch", "enqueue", { items: loopItems, concurrency: 16 }),
      ...graphile("enqueue", loopItems, 16)
    ]
  }
  return compareWorkloads.filter(compareSelected).map((workload) => groups[workload])
}

/** The process group of the child running now, killed on a timeout or when this process is interrupted. */
let activeChild: ChildProcess.ChildProcess | undefined

const killGroup = (proc: ChildProcess.ChildProcess) => {
  try {
    if (proc.pid !== undefined) process.kill(-proc.pid, "SIGKILL")
  } catch {
    // already gone
  }
}

/** The benchmark databases on the server now (`freshPostgres` names them `effect_batch_bench_…`). */
const benchDatabases = async () => {
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'effect\\_batch\\_bench\\_%'"
    )
    return new Set(rows.map((row) => row.datname))
  } finally {
    await admin.end()
  }
}

/** Drops the benchmark databases a killed child left behind (those that appeared while it ran). */
const dropLeftovers = async (before: ReadonlySet<string>) => {
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    for (const name of await benchDatabases()) {
      if (before.has(name)) continue
      process.stderr.write(`dropping ${name}, left by the killed child\n`)
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    }
  } finally {
    await admin.end()
  }
}

/**
 * Runs one child in its own process group (so that a timeout also ends the worker processes it
 * spawned); never rejects: a failure comes back as an error message.
 */
const runChildGuarded = (job: Job) =>
  new Promise<{ readonly results: Array<Result>; readonly error?: string }>((resolve) => {
    const proc = ChildProcess.spawn(
      process.execPath,
      ["--expose-gc", ...childArgs([job.name, JSON.stringify(job.options)])],
      { stdio: ["ignore", "pipe", "inherit"], detached: true }
    )
    activeChild = proc
    let output = ""
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(proc)
    }, childTimeoutMs)
    proc.stdout.on("data", (data: Buffer) => {
      output += data.toString()
    })
    const results = () =>
      output.split("\n").filter((line) => line.startsWith(resultPrefix)).map((line) =>
        JSON.parse(line.slice(resultPrefix.length)) as Result
      )
    proc.on("error", (error) => {
      clearTimeout(timer)
      resolve({ results: [], error: String(error) })
    })
    proc.on("exit", (code, signal) => {
      clearTimeout(timer)
      activeChild = undefined
      if (timedOut) return resolve({ results: results(), error: `timed out after ${childTimeoutMs / 1000} s` })
      if (code !== 0) return resolve({ results: results(), error: `exited with ${code ?? signal}` })
      resolve({ results: results() })
    })
  })

const numberField = (r: Result | undefined, field: string) => {
  const value = r?.extra?.[field]
  return typeof value === "number" ? value : undefined
}

/** The median of a field over the runs that have it. */
const medianOf = (runs: ReadonlyArray<Run>, field: string) => {
  const values = runs.map((run) => numberField(run.result, field)).filter((v): v is number => v !== undefined)
  return values.length === 0 ? undefined : median(values)
}

/** effect-batch W1, W2, W3 and enqueue interleaved with graphile-worker's within each round. */
const compareMain = async () => {
  const groups = compareEntries()
  const started = new Date()
  const resultsDir = Path.join(here, "results")
  Fs.mkdirSync(resultsDir, { recursive: true })
  const file = Path.join(resultsDir, `compare-${started.toISOString().replaceAll(":", "-").replace(/\..*/, "")}.json`)
  const command = ["node", "--conditions=@effect-batch/source", "--import", "tsx", "bench/run.ts", ...args].join(" ")
  const runs: Array<Run> = []
  const save = () =>
    Fs.writeFileSync(
      file,
      JSON.stringify(
        {
          command,
          node: process.version,
          cores: Os.cpus().length,
          rounds,
          startedAt: started.toISOString(),
          runs
        },
        null,
        2
      ) + "\n"
    )
  process.on("SIGINT", () => {
    if (activeChild !== undefined) killGroup(activeChild)
    save()
    process.exit(130)
  })
  for (let round = 1; round <= rounds; round++) {
    for (const group of groups) {
      // Rotate the order within a workload from round to round, so no system always runs first.
      const shift = (round - 1) % group.length
      for (const entry of [...group.slice(shift), ...group.slice(0, shift)]) {
        const loadAverage = Os.loadavg()[0] ?? 0
        process.stderr.write(
          `round ${round}: ${entry.workload} ${entry.system}: ${entry.job.name} ${
            JSON.stringify(entry.job.options)
          } (load ${loadAverage.toFixed(1)})\n`
        )
        const startedAt = new Date().toISOString()
        const t0 = performance.now()
        const before = await benchDatabases()
        const { error, results } = await runChildGuarded(entry.job)
        if (error !== undefined) await dropLeftovers(before)
        const result = results[0]
        const failure = error ?? (result === undefined ? "no result" : undefined)
        if (failure !== undefined) {
          process.stderr.write(`FAILED round ${round}: ${entry.workload} ${entry.system}: ${failure}\n`)
        }
        runs.push({
          round,
          workload: entry.workload,
          system: entry.system,
          job: entry.job,
          loadAverage,
          startedAt,
          wallMs: Math.round(performance.now() - t0),
          result,
          error: failure
        })
        save()
      }
    }
  }

  const ok = (workload: string, system: string) =>
    runs.filter((run) => run.workload === workload && run.system === system && run.error === undefined)
  const fmt = (n: number | undefined, digits = 0) =>
    n === undefined ? "" : n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b === 0 ? "" : `${(a / b * 100).toFixed(0)}%`
  const loads = runs.map((run) => run.loadAverage)
  const lines: Array<string> = [
    `\`${command}\``,
    "",
    `${started.toISOString()}, node ${process.version}, ${Os.cpus().length} cores, ${rounds} round(s), median of the successful rounds; load average (1 min, at each child's start) ${
      fmt(Math.min(...loads), 1)
    }–${fmt(Math.max(...loads), 1)}, ${fmt(Os.loadavg()[0], 1)} at the end; raw results: ${
      Path.relative(process.cwd(), file)
    }`,
    "",
    "| workload | system | runs ok | items/s (submit → done) | run phase items/s | efficiency (run phase) | submit / enqueue ms | Node process CPU µs/item | server CPU µs/item | exactly-once |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
  ]
  for (const group of groups) {
    for (const entry of group) {
      const good = ok(entry.workload, entry.system)
      const all = runs.filter((run) => run.workload === entry.workload && run.system === entry.system).length
      const once = good.map((run) => run.result?.extra?.["exactlyOnce"]).filter((v) => v !== undefined)
      lines.push(
        `| ${entry.workload} | ${entry.system} | ${good.length}/${all} | ${fmt(medianOf(good, "itemsPerSecond"))} | ${
          entry.workload === "enqueue" ? "" : fmt(medianOf(good, "runPhaseItemsPerSecond"))
        } | ${fmt(medianOf(good, "efficiency"), 2)} | ${
          fmt(entry.workload === "enqueue" ? medianOf(good, "enqueueMs") : medianOf(good, "submitMs"))
        } | ${fmt(medianOf(good, "nodeCpuUsPerItem"))} | ${fmt(medianOf(good, "serverCpuUsPerItem"))} | ${
          once.length === 0 ? "" : once.every((v) => v === true) ? "yes" : "**no**"
        } |`
      )
    }
  }
  const measures: Array<[Entry["workload"], string, string]> = [
    ["w1", "run phase items/s", "runPhaseItemsPerSecond"],
    ["w1", "items/s (submit → done)", "itemsPerSecond"],
    ["w2", "efficiency (run phase)", "efficiency"],
    ["w3", "run phase items/s", "runPhaseItemsPerSecond"],
    ["w3", "items/s (submit → done)", "itemsPerSecond"],
    ["enqueue", "enqueue ms (lower is better)", "enqueueMs"]
  ]
  lines.push(
    "",
    "| workload | measure | effect-batch | graphile-worker tuned | effect-batch / graphile-worker tuned |",
    "|---|---|---:|---:|---:|"
  )
  for (const [workload, label, field] of measures) {
    if (!groups.some((group) => group[0]?.workload === workload)) continue
    const ours = medianOf(ok(workload, "effect-batch"), field)
    const theirs = medianOf(ok(workload, "graphile-worker tuned"), field)
    const digits = field === "efficiency" ? 2 : 0
    lines.push(`| ${workload} | ${label} | ${fmt(ours, digits)} | ${fmt(theirs, digits)} | ${ratio(ours, theirs)} |`)
  }
  const failures = runs.filter((run) => run.error !== undefined)
  if (failures.length > 0) {
    lines.push("", "Failed children (cells left empty):")
    for (const run of failures) lines.push(`- round ${run.round}, ${run.workload}, ${run.system}: ${run.error}`)
  }
  process.stdout.write(lines.join("\n") + "\n")
}
;(compare ? compareMain() : main()).catch((error) => {
  console.error(error)
  process.exit(1)
})
