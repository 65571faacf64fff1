/**
 * effect-batch benchmarks. Every measurement runs in a fresh child process (`child.ts`) on a fresh
 * database; ratios are taken between measurements of the same run.
 *
 *   bun run bench                       every benchmark, once
 *   bun run bench -- --only insert,w1   a selection: insert, claim, memory, floor, w1, w1-warm, w2, w3
 *   bun run bench -- --rounds 3         each measurement 3 times, reporting the median
 *   bun run bench -- --quick            smaller sizes (a smoke test of the harness)
 */
import * as ChildProcess from "node:child_process"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Url from "node:url"
import { type Result, resultPrefix } from "./src/Harness.js"

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
  for (const variant of ["repo-cycle", "repo-claim-complete", "direct-cycle"]) {
    add("claim", "claim", { db, variant, items: loopItems, concurrency: 16 })
  }
}
add("memory", "memory", { items: loopItems, concurrency: 16 })
for (const db of ["postgres", "embedded"]) {
  add("floor", "claim", { db, variant: "direct-cycle", items: loopItems, concurrency: 16, bench: "floor" })
  add("w1", "workload", { name: "w1", db, items: loopItems, concurrency: 16, repeat: 1 })
  add("w1-warm", "workload", { name: "w1", db, items: loopItems, concurrency: 16, repeat: 2 })
  add("w2", "workload", { name: "w2", db, items: sleepyItems, concurrency: 50, repeat: 1 })
}
add("w3", "w3", { items: loopItems, concurrency: 16 })

/** Runs one child process and collects its result lines. */
const runChild = (job: Job) =>
  new Promise<Array<Result>>((resolve, reject) => {
    const proc = ChildProcess.spawn(
      process.execPath,
      ["--expose-gc", "--import", "tsx", Path.join(here, "child.ts"), job.name, JSON.stringify(job.options)],
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

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] ?? 0 : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}

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
      const direct = num(get("claim", db, "direct-cycle"), "itemsPerSecond")
      for (const variant of ["repo-cycle", "repo-claim-complete", "direct-cycle"]) {
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
        const floor = num(get("floor", db, "direct-cycle"), "itemsPerSecond")
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
      const floor = get("floor", db, "direct-cycle")
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
  process.stdout.write(lines.join("\n") + "\n")
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
