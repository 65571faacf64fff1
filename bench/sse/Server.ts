/**
 * The server side of the SSE fan-out benchmark, run in a process of its own: the HTTP server over a
 * fresh database, one batch of gated items (nothing runs until the coordinator says `go`), and the
 * clocks the latencies are measured from:
 *
 * - `written`: `clock_timestamp()` in an `AFTER INSERT` trigger on the event table (bench-only, added to
 *   the fresh database), i.e. when the event's row is written by the statement that commits it.
 * - `at`: the event's own `at`, the app clock read by the writer just before that statement.
 * - `announced`: when the orchestrator announces the commit (`Notifier.notify`, wrapped here).
 *
 * It talks to the coordinator in lines: `Message`s on stdout, `go` and `report` on stdin.
 */
import { BatchConfig, Ids } from "@effect-batch/domain"
import { BatchOrchestrator, EffectBatch, Http, Workflow, WorkflowRegistry } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { Notifier } from "@effect-batch/tables/Notifier"
import { Tables } from "@effect-batch/tables/Tables"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Inspector from "node:inspector/promises"
import * as Readline from "node:readline"
import { makeWallClock } from "./Subscribers.js"

/** The only tenant, and its token. */
export const token = "sse-fanout-bench-token-0123456789"
const tenant = Schema.decodeSync(Ids.TenantId)("bench")

/** What the coordinator asks for. */
export const ServerOptions = Schema.Struct({
  db: Schema.Literal("postgres", "embedded"),
  subscribers: Schema.Int,
  items: Schema.Int,
  concurrency: Schema.Int,
  ms: Schema.Number,
  /** CPU profiles of this process: `PREFIX-connect.cpuprofile` (until `go`), `PREFIX-run.cpuprofile` (then) */
  profile: Schema.optional(Schema.String)
})
export type ServerOptions = typeof ServerOptions.Type

/** `[seq, wall-clock ms]` pairs. */
const Times = Schema.Array(Schema.Tuple(Schema.Number, Schema.Number))

/** The server is listening and the batch's first items are claimed (and held by the gate). */
export const Ready = Schema.TaggedStruct("Ready", {
  url: Schema.String,
  batchId: Schema.String,
  /** the batch's last sequence before `go`: every later event is live */
  seq: Schema.Number
})

/** The measurements of the server side, sent once every subscriber has finished. */
export const Report = Schema.TaggedStruct("Report", {
  state: Schema.String,
  lastSeq: Schema.Number,
  /** from `go` until the batch settled */
  runMs: Schema.Number,
  written: Times,
  at: Times,
  /** each event's tag, in sequence order */
  tags: Schema.Array(Schema.String),
  announced: Times,
  /** this process, from `Ready` until `go` (the subscribers connecting) */
  connectCpuMs: Schema.Number,
  /** this process's heap and RSS after forced GCs (bytes): before the subscribers connect, and once all have */
  memoryBefore: Schema.Struct({ heap: Schema.Number, rss: Schema.Number }),
  memoryConnected: Schema.Struct({ heap: Schema.Number, rss: Schema.Number }),
  /** this process, from `go` until the report was asked for */
  cpuMs: Schema.Number,
  /** the Postgres backends of the benchmark's database over the same span (null: embedded) */
  databaseCpuMs: Schema.NullOr(Schema.Number)
})

/** A line from the server process. */
export const Message = Schema.Union(Ready, Report)
export type Message = typeof Message.Type

/** The prefix of the server's message lines on stdout (other lines are logs). */
export const messagePrefix = "SSE_FANOUT "

const send = (message: Message) =>
  Effect.sync(() => {
    process.stdout.write(`${messagePrefix}${JSON.stringify(Schema.encodeSync(Message)(message))}\n`)
  })

class NeverFails extends Schema.TaggedError<NeverFails>()("NeverFails", {}) {}

/** Waits for the gate, then sleeps `ms`. */
const gated = (gate: Deferred.Deferred<void>) =>
  Workflow.make({
    name: "gated",
    input: Schema.Struct({ ms: Schema.Number }),
    output: Schema.Struct({ slept: Schema.Number }),
    error: NeverFails,
    run: (input) =>
      Deferred.await(gate).pipe(
        Effect.zipRight(Effect.sleep(Duration.millis(input.ms))),
        Effect.as({ slept: input.ms })
      )
  })

/** The database with its `Notifier` wrapped to record when each commit is announced. */
const recordingDatabase = (db: TestDatabase.TestDatabase, announced: Array<readonly [number, number]>) => {
  const now = makeWallClock()
  return Layer.effectContext(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const notifier = yield* Notifier
    return Context.make(SqlClient.SqlClient, sql).pipe(Context.add(
      Notifier,
      Notifier.of({
        notify: (channel, payload) =>
          Effect.suspend(() => {
            // event notices are `batchId:seq`; command notices (a bare batch id) are not announcements
            const seq = Number(payload.slice(payload.lastIndexOf(":") + 1))
            if (payload.includes(":") && Number.isFinite(seq)) announced.push([seq, now()])
            return notifier.notify(channel, payload)
          }),
        listen: notifier.listen
      })
    ))
  })).pipe(Layer.provide(db))
}

/** A bench-only trigger recording when each event row is written (the database's own clock). */
const installCommitClock = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const t = yield* Tables
  yield* sql.unsafe("CREATE TABLE bench_commit_clock (seq bigint NOT NULL, written_ms double precision NOT NULL)")
  yield* sql.unsafe(`CREATE FUNCTION bench_commit_clock() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO bench_commit_clock VALUES (NEW.seq, extract(epoch FROM clock_timestamp()) * 1000);
      RETURN NULL;
    END $$`)
  yield* sql.unsafe(`CREATE TRIGGER bench_commit_clock AFTER INSERT ON ${t.events}
    FOR EACH ROW EXECUTE FUNCTION bench_commit_clock()`)
})

const Pairs = Schema.Array(Schema.Struct({ seq: Schema.NumberFromString, ms: Schema.Number }))

/** `[seq, ms]` pairs from a query whose columns are `seq` (text) and `ms` (a double). */
const pairs = (query: string) =>
  SqlClient.SqlClient.pipe(
    Effect.flatMap((sql) => sql.unsafe(query)),
    Effect.flatMap(Schema.decodeUnknown(Pairs)),
    Effect.map((rows) => rows.map((row) => [row.seq, row.ms] as const))
  )

const clockTicks = 100

/** Heap and RSS after two forced GCs (the server runs with `--expose-gc`). */
const memory = Effect.promise(async () => {
  const gc = (globalThis as { gc?: () => void }).gc
  for (let i = 0; i < 2; i++) {
    gc?.()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const usage = process.memoryUsage()
  return { heap: usage.heapUsed, rss: usage.rss }
})

/** CPU milliseconds used so far by process `pid` (Linux `/proc`; 0 once it has exited). */
const pidCpuMs = (pid: number) => {
  try {
    const fields = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? []
    return (Number(fields[11]) + Number(fields[12])) * 1000 / clockTicks
  } catch {
    return 0
  }
}

/** CPU milliseconds used so far by each Postgres backend serving this database. */
const backendsCpu = SqlClient.SqlClient.pipe(
  Effect.flatMap((sql) => sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`),
  Effect.map((rows) => new Map(rows.map(({ pid }) => [pid, pidCpuMs(pid)] as const)))
)

const processCpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

/** Profiles this process (V8's CPU profiler) until the returned effect writes the profile to `file`. */
const startProfile = (file: string | undefined) =>
  file === undefined ? Effect.succeed(Effect.void) : Effect.promise(async () => {
    const session = new Inspector.Session()
    session.connect()
    await session.post("Profiler.enable")
    await session.post("Profiler.setSamplingInterval", { interval: 200 })
    await session.post("Profiler.start")
    return Effect.promise(async () => {
      const { profile } = await session.post("Profiler.stop")
      Fs.writeFileSync(file, JSON.stringify(profile))
      session.disconnect()
    })
  })

/** Lines read from stdin. */
const stdinLines = Effect.acquireRelease(
  Effect.gen(function*() {
    const lines = yield* Queue.unbounded<string>()
    const reader = Readline.createInterface({ input: process.stdin })
    reader.on("line", (line) => Queue.unsafeOffer(lines, line.trim()))
    return { lines, reader }
  }),
  ({ reader }) => Effect.sync(() => reader.close())
)

/**
 * Serves one gated batch to the coordinator: `Ready`, then on `go` opens the gate, then on `report`
 * sends the `Report`.
 */
export const serve = (options: ServerOptions) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const workflow = gated(gate)
    const announced: Array<readonly [number, number]> = []
    const db = options.db === "postgres" ? TestDatabase.layerPostgres : TestDatabase.layerEmbedded
    const server = Http.layer({
      port: 0,
      host: "127.0.0.1",
      config: { maxStreamsPerTenant: options.subscribers + 16 }
    }).pipe(
      Layer.provideMerge(Http.layerAuth([{ token, tenant }])),
      Layer.provideMerge(EffectBatch.layer.pipe(Layer.provide(WorkflowRegistry.layer(workflow)))),
      Layer.provideMerge(recordingDatabase(db, announced)),
      Layer.orDie
    )
    const { lines } = yield* stdinLines
    const expect = (word: string) =>
      Queue.take(lines).pipe(Effect.filterOrDieMessage((line) => line === word, `expected "${word}" on stdin`))

    return yield* Effect.gen(function*() {
      const url = yield* Http.url
      yield* installCommitClock
      const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
      const config = yield* BatchConfig.decode({ concurrency: options.concurrency })
      const items = Array.from(
        { length: options.items },
        (_, i) => ({ key: `item-${String(i).padStart(6, "0")}`, input: { ms: options.ms } })
      )
      const caller = { tenant }
      const batch = yield* orchestrator.submit(workflow, items, config, caller)
      // the first claim (ItemStarted for the first `concurrency` items) is in before anyone subscribes
      const claimed = Math.min(options.concurrency, options.items) + 2
      const before = yield* orchestrator.get(caller, batch.id).pipe(
        Effect.zipLeft(Effect.sleep("20 millis")),
        Effect.repeat({ until: (view) => view.lastSeq >= claimed })
      )
      const profile = (phase: string) =>
        startProfile(options.profile === undefined ? undefined : `${options.profile}-${phase}.cpuprofile`)
      const memoryBefore = yield* memory
      const connectProfile = yield* profile("connect")
      const connectCpuStart = processCpuMs()
      yield* send(Ready.make({ url, batchId: batch.id, seq: before.lastSeq }))

      yield* expect("go")
      yield* connectProfile
      const connectCpuMs = processCpuMs() - connectCpuStart
      const memoryConnected = yield* memory
      const cpuStart = processCpuMs()
      const runProfile = yield* profile("run")
      const databaseStart = options.db === "postgres" ? yield* backendsCpu : new Map<number, number>()
      const started = performance.now()
      yield* Deferred.succeed(gate, undefined)
      const settled = yield* orchestrator.await(caller, batch.id)
      const runMs = performance.now() - started

      yield* expect("report")
      const cpuMs = processCpuMs() - cpuStart
      yield* runProfile
      const databaseEnd = options.db === "postgres" ? yield* backendsCpu : new Map<number, number>()
      let databaseCpuMs = 0
      for (const [pid, ms] of databaseEnd) databaseCpuMs += ms - (databaseStart.get(pid) ?? 0)
      const t = yield* Tables
      const written = yield* pairs("SELECT seq::text AS seq, written_ms AS ms FROM bench_commit_clock ORDER BY seq")
      const at = yield* pairs(`SELECT seq::text AS seq, at_ms::float8 AS ms FROM ${t.events} ORDER BY seq`)
      const sql = yield* SqlClient.SqlClient
      const tags = yield* sql<{ tag: string }>`SELECT tag FROM ${sql(t.events)} ORDER BY seq`
      const last = yield* orchestrator.get(caller, batch.id)
      yield* send(Report.make({
        state: settled.state._tag,
        lastSeq: last.lastSeq,
        runMs,
        written,
        at,
        tags: tags.map((row) => row.tag),
        announced,
        connectCpuMs,
        memoryBefore,
        memoryConnected,
        cpuMs,
        databaseCpuMs: options.db === "postgres" ? databaseCpuMs : null
      }))
    }).pipe(Effect.provide(server))
  }).pipe(Effect.scoped)
