/**
 * Open event streams (SSE and `StreamProgress`), counted per tenant over every process on the
 * database and bounded by `maxStreamsPerTenant`. A stream is admitted in the database (one round
 * trip per stream opened, serialized per tenant); each process keeps its own counts there alive and
 * corrects them while it runs, so a process that died stops counting when its rows expire.
 *
 * @since 0.1.0
 */
import { Errors, type Ids } from "@effect-batch/domain"
import { StreamRepo } from "@effect-batch/tables/StreamRepo"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Storage from "../internal/Storage.js"
import { HttpConfig } from "./Config.js"

/**
 * How a stream is served.
 *
 * @since 0.1.0
 */
export type Transport = "sse" | "rpc"

/** How long this process's counts in the database stay valid without renewal. */
const rowLifetime = Duration.seconds(30)

/** How often they are renewed. */
const renewEvery = Duration.seconds(10)

/**
 * The open event streams, per tenant across processes.
 *
 * @since 0.1.0
 */
export class OpenStreams extends Effect.Service<OpenStreams>()("@effect-batch/OpenStreams", {
  scoped: Effect.gen(function*() {
    const config = yield* HttpConfig
    const repo = yield* StreamRepo
    const owner = `${process.pid}-${crypto.randomUUID().slice(0, 8)}`
    const perTenant = new Map<Ids.TenantId, number>()
    const local = { sse: 0, rpc: 0 }
    const limitExceeded = new Errors.LimitExceeded({
      limit: "open event streams per tenant",
      max: config.maxStreamsPerTenant
    })
    const lifetime = Duration.toMillis(rowLifetime)

    // Every change of a count is written whole with the next version, and a count is raised here
    // before the database admits it: a write that fails or arrives late leaves the database counting
    // more streams than are open, never fewer, until the next renewal writes the true counts.
    let version = 0
    const change = (tenant: Ids.TenantId, transport: Transport, by: number) => {
      const count = (perTenant.get(tenant) ?? 0) + by
      perTenant.set(tenant, count)
      local[transport] += by
      version++
      return count
    }

    /**
     * Holds one of the tenant's stream slots until the scope closes; `LimitExceeded` when the
     * tenant's streams in every process add up to the limit.
     */
    const acquire = (
      tenant: Ids.TenantId,
      transport: Transport
    ): Effect.Effect<void, Errors.LimitExceeded | Errors.StorageUnavailable, Scope.Scope> =>
      Effect.acquireRelease(
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const count = change(tenant, transport, 1)
          return repo.admit({
            tenant,
            owner,
            count,
            version,
            max: config.maxStreamsPerTenant,
            now,
            expiresAtMs: now + lifetime
          }).pipe(
            Effect.onExit((exit) =>
              exit._tag === "Success" && exit.value ? Effect.void : Effect.sync(() => change(tenant, transport, -1))
            ),
            Effect.flatMap((admitted) => admitted ? Effect.void : Effect.fail(limitExceeded))
          )
        }).pipe(Storage.decide("admitting a stream")),
        () =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const count = change(tenant, transport, -1)
            return repo.record({ tenant, owner, count, version, expiresAtMs: now + lifetime })
          }).pipe(Effect.catchAllCause((cause) => Effect.logDebug("recording a closed stream failed", cause)))
      )

    const renew = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      for (const [tenant, count] of [...perTenant]) {
        version++
        yield* repo.record({ tenant, owner, count, version, expiresAtMs: now + lifetime })
        if (count === 0 && perTenant.get(tenant) === 0) perTenant.delete(tenant)
      }
      yield* repo.sweep(now)
    })

    // this process's counts stay alive, and are corrected, while it runs
    yield* renew.pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("renewing the open streams' rows failed", cause)),
      Effect.repeat(Schedule.spaced(renewEvery)),
      Effect.forkScoped
    )

    /** The open streams of this process, by transport. */
    const open: Effect.Effect<{ readonly sse: number; readonly rpc: number }> = Effect.sync(() => ({ ...local }))

    return { acquire, open } as const
  })
}) {}
