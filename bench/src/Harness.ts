/**
 * What every benchmark shares: fresh databases, timing, memory sampling and the result format.
 */
import { Ids } from "@effect-batch/domain"
import { Database, Migrations, PgliteClient, TestDatabase } from "@effect-batch/tables"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import pg from "pg"

/** The server benchmarks create their databases on (`BENCH_DATABASE_URL`, default the local Postgres). */
export const serverUrl = process.env["BENCH_DATABASE_URL"] ?? TestDatabase.defaultServerUrl

export type DbKind = "postgres" | "embedded"

/** What every orchestrator measurement is sized by: the database, the items and their concurrency. */
export interface Sizing {
  readonly db: DbKind
  readonly items: number
  readonly concurrency: number
}

/** A result line a child process prints for the parent. */
export interface Result {
  readonly bench: string
  readonly db?: DbKind | undefined
  readonly variant: string
  readonly items: number
  readonly ms: number
  readonly extra?: Record<string, number | string | boolean> | undefined
}

export const resultPrefix = "BENCH_RESULT "

/** Prints a result for the parent process (one line of JSON). */
export const report = (result: Result) =>
  Effect.sync(() => {
    process.stdout.write(`${resultPrefix}${JSON.stringify(result)}\n`)
  })

export const tenant = Schema.decodeSync(Ids.TenantId)("bench")
export const noopName = Schema.decodeSync(Ids.WorkflowName)("noop")
export const newBatchId = () => Schema.decodeSync(Ids.BatchId)(Crypto.randomUUID())

/** Item keys sort in submission order. */
export const itemKey = (i: number) => `item-${String(i).padStart(7, "0")}`

/** Milliseconds since `start` (a `performance.now()` reading). */
export const since = (start: number) => performance.now() - start

/** A fresh database on the server, dropped when the scope closes; gives its URL. */
export const freshPostgres = Effect.acquireRelease(
  Effect.promise(async () => {
    const name = `effect_batch_bench_${Crypto.randomUUID().replaceAll("-", "")}`
    const admin = new pg.Client({ connectionString: serverUrl })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${name}`)
    await admin.end()
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    return { name, url: url.toString() }
  }),
  ({ name }) =>
    Effect.promise(async () => {
      const admin = new pg.Client({ connectionString: serverUrl })
      await admin.connect()
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await admin.end()
    })
)

/**
 * A fresh database of the kind for one measurement (a server database dropped with the scope, or an
 * in-memory embedded one), and how to read the server's CPU so far (0 for the embedded one).
 */
export const freshDatabase = (db: DbKind) =>
  Effect.map(db === "postgres" ? Effect.map(freshPostgres, ({ url }) => url) : Effect.succeed(undefined), (url) => ({
    url,
    layer: url === undefined ? Database.layerEmbedded({}) : Database.layerPostgres(url),
    serverCpu: url === undefined ? Effect.succeed(0) : serverCpuMs(url)
  }))

/** The median of some numbers (0 for none). */
export const median = (values: ReadonlyArray<number>) => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] ?? 0 : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}

/** A migrated fresh server database at `url`, with event notifications. */
export const migratedPostgres = (url: string) => Layer.provideMerge(Migrations.layer, Database.layerPostgres(url))

/** A migrated fresh in-memory embedded database, with the PGlite client itself for direct drivers. */
export const migratedEmbedded = Layer.provideMerge(Migrations.layer, PgliteClient.layer({}))

/** Samples `rss` and `heapUsed` every few milliseconds; `stop` gives the peaks above the baseline (MiB). */
export const memorySampler = () => {
  const global = globalThis
  if ("gc" in global && typeof global.gc === "function") global.gc()
  const baseline = process.memoryUsage()
  let rss = baseline.rss
  let heap = baseline.heapUsed
  const sample = () => {
    const m = process.memoryUsage()
    rss = Math.max(rss, m.rss)
    heap = Math.max(heap, m.heapUsed)
  }
  const timer = setInterval(sample, 5)
  return {
    stop: () => {
      clearInterval(timer)
      sample()
      const mib = (bytes: number) => Math.round(bytes / 1024 / 1024 * 10) / 10
      return { rssPeakMiB: mib(rss - baseline.rss), heapPeakMiB: mib(heap - baseline.heapUsed) }
    }
  }
}

/** Runs `f` with a connected `pg` client. */
export const withPg = <A>(url: string, f: (client: pg.Client) => Promise<A>): Effect.Effect<A> =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return await f(client)
    } finally {
      await client.end()
    }
  })

const clockTicks = 100

/** CPU milliseconds used so far by process `pid` (Linux `/proc`; 0 once it has exited). */
export const pidCpuMs = (pid: number) => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 1000 / clockTicks
  } catch {
    return 0
  }
}

/**
 * CPU milliseconds used so far by the server processes serving the database at `url` (those of the
 * connections named `applicationName`, when given).
 */
export const serverCpuMs = (url: string, applicationName?: string) =>
  withPg(url, async (client) => {
    const { rows } = await client.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND ($1::text IS NULL OR application_name = $1)`,
      [applicationName ?? null]
    )
    return rows.reduce((sum, { pid }) => sum + pidCpuMs(pid), 0)
  })

/** CPU milliseconds used so far by this process. */
export const processCpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}
