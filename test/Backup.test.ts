import { BatchOrchestrator } from "@effect-batch/server"
import { Database, EmbeddedBackup, PgliteClient, Tables, type TestDatabase } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Path from "node:path"
import { advanceUntil, caller, orchestrator } from "./support/Harness.js"
import { runPg } from "./support/PgTools.js"
import { assertCompletedOnce, freshDatabase } from "./support/Processes.js"
import { tempDir } from "./support/TempDir.js"
import { extraction, makeProbe } from "./support/Workflows.js"

/** How one kind of database is backed up and restored, for the one suite body below. */
interface Backend {
  readonly name: string
  /** the backup is taken while the first process still has the database open (else after it stopped) */
  readonly whileOpen: boolean
  /** the backup carries the SQL functions (else the next start installs them again) */
  readonly carriesFunctions: boolean
  readonly make: Effect.Effect<
    {
      /** a fresh database for the first part of the batch */
      readonly source: TestDatabase.TestDatabase
      readonly backup: Effect.Effect<void>
      /** restores the backup into a fresh database (dropped when the scope closes) */
      readonly restore: Effect.Effect<TestDatabase.TestDatabase, never, Scope.Scope>
    },
    never,
    Scope.Scope
  >
}

/** The running process's own embedded client (the source database of the live backup provides it). */
const ownClient = Effect.flatMap(
  Effect.serviceOption(PgliteClient.PgliteClient),
  Option.match({ onNone: () => Effect.dieMessage("not on the embedded database"), onSome: Effect.succeed })
)

/**
 * `backup` of the stopped database (what `effect-batch backup` runs), or, `whileOpen`, `write` by the
 * process that has it open; then `restore` into an empty data folder.
 */
const embedded = (name: string, whileOpen: boolean): Backend => ({
  name,
  whileOpen,
  carriesFunctions: true,
  make: Effect.map(tempDir("effect-batch-backup-"), (root) => {
    const source = Path.join(root, "source")
    const target = Path.join(root, "target")
    const file = Path.join(root, "backup.tgz")
    return {
      source: Database.layerEmbedded({ dataDir: source }),
      backup: whileOpen
        ? Effect.flatMap(
          ownClient,
          (client) =>
            EmbeddedBackup.write(file).pipe(Effect.provideService(PgliteClient.PgliteClient, client), Effect.orDie)
        )
        : Effect.orDie(EmbeddedBackup.backup({ dataDir: source, file })),
      restore: EmbeddedBackup.restore({ dataDir: target, file, force: false }).pipe(
        Effect.orDie,
        Effect.as(Database.layerEmbedded({ dataDir: target }))
      )
    }
  })
})

/** The commands of docs/OPERATIONS.md: `pg_dump -Fc` (with `dumpArgs`), `pg_restore` into a new database. */
const postgres = (name: string, dumpArgs: ReadonlyArray<string>, carriesFunctions: boolean): Backend => ({
  name,
  whileOpen: true,
  carriesFunctions,
  make: Effect.gen(function*() {
    const file = Path.join(yield* tempDir("effect-batch-pgdump-"), "effect-batch.dump")
    const source = yield* freshDatabase
    return {
      source: Database.layerPostgres(source),
      backup: Effect.asVoid(runPg("pg_dump", ["-Fc", ...dumpArgs, "-f", file, "-d", source])),
      restore: Effect.gen(function*() {
        const target = yield* freshDatabase
        yield* runPg("pg_restore", ["--exit-on-error", "--no-owner", "-d", target, file])
        return Database.layerPostgres(target)
      })
    }
  })
})

const backends: ReadonlyArray<Backend> = [
  embedded("embedded: effect-batch backup of the stopped database, restore into an empty data folder", false),
  embedded("embedded: EmbeddedBackup.write by the running process, restore into an empty data folder", true),
  postgres("postgres: pg_dump -Fc of the whole database, pg_restore into a new one", [], true),
  postgres("postgres: pg_dump -Fc -t 'effect_batch_*' (the tables only), pg_restore into a new one", [
    "-t",
    "effect_batch_*"
  ], false)
]

/** The SQL functions of effect-batch in the database, by name. */
const functionNames = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const t = yield* Tables.Tables
  const rows = yield* sql`SELECT p.proname AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = current_schema() AND starts_with(p.proname, ${t.prefix}) ORDER BY 1`.pipe(
    Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({ name: Schema.String }))))
  )
  return rows.map((row) => row.name)
}).pipe(Effect.orDie)

const total = 30
const documents = Array.from({ length: total }, (_, i) => ({
  key: `doc-${String(i).padStart(3, "0")}`,
  input: { title: `Document ${i}` }
}))

const batchOf = (id: Parameters<BatchOrchestrator.BatchOrchestrator["Type"]["get"]>[1]) =>
  Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (o) => Effect.orDie(o.get(caller, id)))

const backupAndResume = (backend: Backend) =>
  Effect.gen(function*() {
    const probe = yield* makeProbe
    const workflow = extraction(probe)
    const running = (db: TestDatabase.TestDatabase) => orchestrator(workflow).pipe(Layer.provideMerge(db))
    const { backup, restore, source } = yield* backend.make

    // a batch paused after at least 10 of its 30 items succeeded, with nothing in flight
    const atBackup = yield* Effect.gen(function*() {
      const o = yield* BatchOrchestrator.BatchOrchestrator
      const submitted = yield* o.submitEncoded(workflow.name, documents, { concurrency: 2 }, caller)
      yield* advanceUntil(Effect.map(batchOf(submitted.id), (b) => b.counts.succeeded >= 10))
      yield* o.pause(caller, submitted.id, "backup")
      yield* advanceUntil(Effect.map(batchOf(submitted.id), (b) => b.counts.running === 0))
      const batch = yield* batchOf(submitted.id)
      const functions = yield* functionNames
      if (backend.whileOpen) yield* backup
      return { batch, functions, started: yield* Ref.get(probe.started) }
    }).pipe(Effect.provide(running(source)))
    if (!backend.whileOpen) yield* backup
    const batchId = atBackup.batch.id
    assert.strictEqual(atBackup.batch.state._tag, "Paused")
    assert.isAtLeast(atBackup.batch.counts.succeeded, 10)
    assert.isBelow(atBackup.batch.counts.succeeded, total, "the batch was backed up part way")
    assert.strictEqual(atBackup.started, atBackup.batch.counts.succeeded, "nothing was in flight")
    assert.isAbove(atBackup.functions.length, 0)

    const target = yield* restore
    const restoredFunctions = yield* Effect.provide(functionNames, target)
    assert.deepStrictEqual(restoredFunctions, backend.carriesFunctions ? atBackup.functions : [])

    yield* Effect.gen(function*() {
      const o = yield* BatchOrchestrator.BatchOrchestrator
      const restored = yield* batchOf(batchId)
      assert.strictEqual(restored.state._tag, "Paused")
      assert.deepStrictEqual(restored.counts, atBackup.batch.counts)
      assert.strictEqual(restored.lastSeq, atBackup.batch.lastSeq)
      assert.deepStrictEqual(yield* functionNames, atBackup.functions, "the start installed the same functions")

      yield* o.resume(caller, batchId)
      yield* advanceUntil(Effect.map(batchOf(batchId), (b) => b.state._tag === "Completed"))
      yield* assertCompletedOnce(batchId, total)
      assert.strictEqual(yield* Ref.get(probe.started), total, "the items done before the backup did not run again")
    }).pipe(Effect.provide(running(target)))
  })

describe("backup and restore of a batch part way", () => {
  for (const backend of backends) {
    it.scoped(
      `${backend.name}: the restored database resumes the paused batch, every item one outcome`,
      () => backupAndResume(backend),
      180_000
    )
  }
})
