/**
 * Cross-process hints over Postgres `LISTEN/NOTIFY` ("batch X has new events up to sequence N").
 *
 * Notifications are hints, never the data: one sent before a listener's `LISTEN` is in place, or while
 * its connection is down, is lost (`@effect/sql-pg` does not reconnect a dropped listen connection), and
 * a slow subscriber drops the oldest ones. Readers therefore read the rows themselves and also poll on a
 * timer; a notification only makes them look sooner.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqlError from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as RcMap from "effect/RcMap"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as PgliteClient from "./PgliteClient.js"

/**
 * Sends and receives notifications on named channels.
 *
 * @since 0.1.0
 * @category tags
 */
export class Notifier extends Context.Tag("@effect-batch/Notifier")<Notifier, {
  /** Sends `payload` (non-empty) on `channel`; inside a transaction it is delivered at commit. */
  readonly notify: (channel: string, payload: string) => Effect.Effect<void, SqlError.SqlError>
  /** The payloads sent on `channel` while the stream runs (a hint: poll as well). */
  readonly listen: (channel: string) => Stream.Stream<string, SqlError.SqlError>
}>() {}

/** How many notifications a slow subscriber may lag behind before the oldest are dropped. */
const subscriberCapacity = 1024

/**
 * Builds a `Notifier` from a driver's `notify` and `listen`. Each channel is listened to once, shared by
 * all of its subscribers, and unlistened when the last one leaves (`PgClient.listen` alone would
 * `UNLISTEN` a channel for everyone as soon as one of several subscribers stopped).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (driver: {
  readonly notify: (channel: string, payload: string) => Effect.Effect<void, SqlError.SqlError>
  readonly listen: (channel: string) => Stream.Stream<string, SqlError.SqlError>
}): Effect.Effect<Notifier["Type"], never, Scope.Scope> =>
  Effect.map(
    RcMap.make({
      lookup: (channel: string) =>
        Stream.broadcastDynamic(driver.listen(channel), { capacity: subscriberCapacity, strategy: "sliding" })
    }),
    (channels) =>
      Notifier.of({
        notify: driver.notify,
        listen: (channel) => Stream.unwrapScoped(RcMap.get(channels, channel))
      })
  )

const notifyWith = (sql: SqlClient.SqlClient) => (channel: string, payload: string) =>
  Effect.asVoid(sql`SELECT pg_notify(${channel}, ${payload})`)

/**
 * Notifications over a Postgres server: `pg_notify` to send (`PgClient.notify` is broken in
 * `@effect/sql-pg` 0.53), `PgClient.listen` (one dedicated connection) to receive.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg: Layer.Layer<Notifier, never, PgClient.PgClient> = Layer.scoped(
  Notifier,
  Effect.flatMap(PgClient.PgClient, (pg) => make({ notify: notifyWith(pg), listen: pg.listen }))
)

/**
 * Notifications inside the embedded database: `pg_notify` to send, PGlite's own `listen`/`unlisten`
 * (run while holding the session, so never inside another fiber's transaction) to receive.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPglite: Layer.Layer<Notifier, never, PgliteClient.PgliteClient> = Layer.scoped(
  Notifier,
  Effect.flatMap(PgliteClient.PgliteClient, (client) =>
    make({
      notify: notifyWith(client),
      listen: (channel) =>
        Stream.asyncPush<string, SqlError.SqlError>((emit) =>
          Effect.acquireRelease(
            // PGlite keys its listeners by the unquoted name, so a quoted name is only exact without '"'.
            channel.includes("\"")
              ? Effect.fail(
                new SqlError.SqlError({ cause: channel, message: "Notifier: a channel name must not contain '\"'" })
              )
              : client.withSession((pglite) =>
                pglite.listen(`"${channel}"`, (payload) => {
                  if (payload !== "") emit.single(payload)
                })
              ),
            (unlisten) =>
              client.withSession(() => unlisten()).pipe(
                Effect.catchAll((error) => Effect.logWarning("Notifier: UNLISTEN failed", error))
              )
          ), { bufferSize: subscriberCapacity, strategy: "sliding" })
    }))
)
