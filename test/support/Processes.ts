/**
 * Test-side helpers of the durability tests: a fresh Postgres database per test, worker processes
 * (killed when the test's scope closes), an API-only orchestrator in the test process, and a reading
 * of what a batch recorded.
 */
import type { Ids, ItemCounts } from "@effect-batch/domain"
import { BatchOrchestrator, EffectBatch, Worker, WorkflowRegistry } from "@effect-batch/server"
import { Database, ItemRepo, type Notifier, Tables, TestDatabase } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Readline from "node:readline"
import * as Url from "node:url"
import { type ChildMessage, durableWork, parseLine } from "./Durable.js"
import { caller } from "./Harness.js"

const serverUrl = Config.string("TEST_DATABASE_URL").pipe(Config.withDefault(TestDatabase.defaultServerUrl))

const onServer = <A>(server: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) =>
  Effect.flatMap(SqlClient.SqlClient, f).pipe(Effect.provide(Database.layerPostgres(server)), Effect.orDie)

/**
 * A new database on the test server, dropped (`WITH (FORCE)`) when the scope closes. Gives its URL.
 */
export const freshDatabase = Effect.gen(function*() {
  const server = yield* Effect.orDie(serverUrl)
  const name = `effect_batch_durable_${Crypto.randomUUID().replaceAll("-", "")}`
  yield* Effect.acquireRelease(
    onServer(server, (sql) => sql`CREATE DATABASE ${sql(name)}`),
    () => onServer(server, (sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`)
  )
  const url = new URL(server)
  url.pathname = `/${name}`
  return url.toString()
})

/**
 * The orchestrator in the test process, API only (its worker loop does not run items), over
 * `database`, with that database's `SqlClient`.
 */
export const apiOn = <E>(database: Layer.Layer<SqlClient.SqlClient | Notifier.Notifier, E>) =>
  EffectBatch.layer.pipe(
    Layer.provide(Layer.mergeAll(
      WorkflowRegistry.layer(durableWork({ itemMs: 0 })),
      Worker.layerConfig({ enabled: false, pollInterval: Duration.millis(100) })
    )),
    Layer.provideMerge(database)
  )

/** `apiOn` the Postgres database at `url`. */
export const apiAt = (url: string) => apiOn(Database.layerPostgres(url))

/** A running worker process. */
export interface WorkerProcess {
  readonly owner: string
  readonly pid: number
  /** the messages it wrote so far */
  readonly messages: () => ReadonlyArray<ChildMessage>
  /** its other output (logs, stderr), for diagnostics */
  readonly output: () => string
  /** waits (up to `timeout`) for a message, failing early if the process exits */
  readonly waitFor: <A extends ChildMessage>(
    refinement: (message: ChildMessage) => message is A,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<A>
  /** sends `signal` and waits for the process to exit */
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
  readonly exited: () => boolean
}

const script = Url.fileURLToPath(new URL("./WorkerProcess.ts", import.meta.url))
const repoRoot = Url.fileURLToPath(new URL("../..", import.meta.url))
const outputTail = 20_000
const pollSchedule = Schedule.spaced("10 millis")

/**
 * Starts `node --conditions=@effect-batch/source --import tsx test/support/WorkerProcess.ts` on the database at `url`; SIGKILLs it when
 * the scope closes (if it still runs).
 */
export const spawnWorker = (options: {
  readonly url: string
  readonly owner: string
  readonly env?: Readonly<Record<string, string>>
}) =>
  Effect.acquireRelease(
    Effect.sync((): WorkerProcess => {
      const proc = ChildProcess.spawn(process.execPath, [
        "--conditions=@effect-batch/source",
        "--import",
        "tsx",
        script
      ], {
        cwd: repoRoot,
        env: { ...process.env, ...options.env, DATABASE_URL: options.url, OWNER: options.owner },
        // stdin stays open: the worker process exits when it closes (when this process dies)
        stdio: ["pipe", "pipe", "pipe"]
      })
      const messages: Array<ChildMessage> = []
      let output = ""
      const append = (text: string) => {
        output = (output + text).slice(-outputTail)
      }
      let exit: string | undefined
      proc.on("exit", (code, signal) => {
        exit = `exited with ${signal ?? code}`
      })
      proc.on("error", (error) => {
        exit = `could not start: ${error.message}`
      })
      Readline.createInterface({ input: proc.stdout }).on("line", (line) => {
        Option.match(parseLine(line), {
          onNone: () => append(`${line}\n`),
          onSome: (message) => messages.push(message)
        })
      })
      proc.stderr.on("data", (chunk: Buffer) => append(chunk.toString()))
      const exited = () => exit !== undefined
      const describe = (what: string) =>
        `${options.owner} (pid ${proc.pid}): ${what}${exit === undefined ? "" : `; ${exit}`}\n${output}`
      const waitFor = <A extends ChildMessage>(
        refinement: (message: ChildMessage) => message is A,
        timeout: Duration.DurationInput = "60 seconds"
      ) =>
        Effect.suspend(() => {
          const found = messages.find(refinement)
          if (found !== undefined) return Effect.succeed(found)
          return exited() ? Effect.dieMessage(describe("exited while waiting")) : Effect.fail("not yet")
        }).pipe(
          Effect.retry(pollSchedule),
          Effect.timeoutFail({ duration: timeout, onTimeout: () => describe("no such message in time") }),
          Effect.orDie
        )
      const kill = (signal: NodeJS.Signals) =>
        Effect.async<void>((resume) => {
          if (exited()) return resume(Effect.void)
          proc.once("exit", () => resume(Effect.void))
          proc.kill(signal)
        })
      return {
        owner: options.owner,
        pid: proc.pid ?? -1,
        messages: () => messages,
        output: () => output,
        waitFor,
        kill,
        exited
      }
    }),
    (child) => child.kill("SIGKILL")
  )

/** Polls `check` every 10 ms until it holds; dies with `what` after `timeout`. */
export const pollUntil = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  timeout: Duration.DurationInput = "60 seconds"
) =>
  check.pipe(
    Effect.repeat({ until: (done) => done, schedule: pollSchedule }),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => `not reached in time: ${what}` }),
    Effect.orDie,
    Effect.asVoid
  )

const Ledger = Schema.Struct({
  itemSucceeded: Schema.Number,
  distinctSucceeded: Schema.Number,
  maxPerKey: Schema.Number,
  otherOutcomes: Schema.Number,
  lostAttempts: Schema.Number,
  events: Schema.Number,
  minSeq: Schema.NullOr(Schema.Number),
  maxSeq: Schema.NullOr(Schema.Number),
  reRuns: Schema.Number
})

/**
 * What a batch recorded, read from the tables: its row's counters against counts derived from its
 * item rows, its `ItemSucceeded` events per key, its failures (`otherOutcomes`; a retry of an attempt
 * lost with its process is counted apart, as `lostAttempts`), and its event sequences. Read in one
 * snapshot (repeatable read), so that workers committing meanwhile cannot make the counters and the
 * rows disagree.
 */
export const ledger = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.orDie(sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`)
    const t = yield* Tables.Tables
    const events = sql(t.events)
    const rows = yield* sql`
      WITH ok AS (
        SELECT payload->>'itemKey' AS key, count(*)::int AS n FROM ${events}
        WHERE batch_id = ${batchId}::uuid AND tag = 'ItemSucceeded' GROUP BY 1
      )
      SELECT
        (SELECT COALESCE(sum(n), 0)::int FROM ok) AS "itemSucceeded",
        (SELECT count(*)::int FROM ok) AS "distinctSucceeded",
        (SELECT COALESCE(max(n), 0)::int FROM ok) AS "maxPerKey",
        (SELECT count(*)::int FROM ${events} WHERE batch_id = ${batchId}::uuid
          AND tag IN ('ItemFailed', 'ItemQuarantined', 'ItemSkipped', 'ItemRetryScheduled')
          AND NOT (tag = 'ItemRetryScheduled' AND payload->'error'->>'category' = 'worker-lost')) AS "otherOutcomes",
        (SELECT count(*)::int FROM ${events} WHERE batch_id = ${batchId}::uuid AND tag = 'ItemRetryScheduled'
          AND payload->'error'->>'category' = 'worker-lost') AS "lostAttempts",
        (SELECT count(*)::int FROM ${events} WHERE batch_id = ${batchId}::uuid) AS events,
        (SELECT min(seq) FROM ${events} WHERE batch_id = ${batchId}::uuid) AS "minSeq",
        (SELECT max(seq) FROM ${events} WHERE batch_id = ${batchId}::uuid) AS "maxSeq",
        (SELECT count(*)::int FROM ${events} WHERE batch_id = ${batchId}::uuid AND tag = 'ItemStarted'
          AND (payload->>'attempt')::int > 1) AS "reRuns"
    `.pipe(Effect.flatMap(Schema.decodeUnknown(Schema.Array(Ledger))), Effect.orDie)
    const recorded = yield* Effect.fromNullable(rows[0]).pipe(Effect.orDie)
    const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
    const batch = yield* Effect.orDie(orchestrator.get(caller, batchId))
    const derived: ItemCounts.ItemCounts = yield* Effect.orDie(
      Effect.flatMap(ItemRepo.ItemRepo, (items) => items.countFromItems(batchId))
    )
    return { ...recorded, batch, derived }
  }).pipe((read) => Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.orDie(sql.withTransaction(read))))

/** Every item succeeded exactly once; the counters match the item rows; sequences are gapless. */
export const assertCompletedOnce = (batchId: Ids.BatchId, total: number) =>
  Effect.gen(function*() {
    const recorded = yield* ledger(batchId)
    assert.strictEqual(recorded.batch.state._tag, "Completed")
    assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
    assert.strictEqual(recorded.derived.succeeded, total, "every item row is succeeded")
    assert.strictEqual(recorded.itemSucceeded, total, "one ItemSucceeded per item")
    assert.strictEqual(recorded.distinctSucceeded, total)
    assert.strictEqual(recorded.maxPerKey, 1, "no item succeeded twice")
    assert.strictEqual(recorded.otherOutcomes, 0)
    assert.strictEqual(recorded.minSeq, 1, "sequences start at 1")
    assert.strictEqual(recorded.maxSeq, recorded.events, "sequences are gapless")
    assert.strictEqual(recorded.maxSeq, recorded.batch.lastSeq)
    const states = yield* itemStates(batchId)
    assert.strictEqual(states("succeeded"), total, "item rows: all succeeded")
    return recorded
  })

/** How many of the batch's items `owner` holds leased or running, as the item rows say. */
export const leasesHeld = (batchId: Ids.BatchId, owner: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    const rows = yield* sql`
      SELECT count(*)::int AS n FROM ${sql(t.items)}
      WHERE batch_id = ${batchId}::uuid AND lease_owner = ${owner} AND state IN ('leased', 'running')
    `.pipe(Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({ n: Schema.Number })))), Effect.orDie)
    return rows[0]?.n ?? 0
  })

const ShareRow = Schema.Struct({
  owner: Schema.String,
  slots: Schema.Number,
  wanted: Schema.Number,
  executing: Schema.Number,
  expiresAtMs: Schema.Number
})

/** One process's share of a batch, as its row in the shares table says. */
export type ShareRow = typeof ShareRow.Type

/** A batch's rows in the shares table (live or expired but not reclaimed yet), by owner. */
export const shareRows = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    return yield* sql`SELECT owner, slots, wanted, executing, expires_at_ms::float8 AS "expiresAtMs"
      FROM ${sql(t.shares)} WHERE batch_id = ${batchId}::uuid ORDER BY owner`.pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(ShareRow)))
    )
  }).pipe(Effect.orDie)

/**
 * How many of a batch's item rows are in each state (`queued`, `leased`, `running`, …), from the rows;
 * with `owner`, only the rows that owner holds.
 */
export const itemStates = (batchId: Ids.BatchId, owner?: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    const rows = yield* sql<{ state: string; n: number }>`SELECT state, count(*)::int AS n FROM ${sql(t.items)}
      WHERE batch_id = ${batchId}::uuid ${owner === undefined ? sql`` : sql`AND lease_owner = ${owner}`}
      GROUP BY state`
    return (state: string): number => rows.find((r) => r.state === state)?.n ?? 0
  }).pipe(Effect.orDie)

const EventRow = Schema.Struct({
  seq: Schema.Number,
  tag: Schema.String,
  key: Schema.NullOr(Schema.String),
  attempt: Schema.NullOr(Schema.Number)
})

/** A batch's events in sequence order: tag and, for item events, the item's key (and attempt, if any). */
export const eventTags = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    return yield* sql`SELECT seq, tag, payload->>'itemKey' AS key, (payload->>'attempt')::int AS attempt FROM ${
      sql(t.events)
    }
      WHERE batch_id = ${batchId}::uuid ORDER BY seq`.pipe(
      Effect.flatMap(Schema.decodeUnknown(Schema.Array(EventRow)))
    )
  }).pipe(Effect.orDie)
