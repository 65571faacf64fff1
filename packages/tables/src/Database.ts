/**
 * The database the library runs on: a Postgres server when `DATABASE_URL` is set, otherwise an
 * embedded Postgres (PGlite) in a local data folder, with the same SQL and migrations.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { DataDirInUse } from "./EmbeddedErrors.js"
import * as Notifier from "./Notifier.js"
import * as PgliteClient from "./PgliteClient.js"

/**
 * Where the embedded database lives when `EFFECT_BATCH_DATA_DIR` is not set.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultDataDir = "./.effect-batch/db"

/**
 * The Postgres server of the environment: `DATABASE_URL`, unless it is unset or empty.
 *
 * @since 0.5.0
 * @category config
 */
export const serverUrl: Config.Config<Option.Option<Redacted.Redacted>> = Config.option(
  Config.redacted("DATABASE_URL")
).pipe(Config.map(Option.filter((value) => Redacted.value(value).trim() !== "")))

/**
 * The embedded database's data folder of the environment: `EFFECT_BATCH_DATA_DIR`, else `defaultDataDir`.
 *
 * @since 0.5.0
 * @category config
 */
export const dataDir: Config.Config<string> = Config.string("EFFECT_BATCH_DATA_DIR").pipe(
  Config.withDefault(defaultDataDir)
)

/**
 * An `int8` / `count(*)` column as a number, whichever driver read it: `pg` returns the decimal text,
 * PGlite a number. (Casting in SQL, `count(*)::int`, is the other way.)
 *
 * @since 0.1.0
 * @category schemas
 */
export const Int8: Schema.Schema<number, number | string> = Schema.Union(Schema.Number, Schema.NumberFromString)

/**
 * A Postgres server at `url`: a pool of up to 10 connections, plus one dedicated to `LISTEN`.
 * `int8` columns come back as strings (see `Int8`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPostgres = (
  url: Redacted.Redacted | string
): Layer.Layer<SqlClient.SqlClient | Notifier.Notifier, SqlError.SqlError> =>
  Notifier.layerPg.pipe(
    Layer.provideMerge(PgClient.layer({
      url: typeof url === "string" ? Redacted.make(url) : url,
      maxConnections: 10,
      idleTimeout: Duration.seconds(30),
      connectTimeout: Duration.seconds(10),
      applicationName: "effect-batch"
    }))
  )

/**
 * The embedded database in `dataDir` (created if missing), or in memory without one. One process may
 * open a data folder at a time: while another holds it, building the layer fails with `DataDirInUse`.
 * Its `PgliteClient` takes backups while it runs (`EmbeddedBackup.write`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerEmbedded = (
  options: { readonly dataDir?: string | undefined }
): Layer.Layer<
  SqlClient.SqlClient | Notifier.Notifier | PgliteClient.PgliteClient,
  SqlError.SqlError | DataDirInUse
> => Notifier.layerPglite.pipe(Layer.provideMerge(PgliteClient.layer({ dataDir: options.dataDir })))

/**
 * Postgres when `DATABASE_URL` is set (and not empty), otherwise the embedded database in
 * `EFFECT_BATCH_DATA_DIR` (default `./.effect-batch/db`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  SqlClient.SqlClient | Notifier.Notifier,
  ConfigError.ConfigError | SqlError.SqlError | DataDirInUse
> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const server = yield* serverUrl
    if (Option.isSome(server)) return layerPostgres(server.value)
    return layerEmbedded({ dataDir: yield* dataDir })
  })
)
