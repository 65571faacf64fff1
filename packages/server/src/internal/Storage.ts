import { Errors } from "@effect-batch/domain"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as Stream from "effect/Stream"

/**
 * SQLSTATE classes of a server that cannot take the request now: connection exception (08),
 * insufficient resources (53), operator intervention (57: shutting down, starting up).
 */
const unavailableClasses = ["08", "53", "57"]

/**
 * Whether a database failure means the database cannot be reached, rather than a statement it refused
 * (a bug). An error the server did not report (no `severity`) happened on the way to it: a refused or
 * cut connection, a timeout.
 */
export const isUnavailable = (error: SqlError): boolean => {
  const cause = error.cause
  if (!Predicate.hasProperty(cause, "severity")) return true
  const code = Predicate.hasProperty(cause, "code") ? cause.code : undefined
  return typeof code === "string" && unavailableClasses.includes(code.slice(0, 2))
}

/**
 * A database failure at the edge: logged, then `StorageUnavailable` if the database cannot be reached,
 * else a defect without its details.
 */
export const atEdge = (what: string) => (error: SqlError): Effect.Effect<never, Errors.StorageUnavailable> =>
  Effect.zipRight(
    Effect.logError(`${what} failed on a database error`, error),
    isUnavailable(error) ? Effect.fail(new Errors.StorageUnavailable()) : Effect.dieMessage("internal error")
  )

/**
 * Decides the database failures of a service method once, at the service's edge: `StorageUnavailable`
 * or a defect (see `atEdge`); every other error passes through.
 */
export const decide = (what: string) =>
<A, E, R>(
  effect: Effect.Effect<A, E, R>
) =>
  Effect.catchIf(
    effect,
    (error: E): error is Extract<E, SqlError> => error instanceof SqlError,
    (error) => atEdge(what)(error)
  )

/** `decide` for a stream. */
export const decideStream = (what: string) =>
<A, E, R>(
  stream: Stream.Stream<A, E, R>
) => Stream.catchAll(stream, (error: E) => Stream.fromEffect(decide(what)(Effect.fail(error))))

/** `decide` for a layer: a database failure while it is built is `StorageUnavailable` or a defect. */
export const decideLayer = <A, E, R>(
  self: Layer.Layer<A, E, R>
): Layer.Layer<A, Exclude<E, Extract<E, SqlError>> | Errors.StorageUnavailable, R> =>
  Layer.catchAll(
    self,
    (error: E) =>
      Layer.unwrapEffect(Effect.map(Effect.flip(decide("starting effect-batch")(Effect.fail(error))), Layer.fail))
  )
