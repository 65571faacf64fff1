/**
 * Fresh, empty databases for tests and benchmarks: one suite body runs against both kinds.
 *
 * ```ts
 * for (const [name, db] of TestDatabase.databases) {
 *   layer(db)(name, (it) => { it.effect("...", () => ...) })
 * }
 * ```
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as Database from "./Database.js"
import type { DataDirInUse } from "./EmbeddedErrors.js"
import type * as Notifier from "./Notifier.js"

/**
 * The local Postgres used when `TEST_DATABASE_URL` is not set (trust authentication).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultServerUrl = "postgres://postgres@127.0.0.1:5432/postgres"

/**
 * What every test database provides.
 *
 * @since 0.1.0
 * @category models
 */
export type TestDatabase = Layer.Layer<
  SqlClient.SqlClient | Notifier.Notifier,
  ConfigError.ConfigError | SqlError.SqlError | DataDirInUse
>

/** Runs `f` on a short-lived single connection to the server's maintenance database. */
const withServer = <A>(
  serverUrl: Redacted.Redacted,
  f: (sql: PgClient.PgClient) => Effect.Effect<A, SqlError.SqlError>
): Effect.Effect<A, SqlError.SqlError> =>
  PgClient.make({ url: serverUrl, maxConnections: 1, applicationName: "effect-batch-tests" }).pipe(
    Effect.flatMap(f),
    Effect.scoped,
    Effect.provide(Reactivity.layer)
  )

/**
 * A new, uniquely named database on the test Postgres server (`TEST_DATABASE_URL`, default
 * `defaultServerUrl`) for each build of the layer, dropped `WITH (FORCE)` when the layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPostgres: TestDatabase = Layer.unwrapScoped(
  Effect.gen(function*() {
    const serverUrl = yield* Config.redacted("TEST_DATABASE_URL").pipe(
      Config.withDefault(Redacted.make(defaultServerUrl))
    )
    // Not `Random`/`Clock`: under test services those repeat across the processes that run test files.
    const name = yield* Effect.sync(() => `effect_batch_test_${Crypto.randomUUID().replaceAll("-", "")}`)
    yield* Effect.acquireRelease(
      withServer(serverUrl, (sql) => sql`CREATE DATABASE ${sql(name)}`),
      () =>
        withServer(serverUrl, (sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`).pipe(
          Effect.catchAll((error) => Effect.logWarning(`TestDatabase: could not drop ${name}`, error))
        )
    )
    const url = new URL(Redacted.value(serverUrl))
    url.pathname = `/${name}`
    return Database.layerPostgres(Redacted.make(url.toString()))
  })
)

/**
 * A new in-memory embedded database for each build of the layer (initdb takes about 2–3 s).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerEmbedded: TestDatabase = Database.layerEmbedded({})

/**
 * Both kinds of database, named, for suites that run one body against each.
 *
 * @since 0.1.0
 * @category layers
 */
export const databases: ReadonlyArray<readonly [name: "embedded" | "postgres", layer: TestDatabase]> = [
  ["embedded", layerEmbedded],
  ["postgres", layerPostgres]
]
