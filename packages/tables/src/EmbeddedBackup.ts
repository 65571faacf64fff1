/**
 * Backups of the embedded database: a data folder as one gzipped tarball (PGlite's `dumpDataDir`),
 * and a data folder restored from one (PGlite's `loadDataDir`).
 *
 * A data folder is one process's (see `DataDirLock`), so `backup` and `restore` need the folder free:
 * stop the server first; while it runs they fail with `DataDirInUse` and touch nothing. A program that
 * embeds effect-batch backs up while it runs with `write`, on its own client. Either way the dump is
 * taken while no statement or transaction runs, after a checkpoint. The archive is built in memory
 * (about the size of the folder).
 *
 * @since 0.5.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as DataDirLock from "./DataDirLock.js"
import {
  BackupFileError,
  BackupInvalid,
  BackupNotFound,
  DatabaseNotFound,
  DataDirError,
  type DataDirInUse,
  DataDirNotEmpty
} from "./EmbeddedErrors.js"
import { errorCode } from "./internal/ErrorCode.js"
import * as Tarball from "./internal/Tarball.js"
import * as PgliteClient from "./PgliteClient.js"

/** Files every data folder has; an archive without them is not one. */
const required = ["PG_VERSION", "global/pg_control"]

const causeText = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/**
 * The open database's folder as a gzipped tarball, taken after a checkpoint while holding the session
 * (no statement or transaction of this client runs meanwhile).
 *
 * @since 0.5.0
 */
export const dump: Effect.Effect<Uint8Array, SqlError.SqlError, PgliteClient.PgliteClient> = Effect.flatMap(
  PgliteClient.PgliteClient,
  (client) =>
    client.withSession(async (pglite) => {
      await pglite.exec("CHECKPOINT")
      const archive = await pglite.dumpDataDir("gzip")
      return new Uint8Array(await archive.arrayBuffer())
    })
).pipe(Effect.withSpan("EmbeddedBackup.dump"))

/**
 * Writes `dump` to `file` (replacing it once the new one is complete: a failed backup leaves the old
 * one). Gives the size written.
 *
 * @since 0.5.0
 */
export const write = (
  file: string
): Effect.Effect<{ readonly bytes: number }, SqlError.SqlError | BackupFileError, PgliteClient.PgliteClient> =>
  Effect.flatMap(dump, (archive) =>
    Effect.tryPromise({
      try: async () => {
        const target = Path.resolve(file)
        const partial = `${target}.partial-${Crypto.randomUUID()}`
        try {
          await Fs.writeFile(partial, archive, { flag: "wx" })
          await Fs.rename(partial, target)
        } finally {
          await Fs.rm(partial, { force: true })
        }
        return { bytes: archive.byteLength }
      },
      catch: (cause) => new BackupFileError({ file, message: `could not write the backup ${file}`, cause })
    })).pipe(Effect.withSpan("EmbeddedBackup.write", { attributes: { file } }))

/**
 * Opens the data folder `dataDir` (it must hold a database and no other process may have it open)
 * and writes its backup to `file`.
 *
 * @since 0.5.0
 */
export const backup = (options: { readonly dataDir: string; readonly file: string }): Effect.Effect<
  { readonly dataDir: string; readonly bytes: number },
  DatabaseNotFound | DataDirInUse | BackupFileError | SqlError.SqlError
> => {
  const dataDir = Path.resolve(options.dataDir)
  return Effect.gen(function*() {
    const exists = yield* Effect.promise(() =>
      Fs.access(Path.join(dataDir, "PG_VERSION")).then(() => true, () => false)
    )
    if (!exists) return yield* new DatabaseNotFound({ dataDir })
    const written = yield* write(options.file).pipe(Effect.provide(PgliteClient.layer({ dataDir })))
    return { dataDir, ...written }
  }).pipe(Effect.withSpan("EmbeddedBackup.backup", { attributes: { dataDir, file: options.file } }))
}

/** Reads a backup and checks that it is a whole data folder; gives the uncompressed tarball. */
const readArchive = (file: string): Effect.Effect<Uint8Array, BackupNotFound | BackupInvalid | BackupFileError> =>
  Effect.gen(function*() {
    const bytes = yield* Effect.tryPromise({
      try: () => Fs.readFile(file),
      catch: (cause) =>
        errorCode(cause) === "ENOENT"
          ? new BackupNotFound({ file })
          : new BackupFileError({ file, message: `could not read the backup ${file}`, cause })
    })
    const invalid = (reason: string) => new BackupInvalid({ file, reason })
    const tar = yield* Effect.flatMap(Effect.promise(() => Tarball.uncompressed(bytes)), Either.mapLeft(invalid))
    const paths = yield* Either.mapLeft(Tarball.entries(tar), invalid)
    const missing = required.filter((path) => !paths.includes(path))
    if (missing.length > 0) return yield* invalid(`not a data folder (no ${missing.join(", ")})`)
    return tar
  })

/** Whether a folder holds anything (a missing folder does not). */
const isEmpty = (dataDir: string): Effect.Effect<boolean, DataDirError> =>
  Effect.tryPromise({
    try: () =>
      Fs.readdir(dataDir).then(
        (names) => names.length === 0,
        (cause) => errorCode(cause) === "ENOENT" ? true : Promise.reject(cause)
      ),
    catch: (cause) => new DataDirError({ dataDir, message: `could not read ${dataDir}`, cause })
  })

/** Opens the restored folder once (Postgres replays its log) and closes it; a failure means a bad backup. */
const load = (staging: string, tar: Uint8Array, file: string): Effect.Effect<void, BackupInvalid> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
    Effect.provide(
      PgliteClient.layer({ dataDir: staging, loadDataDir: new Blob([tar.slice()], { type: "application/x-tar" }) })
    ),
    Effect.mapError((error) =>
      new BackupInvalid({
        file,
        reason: `the database did not open from it (${causeText(error._tag === "SqlError" ? error.cause : error)})`
      })
    ),
    Effect.asVoid
  )

/** Puts the restored folder in place of `dataDir` (the replaced one is deleted once it is). */
const swap = (staging: string, dataDir: string): Effect.Effect<void, DataDirError> =>
  Effect.tryPromise({
    try: async () => {
      const replaced = `${dataDir}.replaced-${Crypto.randomUUID()}`
      const existed = await Fs.rename(dataDir, replaced).then(
        () => true,
        (cause) => errorCode(cause) === "ENOENT" ? false : Promise.reject(cause)
      )
      await Fs.rename(staging, dataDir)
      if (existed) await Fs.rm(replaced, { recursive: true, force: true })
    },
    catch: (cause) =>
      new DataDirError({ dataDir, message: `could not move the restored database into ${dataDir}`, cause })
  })

/**
 * Restores the backup in `file` into the data folder `dataDir`: it must be empty or missing unless
 * `force` (which replaces what it holds). The backup is checked and opened in a folder beside
 * `dataDir` first, so a damaged one changes nothing; the server's next start runs the migrations a
 * backup from an older version lacks.
 *
 * @since 0.5.0
 */
export const restore = (options: {
  readonly dataDir: string
  readonly file: string
  readonly force: boolean
}): Effect.Effect<
  { readonly dataDir: string },
  BackupNotFound | BackupInvalid | BackupFileError | DataDirInUse | DataDirNotEmpty | DataDirError
> => {
  const dataDir = Path.resolve(options.dataDir)
  return Effect.gen(function*() {
    const tar = yield* readArchive(options.file)
    yield* DataDirLock.acquire(dataDir)
    if (!options.force && !(yield* isEmpty(dataDir))) return yield* new DataDirNotEmpty({ dataDir })
    const staging = `${dataDir}.restoring-${Crypto.randomUUID()}`
    yield* Effect.addFinalizer(() =>
      Effect.tryPromise(() => Fs.rm(staging, { recursive: true, force: true })).pipe(
        Effect.catchAll((error) => Effect.logWarning(`could not remove ${staging}`, error.cause))
      )
    )
    yield* load(staging, tar, options.file)
    yield* swap(staging, dataDir)
    return { dataDir }
  }).pipe(
    Effect.scoped,
    Effect.withSpan("EmbeddedBackup.restore", { attributes: { dataDir, file: options.file } })
  )
}
