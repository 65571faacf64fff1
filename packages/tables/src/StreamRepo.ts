/**
 * The open event streams (SSE and RPC) of every process, counted per tenant, so that a tenant's
 * limit on open streams holds across processes. Each process keeps its rows alive while it runs;
 * the rows of a process that died stop counting when they expire.
 *
 * @since 0.4.0
 */
import type { Ids } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import { Tables } from "./Tables.js"

/**
 * How long the rows of a process that stopped renewing them are kept before they are deleted.
 *
 * @since 0.4.0
 */
export const keepExpired = 60_000

/**
 * The stream repository.
 *
 * @since 0.4.0
 * @category services
 */
export class StreamRepo extends Effect.Service<StreamRepo>()("@effect-batch/StreamRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const streams = sql(t.streams)

    /**
     * Admits `owner`'s streams of the tenant at `count` (its open streams with the new one) when the
     * live rows of the other processes leave room within `max`, and records the count. Each process
     * writes its counts whole, with a version that only grows: a late write of an older count changes
     * nothing. Serialized per tenant with an advisory lock.
     */
    const admit = (input: {
      readonly tenant: Ids.TenantId
      readonly owner: string
      readonly count: number
      readonly version: number
      readonly max: number
      readonly now: number
      readonly expiresAtMs: number
    }): Effect.Effect<boolean, SqlError> =>
      Effect.gen(function*() {
        yield* sql`SELECT pg_advisory_xact_lock(hashtext(${t.streams + ":" + input.tenant}))`
        const rows = yield* sql<{ open: unknown }>`SELECT COALESCE(sum(open), 0) AS open FROM ${streams}
          WHERE tenant = ${input.tenant} AND owner <> ${input.owner} AND expires_at_ms > ${input.now}`
        if (Number(rows[0]?.open ?? 0) + input.count > input.max) return false
        yield* record(input)
        return true
      }).pipe(sql.withTransaction, Effect.withSpan("StreamRepo.admit"))

    /** Records `owner`'s count of open streams of the tenant, unless a newer one is recorded. */
    const record = (input: {
      readonly tenant: Ids.TenantId
      readonly owner: string
      readonly count: number
      readonly version: number
      readonly expiresAtMs: number
    }): Effect.Effect<void, SqlError> =>
      sql`INSERT INTO ${streams} (tenant, owner, open, version, expires_at_ms)
        VALUES (${input.tenant}, ${input.owner}, ${input.count}, ${input.version}, ${input.expiresAtMs})
        ON CONFLICT (tenant, owner) DO UPDATE SET open = EXCLUDED.open, version = EXCLUDED.version,
          expires_at_ms = EXCLUDED.expires_at_ms
        WHERE ${streams}.version < EXCLUDED.version`.pipe(Effect.asVoid, Effect.withSpan("StreamRepo.record"))

    /** Deletes the rows of processes that stopped renewing them long ago. */
    const sweep = (now: number): Effect.Effect<void, SqlError> =>
      sql`DELETE FROM ${streams} WHERE expires_at_ms < ${now - keepExpired}`.pipe(
        Effect.asVoid,
        Effect.withSpan("StreamRepo.sweep")
      )

    return { admit, record, sweep } as const
  })
}) {}
