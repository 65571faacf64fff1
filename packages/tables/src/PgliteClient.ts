/**
 * A small `SqlClient` over PGlite (Postgres compiled to WASM, embedded in the process) for Effect 3.
 *
 * PGlite is a single Postgres session, so the client serializes access with a one-permit semaphore:
 * a transaction (or `sql.reserve`) holds the session from `BEGIN` to `COMMIT`/`ROLLBACK`, and every
 * other statement waits for its turn instead of running inside someone else's transaction.
 * Statements are compiled by `@effect/sql-pg`'s compiler, so the same SQL runs here and on Postgres.
 *
 * Differences from `@effect/sql-pg` worth knowing:
 * - `int8` (and `count(*)`) comes back as a `number` (as a string beyond 2^53), where `pg` gives a string:
 *   cast in SQL (`count(*)::int`) or decode with `Database.Int8`.
 * - `executeStream` (`statement.stream`) reads the whole result under the lock, then emits it; page with
 *   keyset queries for results that should not be held in memory at once.
 * - A statement without parameters goes through PGlite's simple protocol (`exec`), like `pg` does, so a
 *   string of several statements (migrations) works with `sql.unsafe(ddl)`.
 * - A fiber inside a transaction must not wait on another fiber that queries outside of it: that fiber
 *   waits for the session, which the transaction holds. Likewise, while `sql.reserve` is held, query
 *   through the reserved connection only.
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import * as SqlError from "@effect/sql/SqlError"
import { PGlite, types } from "@electric-sql/pglite"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as DataDirLock from "./DataDirLock.js"
import type { DataDirInUse } from "./EmbeddedErrors.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: TypeId = "~@effect-batch/tables/PgliteClient"

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = "~@effect-batch/tables/PgliteClient"

/**
 * Options of the embedded database.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgliteClientConfig {
  /**
   * Folder of the database files (created if missing); in memory when absent. One process per folder:
   * opening a folder another client holds fails with `DataDirInUse` (see `DataDirLock`).
   */
  readonly dataDir?: string | undefined
  /** A tarball of a data folder (`dumpDataDir`) to start from; `dataDir` must hold no database then. */
  readonly loadDataDir?: Blob | undefined
}

/**
 * The embedded client: a full `SqlClient`, plus access to the PGlite instance for what SQL cannot do
 * (LISTEN callbacks, dumps).
 *
 * @since 0.1.0
 * @category models
 */
export interface PgliteClient extends SqlClient.SqlClient {
  readonly [TypeId]: TypeId
  /** The options the client was made with. */
  readonly config: PgliteClientConfig
  /** Runs `f` on the PGlite instance while holding the session (inside the caller's transaction if any). */
  readonly withSession: <A>(f: (pglite: PGlite) => Promise<A>) => Effect.Effect<A, SqlError.SqlError>
}

/**
 * The embedded client, for code that needs more than `SqlClient` (e.g. `Notifier.layerPglite`).
 *
 * @since 0.1.0
 * @category tags
 */
export const PgliteClient: Context.Tag<PgliteClient, PgliteClient> = Context.GenericTag<PgliteClient>(
  "@effect-batch/PgliteClient"
)

/** `int8` as a number while it is exact, else its decimal text (never a `bigint`, which JSON cannot carry). */
const parseInt8 = (text: string): number | string => {
  const value = Number(text)
  return Number.isSafeInteger(value) ? value : text
}

/** Takes the data folder's lock (released after the database closes); an I/O failure is a failure to open. */
const holdDataDir = (dataDir: string | undefined): Effect.Effect<void, SqlError.SqlError | DataDirInUse, Scope.Scope> =>
  dataDir === undefined ? Effect.void : DataDirLock.acquire(dataDir).pipe(
    Effect.catchTag("DataDirError", (error) =>
      Effect.fail(
        new SqlError.SqlError({ cause: error, message: `PgliteClient: failed to open the database: ${error.message}` })
      ))
  )

const openPglite = (config: PgliteClientConfig): Effect.Effect<PGlite, SqlError.SqlError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const options = {
          parsers: { [types.INT8]: parseInt8 },
          ...(config.loadDataDir === undefined ? {} : { loadDataDir: config.loadDataDir })
        }
        if (config.dataDir === undefined) return PGlite.create(options)
        const dataDir = Path.resolve(config.dataDir)
        await Fs.mkdir(dataDir, { recursive: true })
        return PGlite.create(dataDir, options)
      },
      catch: (cause) => new SqlError.SqlError({ cause, message: "PgliteClient: failed to open the database" })
    }),
    (pglite) =>
      Effect.tryPromise({
        try: () => pglite.close(),
        catch: (cause) => new SqlError.SqlError({ cause, message: "PgliteClient: failed to close the database" })
      }).pipe(Effect.catchAll((error) => Effect.logWarning(error.message, error.cause)))
  )

const open = (config: PgliteClientConfig): Effect.Effect<PGlite, SqlError.SqlError | DataDirInUse, Scope.Scope> =>
  Effect.zipRight(holdDataDir(config.dataDir), openPglite(config))

/** A statement runs to its end once sent (PGlite cannot cancel it), so the session stays held until then. */
const attempt = <A>(f: () => Promise<A>): Effect.Effect<A, SqlError.SqlError> =>
  Effect.uninterruptible(Effect.tryPromise({
    try: f,
    catch: (cause) => new SqlError.SqlError({ cause, message: "Failed to execute statement" })
  }))

type Lock = <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>

type TransformRows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

const makeConnection = (pglite: PGlite, lock: Lock): SqlConnection.Connection => {
  // Without parameters use the simple protocol (several statements allowed, one row array each), as `pg` does.
  const rows = (sql: string, params: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<object>, SqlError.SqlError> =>
    params.length === 0
      ? Effect.map(
        attempt(() => pglite.exec(sql)),
        (results) => results.length === 1 ? results[0]?.rows ?? [] : results.map((result) => result.rows)
      )
      : Effect.map(attempt(() => pglite.query<SqlConnection.Row>(sql, [...params])), (result) => result.rows)
  const execute = (sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) =>
    lock(transformRows ? Effect.map(rows(sql, params), transformRows) : rows(sql, params))
  const raw = (sql: string, params: ReadonlyArray<unknown>): Effect.Effect<unknown, SqlError.SqlError> =>
    params.length === 0 ? attempt(() => pglite.exec(sql)) : attempt(() => pglite.query(sql, [...params]))
  return {
    execute,
    executeUnprepared: execute,
    executeRaw: (sql, params) => lock(raw(sql, params)),
    executeValues: (sql, params) =>
      lock(Effect.map(
        attempt(() => pglite.query<ReadonlyArray<unknown>>(sql, [...params], { rowMode: "array" })),
        (result) => result.rows
      )),
    executeStream: (sql, params, transformRows) => Stream.fromIterableEffect(execute(sql, params, transformRows))
  }
}

/**
 * Opens PGlite (in memory, or in `dataDir`) for the life of the scope and builds the client over it.
 * A fresh database runs initdb first (about 2–3 s); reopening a data folder is faster.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: PgliteClientConfig
): Effect.Effect<PgliteClient, SqlError.SqlError | DataDirInUse, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const pglite = yield* open(config)
    const semaphore = yield* Effect.makeSemaphore(1)
    // Used while the session is held (inside a transaction or a reservation): no further locking.
    const session = makeConnection(pglite, (effect) => effect)
    // Used by everything else: each statement takes the session for its own duration.
    const shared = makeConnection(pglite, semaphore.withPermits(1))
    const reserve: SqlConnection.Connection.Acquirer = Effect.uninterruptibleMask((restore) =>
      restore(semaphore.take(1)).pipe(
        Effect.zipRight(Effect.addFinalizer(() => semaphore.release(1))),
        Effect.as(session)
      )
    )
    const inSession = Effect.map(
      Effect.serviceOption(SqlClient.TransactionConnection),
      Option.exists(([connection]) => connection === session)
    )
    const withSession = <A>(f: (pglite: PGlite) => Promise<A>): Effect.Effect<A, SqlError.SqlError> =>
      Effect.flatMap(inSession, (held) => {
        const run = attempt(() => f(pglite))
        return held ? run : semaphore.withPermits(1)(run)
      })
    const client = yield* SqlClient.make({
      acquirer: Effect.succeed(shared),
      transactionAcquirer: reserve,
      compiler: PgClient.makeCompiler(),
      spanAttributes: [["db.system.name", "postgresql"], ["db.namespace", config.dataDir ?? "pglite:memory"]]
    })
    return Object.assign(client, { [TypeId]: TypeId, config, withSession })
  })

/**
 * The embedded database as both `PgliteClient` and `SqlClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: PgliteClientConfig
): Layer.Layer<PgliteClient | SqlClient.SqlClient, SqlError.SqlError | DataDirInUse> =>
  Layer.scopedContext(
    Effect.map(make(config), (client) =>
      Context.make(PgliteClient, client).pipe(
        Context.add(SqlClient.SqlClient, client)
      ))
  ).pipe(Layer.provide(Reactivity.layer))
