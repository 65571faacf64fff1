/**
 * `backup` and `restore`: the embedded database's data folder (`EFFECT_BATCH_DATA_DIR`, as `serve` and
 * `demo` use it) to and from one file. Postgres is backed up with its own tools (`pg_dump -Fc`).
 *
 * @since 0.5.0
 */
import { Database, EmbeddedBackup } from "@effect-batch/tables"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/**
 * `DATABASE_URL` is set: the server uses Postgres, which the embedded database's backup does not cover.
 *
 * @since 0.5.0
 */
export class UsesPostgres extends Data.TaggedError("UsesPostgres")<{ readonly message: string }> {}

/** The data folder `serve` would use; fails when the environment selects Postgres. */
const embeddedDataDir = Effect.gen(function*() {
  if (Option.isSome(yield* Database.serverUrl)) {
    return yield* new UsesPostgres({
      message: "DATABASE_URL is set, so the data is in Postgres: back it up with pg_dump -Fc and pg_restore " +
        "(docs/OPERATIONS.md); unset DATABASE_URL to back up the embedded database"
    })
  }
  return yield* Database.dataDir
})

const file = Args.file({ name: "file" })

const backup = Command.make("backup", { file }, (o) =>
  Effect.gen(function*() {
    const done = yield* EmbeddedBackup.backup({ dataDir: yield* embeddedDataDir, file: o.file })
    yield* Console.log(`backed up ${done.dataDir} to ${o.file} (${done.bytes} bytes)`)
  })).pipe(
    Command.withDescription(
      "write the embedded database (EFFECT_BATCH_DATA_DIR) to FILE, a gzipped tarball; stop the server first"
    )
  )

const restore = Command.make(
  "restore",
  {
    file,
    force: Options.boolean("force").pipe(Options.withDescription("replace a data folder that is not empty"))
  },
  (o) =>
    Effect.gen(function*() {
      const done = yield* EmbeddedBackup.restore({ dataDir: yield* embeddedDataDir, file: o.file, force: o.force })
      yield* Console.log(`restored ${o.file} into ${done.dataDir}; serve resumes its running batches`)
    })
).pipe(
  Command.withDescription(
    "restore the embedded database (EFFECT_BATCH_DATA_DIR) from a backup; the folder must be empty unless --force"
  )
)

/**
 * The two commands.
 *
 * @since 0.5.0
 */
export const commands = [backup, restore] as const
