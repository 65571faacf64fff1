/**
 * Shared rate limiters: their definitions per tenant, the blocks of permits processes reserve
 * (`<prefix>limiter_take`, see `sql/Limiter.ts`) and holds after a rate-limit answer.
 *
 * @since 0.4.0
 */
import type { Ids } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Num } from "./internal/Rows.js"
import { Tables } from "./Tables.js"

/**
 * A shared limiter's definition as stored.
 *
 * @since 0.4.0
 */
export interface Definition {
  readonly name: string
  readonly permits: number
  readonly intervalMs: number
}

/**
 * A shared limiter with its state at a time.
 *
 * @since 0.4.0
 */
export interface LimiterState extends Definition {
  /** permits counted against the limit: used within the window or reserved */
  readonly counted: number
  readonly heldUntilMs: number
  readonly throttles: number
  readonly lastThrottledAtMs: Option.Option<number>
  /** processes seen using the limiter within `recentUse` */
  readonly processes: number
  readonly effectiveConcurrency: number
}

/**
 * What a reservation returned.
 *
 * @since 0.4.0
 */
export interface Taken {
  /** the block's id, to settle it; none when nothing was granted */
  readonly grant: Option.Option<string>
  readonly granted: number
  readonly usableUntilMs: number
  readonly heldUntilMs: number
  /** when nothing was granted: the time a counted permit stops counting */
  readonly nextFreeMs: Option.Option<number>
  readonly permits: number
  readonly intervalMs: number
}

/**
 * How a process used the block it held: reported with its next reservation.
 *
 * @since 0.4.0
 */
export interface Settlement {
  readonly grant: string
  readonly used: number
  readonly lastUseMs: number
}

/**
 * What a reservation sends: the block to settle first, and what to reserve.
 *
 * @since 0.4.0
 */
export interface TakeInput {
  readonly tenant: Ids.TenantId
  readonly name: string
  readonly owner: string
  readonly now: number
  readonly want: number
  readonly leaseMs: number
  readonly settle: Option.Option<Settlement>
  /** this process's effective concurrency through the limiter, when it has users of it */
  readonly concurrency: Option.Option<number>
}

/**
 * How long a process counts as a user of a limiter after its last reservation.
 *
 * @since 0.4.0
 */
export const recentUse = 30_000

const NullableNum = Schema.NullOr(Num)
const TakenJson = Schema.Struct({
  grant: NullableNum,
  granted: Num,
  usableUntil: NullableNum,
  heldUntil: Num,
  nextFreeMs: NullableNum,
  permits: Num,
  intervalMs: Num
})
const decodeTaken = Schema.decodeUnknown(Schema.Struct({ r: Schema.NullOr(TakenJson) }))

const StateRow = Schema.Struct({
  tenant: Schema.String,
  name: Schema.String,
  permits: Num,
  interval_ms: Num,
  held_until_ms: Num,
  throttles: Num,
  last_throttled_at_ms: NullableNum,
  counted: Num,
  processes: Num,
  effective_concurrency: Num
})
const decodeStates = Schema.decodeUnknown(Schema.Array(StateRow))

/**
 * The shared limiter repository.
 *
 * @since 0.4.0
 * @category services
 */
export class LimiterRepo extends Effect.Service<LimiterRepo>()("@effect-batch/LimiterRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const limiters = sql(t.limiters)
    const permits = sql(t.permits)
    const users = sql(t.limiterUsers)

    /**
     * Creates or redefines a limiter. Returns false, changing nothing, when the tenant already has
     * `max` other limiters.
     */
    const define = (
      tenant: Ids.TenantId,
      definition: Definition,
      now: number,
      max: number
    ): Effect.Effect<boolean, SqlError> =>
      sql<{ name: string }>`INSERT INTO ${limiters}
          (tenant, name, permits, interval_ms, created_at_ms, updated_at_ms)
        SELECT ${tenant}, ${definition.name}, ${definition.permits}, ${definition.intervalMs}, ${now}, ${now}
        WHERE EXISTS (SELECT 1 FROM ${limiters} WHERE tenant = ${tenant} AND name = ${definition.name})
          OR (SELECT count(*) FROM ${limiters} WHERE tenant = ${tenant}) < ${max}
        ON CONFLICT (tenant, name) DO UPDATE SET permits = EXCLUDED.permits,
          interval_ms = EXCLUDED.interval_ms, updated_at_ms = EXCLUDED.updated_at_ms
        RETURNING name`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.withSpan("LimiterRepo.define")
      )

    /** Deletes a limiter with its permits; false when there was none. */
    const remove = (tenant: Ids.TenantId, name: string): Effect.Effect<boolean, SqlError> =>
      sql<{ name: string }>`DELETE FROM ${limiters} WHERE tenant = ${tenant} AND name = ${name} RETURNING name`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.withSpan("LimiterRepo.remove")
      )

    /**
     * The limiters with their state at `now`, by tenant and name: the tenant's (or the one named), or
     * every tenant's.
     */
    const select = (
      tenant: Option.Option<Ids.TenantId>,
      now: number,
      name: Option.Option<string>
    ): Effect.Effect<ReadonlyArray<LimiterState & { readonly tenant: string }>, SqlError> =>
      sql`SELECT l.tenant, l.name, l.permits, l.interval_ms, l.held_until_ms, l.throttles, l.last_throttled_at_ms,
          (SELECT COALESCE(sum(p.count), 0) FROM ${permits} p
            WHERE p.tenant = l.tenant AND p.name = l.name AND p.expires_at_ms > ${now}) AS counted,
          (SELECT count(*) FROM ${users} u
            WHERE u.tenant = l.tenant AND u.name = l.name AND u.seen_at_ms > ${now - recentUse}) AS processes,
          (SELECT COALESCE(sum(u.effective_concurrency), 0) FROM ${users} u
            WHERE u.tenant = l.tenant AND u.name = l.name AND u.seen_at_ms > ${now - recentUse})
            AS effective_concurrency
        FROM ${limiters} l
        WHERE ${Option.isSome(tenant) ? sql`l.tenant = ${tenant.value}` : sql`true`}
          ${Option.isSome(name) ? sql`AND l.name = ${name.value}` : sql``}
        ORDER BY l.tenant, l.name`.pipe(
        Effect.flatMap(decodeStates),
        Effect.map((rows) =>
          rows.map((r) => ({
            tenant: r.tenant,
            name: r.name,
            permits: r.permits,
            intervalMs: r.interval_ms,
            counted: r.counted,
            heldUntilMs: r.held_until_ms,
            throttles: r.throttles,
            lastThrottledAtMs: Option.fromNullable(r.last_throttled_at_ms),
            processes: r.processes,
            effectiveConcurrency: r.effective_concurrency
          }))
        ),
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("LimiterRepo.states")
      )

    /** The tenant's limiters (or the one named) with their state at `now`, by name. */
    const states = (
      tenant: Ids.TenantId,
      now: number,
      name: Option.Option<string>
    ): Effect.Effect<ReadonlyArray<LimiterState>, SqlError> => select(Option.some(tenant), now, name)

    /** Every tenant's limiters with their state at `now`, by tenant and name (for metrics). */
    const everyTenant = (now: number) => select(Option.none(), now, Option.none())

    /** Settles the previous block and reserves the next (see `sql/Limiter.ts`); none: no such limiter. */
    const take = (input: TakeInput): Effect.Effect<Option.Option<Taken>, SqlError> => {
      const settle = Option.getOrUndefined(input.settle)
      return sql`SELECT ${sql.literal(t.prefix)}limiter_take(${input.tenant}, ${input.name}, ${input.owner},
          ${input.now}, ${input.want}, ${input.leaseMs}, ${settle?.grant ?? null}::bigint,
          ${settle?.used ?? 0}, ${settle?.lastUseMs ?? 0}, ${Option.getOrNull(input.concurrency)}::int) AS r`.pipe(
        Effect.flatMap((rows) => decodeTaken(rows[0])),
        Effect.map(({ r }) =>
          r === null ? Option.none() : Option.some<Taken>({
            grant: r.grant === null ? Option.none() : Option.some(String(r.grant)),
            granted: r.granted,
            usableUntilMs: r.usableUntil ?? input.now,
            heldUntilMs: r.heldUntil,
            nextFreeMs: Option.fromNullable(r.nextFreeMs),
            permits: r.permits,
            intervalMs: r.intervalMs
          })
        ),
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("LimiterRepo.take")
      )
    }

    /**
     * Holds the limiter back until `untilMs` (or later, if it already is) after a rate-limit answer.
     * Returns the time it is held back until; none when there is no such limiter.
     */
    const hold = (
      tenant: Ids.TenantId,
      name: string,
      untilMs: number,
      now: number
    ): Effect.Effect<Option.Option<number>, SqlError> =>
      sql<{ held_until_ms: unknown }>`UPDATE ${limiters}
        SET held_until_ms = GREATEST(held_until_ms, ${untilMs}), throttles = throttles + 1,
          last_throttled_at_ms = ${now}, updated_at_ms = ${now}
        WHERE tenant = ${tenant} AND name = ${name} RETURNING held_until_ms`.pipe(
        Effect.map((rows) => rows[0] === undefined ? Option.none() : Option.some(Number(rows[0].held_until_ms))),
        Effect.withSpan("LimiterRepo.hold")
      )

    return { define, remove, states, everyTenant, take, hold } as const
  })
}) {}
