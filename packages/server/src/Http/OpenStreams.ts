/**
 * Open event streams (SSE and `StreamProgress`), counted per tenant and bounded.
 *
 * @since 0.1.0
 */
import { Errors } from "@effect-batch/domain"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import { HttpConfig } from "./Config.js"

/**
 * How a stream is served.
 *
 * @since 0.1.0
 */
export type Transport = "sse" | "rpc"

interface Counts {
  readonly perTenant: HashMap.HashMap<string, number>
  readonly sse: number
  readonly rpc: number
}

/**
 * The open event streams of this process.
 *
 * @since 0.1.0
 */
export class OpenStreams extends Effect.Service<OpenStreams>()("@effect-batch/OpenStreams", {
  effect: Effect.gen(function*() {
    const config = yield* HttpConfig
    const counts = yield* Ref.make<Counts>({ perTenant: HashMap.empty(), sse: 0, rpc: 0 })
    const limitExceeded = new Errors.LimitExceeded({
      limit: "open event streams per tenant",
      max: config.maxStreamsPerTenant
    })

    const change = (current: Counts, tenant: string, transport: Transport, by: number): Counts => {
      const n = Option.getOrElse(HashMap.get(current.perTenant, tenant), () => 0) + by
      return {
        perTenant: n === 0 ? HashMap.remove(current.perTenant, tenant) : HashMap.set(current.perTenant, tenant, n),
        sse: current.sse + (transport === "sse" ? by : 0),
        rpc: current.rpc + (transport === "rpc" ? by : 0)
      }
    }

    /** Holds one of the tenant's stream slots until the scope closes; `LimitExceeded` when none is free. */
    const acquire = (
      tenant: string,
      transport: Transport
    ): Effect.Effect<void, Errors.LimitExceeded, Scope.Scope> =>
      Effect.acquireRelease(
        Ref.modify(counts, (current): readonly [Either.Either<void, Errors.LimitExceeded>, Counts] => {
          const open = Option.getOrElse(HashMap.get(current.perTenant, tenant), () => 0)
          return open >= config.maxStreamsPerTenant
            ? [Either.left(limitExceeded), current]
            : [Either.right(undefined), change(current, tenant, transport, 1)]
        }).pipe(Effect.flatMap((admitted) => admitted)),
        () => Ref.update(counts, (current) => change(current, tenant, transport, -1))
      )

    /** The open streams of this process, by transport. */
    const open: Effect.Effect<{ readonly sse: number; readonly rpc: number }> = Effect.map(
      Ref.get(counts),
      ({ rpc, sse }) => ({ sse, rpc })
    )

    return { acquire, open } as const
  })
}) {}
