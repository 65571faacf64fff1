import { Database, EmbeddedBackup, type EmbeddedErrors, Migrations, Tables } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { cli, ok } from "./support/Cli.js"
import { serveProcess } from "./support/ServeProcess.js"
import { tempDir } from "./support/TempDir.js"

/** A folder for the tests, with a backup of a migrated embedded database in it. */
class Fixture extends Context.Tag("test/EmbeddedBackup/Fixture")<Fixture, {
  readonly root: string
  readonly file: string
}>() {}

const fixture = Layer.scoped(
  Fixture,
  Effect.gen(function*() {
    const root = yield* tempDir("effect-batch-embedded-backup-")
    const source = Path.join(root, "source")
    const file = Path.join(root, "backup.tgz")
    yield* Migrations.run.pipe(Effect.provide(Database.layerEmbedded({ dataDir: source })), Effect.orDie)
    yield* Effect.orDie(EmbeddedBackup.backup({ dataDir: source, file }))
    return { root, file }
  })
)

/** The entries of `root` whose names start with `name` (the folder, its lock, staging folders). */
const besides = (root: string, name: string) => Fs.readdirSync(root).filter((entry) => entry.startsWith(name)).sort()

const appliedMigrations = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const t = yield* Tables.Tables
  const rows = yield* sql`SELECT count(*)::int AS n FROM ${sql(t.migrations)}`.pipe(
    Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({ n: Schema.Number }))))
  )
  return rows[0]?.n ?? 0
}).pipe(Effect.orDie)

/** A gzipped tarball of `files` (path → content), as `tar` writes it. */
const tarball = (root: string, files: Record<string, string>) => {
  const dir = Path.join(root, `tar-${Crypto.randomUUID()}`)
  for (const [name, content] of Object.entries(files)) {
    Fs.mkdirSync(Path.dirname(Path.join(dir, name)), { recursive: true })
    Fs.writeFileSync(Path.join(dir, name), content)
  }
  const file = `${dir}.tgz`
  ChildProcess.execFileSync("tar", ["-czf", file, "-C", dir, ...Object.keys(files)])
  return file
}

const isInUse = (error: { readonly _tag: string }): error is EmbeddedErrors.DataDirInUse =>
  error._tag === "DataDirInUse"

layer(fixture, { timeout: "120 seconds", excludeTestServices: true })("embedded database backups", (it) => {
  it.effect("restore refuses a data folder that is not empty and leaves it as it was; --force replaces it", () =>
    Effect.gen(function*() {
      const { file, root } = yield* Fixture
      const dataDir = Path.join(root, "occupied")
      Fs.mkdirSync(dataDir)
      Fs.writeFileSync(Path.join(dataDir, "keep.txt"), "mine")

      const refused = yield* Effect.flip(EmbeddedBackup.restore({ dataDir, file, force: false }))
      assert.strictEqual(refused._tag, "DataDirNotEmpty", refused.message)
      assert.include(refused.message, "--force")
      assert.deepStrictEqual(Fs.readdirSync(dataDir), ["keep.txt"])
      assert.strictEqual(Fs.readFileSync(Path.join(dataDir, "keep.txt"), "utf8"), "mine")

      yield* EmbeddedBackup.restore({ dataDir, file, force: true })
      assert.isFalse(Fs.existsSync(Path.join(dataDir, "keep.txt")))
      assert.deepStrictEqual(besides(root, "occupied"), ["occupied"], "no lock or staging folder is left")
      const applied = yield* Effect.provide(appliedMigrations, Database.layerEmbedded({ dataDir }))
      assert.strictEqual(applied, Object.keys(Migrations.migrations(Tables.names("effect_batch_"))).length)
    }))

  it.effect("a missing, damaged or foreign backup is a typed error, and no data folder is made", () =>
    Effect.gen(function*() {
      const { file, root } = yield* Fixture
      const whole = Fs.readFileSync(file)
      const write = (name: string, bytes: Uint8Array) => {
        const path = Path.join(root, name)
        Fs.writeFileSync(path, bytes)
        return path
      }
      const cases: ReadonlyArray<readonly [file: string, tag: string, reason: RegExp]> = [
        [Path.join(root, "no-such-backup.tgz"), "BackupNotFound", /no backup file/],
        [write("cut.tgz", whole.subarray(0, whole.length / 2)), "BackupInvalid", /damaged gzip data/],
        [write("noise.bin", Crypto.randomBytes(4096)), "BackupInvalid", /not a tar archive/],
        [tarball(root, { "notes.txt": "not a database" }), "BackupInvalid", /not a data folder \(no PG_VERSION/],
        [
          tarball(root, { "PG_VERSION": "17\n", "global/pg_control": "garbage" }),
          "BackupInvalid",
          /the database did not open from it/
        ]
      ]
      for (const [index, [backup, tag, reason]] of cases.entries()) {
        const dataDir = Path.join(root, `never-${index}`)
        const error = yield* Effect.flip(EmbeddedBackup.restore({ dataDir, file: backup, force: false }))
        assert.strictEqual(error._tag, tag, `${backup}: ${error.message}`)
        assert.match(error.message, reason)
        assert.deepStrictEqual(besides(root, `never-${index}`), [], `${backup} left nothing behind`)
      }
    }))

  it.effect(
    "a data folder in use is refused by backup, restore and a second server; SIGTERM frees it, a crash's lock is taken over",
    () =>
      Effect.gen(function*() {
        const { file, root } = yield* Fixture
        const dataDir = Path.join(root, "served")
        yield* EmbeddedBackup.restore({ dataDir, file, force: false })
        const env = { EFFECT_BATCH_TOKENS: "" }

        const first = yield* serveProcess(["--demo"], env, { dataDir })
        const live = Path.join(root, "live.tgz")
        const backupRefused = yield* Effect.flip(EmbeddedBackup.backup({ dataDir, file: live }))
        assert.isTrue(isInUse(backupRefused) && backupRefused.pid === first.pid, backupRefused.message)
        assert.isFalse(Fs.existsSync(live))
        const restoreRefused = yield* Effect.flip(EmbeddedBackup.restore({ dataDir, file, force: true }))
        assert.isTrue(isInUse(restoreRefused) && restoreRefused.pid === first.pid, restoreRefused.message)
        const secondServer = yield* Effect.flip(serveProcess(["--demo"], env, { dataDir }))
        assert.include(secondServer.message, `DataDirInUse: the embedded database in ${dataDir} is in use by process`)
        assert.include(secondServer.message, `process ${first.pid}`)

        assert.strictEqual((yield* first.stop("SIGTERM")).code, 0, "SIGTERM stops the server with exit code 0")
        assert.deepStrictEqual(besides(root, "served"), ["served"], "the lock went with the server")

        const crashed = yield* serveProcess(["--demo"], env, { dataDir })
        assert.strictEqual((yield* crashed.stop("SIGKILL")).code, "SIGKILL")
        assert.deepStrictEqual(besides(root, "served"), ["served", "served.lock"], "a crash leaves its lock")
        const afterCrash = Path.join(root, "after-crash.tgz")
        const cliEnv = { EFFECT_BATCH_DATA_DIR: dataDir, DATABASE_URL: "" }
        assert.include(ok(yield* cli(["backup", afterCrash], cliEnv)), `backed up ${dataDir} to ${afterCrash}`)

        const restored = Path.join(root, "restored")
        const restoreEnv = { EFFECT_BATCH_DATA_DIR: restored, DATABASE_URL: "" }
        assert.include(ok(yield* cli(["restore", afterCrash], restoreEnv)), `into ${restored}`)
        const twice = yield* cli(["restore", afterCrash], restoreEnv)
        assert.strictEqual(twice.code, 1)
        assert.include(twice.stderr, `DataDirNotEmpty: ${restored} is not empty`)
        const applied = yield* Effect.provide(appliedMigrations, Database.layerEmbedded({ dataDir: restored }))
        assert.isAbove(applied, 0)

        // a holder on another host cannot be checked: it counts as in use
        Fs.writeFileSync(`${restored}.lock`, JSON.stringify({ pid: 1, host: "another-host", nonce: "n" }))
        const elsewhere = yield* Effect.flip(EmbeddedBackup.backup({ dataDir: restored, file: live }))
        assert.isTrue(isInUse(elsewhere) && elsewhere.host === "another-host", elsewhere.message)
      }).pipe(Effect.scoped),
    180_000
  )
})
