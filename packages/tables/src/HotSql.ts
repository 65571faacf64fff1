/**
 * The hot statements of the runner, installed (or replaced) at start: editing one takes effect on an
 * existing database, such as the demo's, the next time a process opens it. Migrations hold the DDL
 * they rely on. Installation is serialized across processes with an advisory lock.
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { appendEvents } from "./sql/AppendEvents.js"
import { claim } from "./sql/Claim.js"
import { commit } from "./sql/Commit.js"
import { limiterTake } from "./sql/Limiter.js"
import { lostAttempts, reclaim, release } from "./sql/Release.js"
import { renew, share } from "./sql/Share.js"
import { type TableNames, Tables } from "./Tables.js"

/**
 * The statements, in dependency order.
 *
 * @since 0.2.0
 */
export const statements = (t: TableNames): ReadonlyArray<string> => [
  // the signatures of earlier versions: a changed parameter list would otherwise add an overload
  `DROP FUNCTION IF EXISTS ${t.prefix}append_events(uuid, bigint, jsonb, int[], int[])`,
  `DROP FUNCTION IF EXISTS ${t.prefix}commit(uuid, text, bigint, bigint, int, int, jsonb, jsonb, jsonb)`,
  `DROP FUNCTION IF EXISTS ${t.prefix}reclaim(uuid, text, bigint)`,
  appendEvents(t),
  share(t),
  renew(t),
  claim(t),
  commit(t),
  release(t),
  lostAttempts(t),
  reclaim(t),
  limiterTake(t)
]

/**
 * Installs the hot statements.
 *
 * @since 0.2.0
 */
export const install = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const t = yield* Tables
  yield* Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(hashtext(${t.prefix + "hot_sql"}))`
    for (const statement of statements(t)) yield* sql.unsafe(statement)
  }).pipe(sql.withTransaction)
}).pipe(Effect.withSpan("HotSql.install"))
