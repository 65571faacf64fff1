/**
 * `GET /health`: whether this process can serve — the database answers a `SELECT 1`, the worker loop
 * ticked recently — and how far claiming lags. 200 when healthy, 503 otherwise. No token needed; it
 * carries no tenant data.
 *
 * @since 0.1.0
 */
import { StatsReader } from "@effect-batch/tables/StatsReader"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Worker, WorkerConfig } from "../Worker.js"
import { HttpConfig } from "./Config.js"

/**
 * The route.
 *
 * @since 0.1.0
 */
export const path = "/health"

const Millis = Schema.NonNegative

/**
 * The body of `GET /health`.
 *
 * @since 0.1.0
 */
export const Health = Schema.Struct({
  status: Schema.Literal("ok", "unavailable"),
  database: Schema.Struct({ reachable: Schema.Boolean, latencyMs: Millis }),
  worker: Schema.Struct({
    /** false in an API-only process (`WorkerConfig.enabled`) */
    enabled: Schema.Boolean,
    /** the loop ticked within `workerStaleAfter` (always true when disabled) */
    alive: Schema.Boolean,
    /** since the last tick; absent before the first */
    lastTickAgeMs: Schema.optionalWith(Millis, { exact: true }),
    /** batches this process is running */
    runningBatches: Schema.NonNegativeInt
  }),
  /** absent when the database is unreachable */
  claimLag: Schema.optionalWith(
    Schema.Struct({
      queuedInRunningBatches: Schema.NonNegativeInt,
      overdueRetryMs: Millis,
      expiredLeaseMs: Millis
    }),
    { exact: true }
  )
})
/** @since 0.1.0 */
export type Health = typeof Health.Type

const encode = Schema.encode(Health)

/**
 * Checks the database and the worker loop.
 *
 * @since 0.1.0
 */
export const check: Effect.Effect<Health, never, StatsReader | Worker> = Effect.gen(function*() {
  const stats = yield* StatsReader
  const worker = yield* Worker
  const workerConfig = yield* WorkerConfig
  const config = yield* HttpConfig
  const startedAt = yield* Clock.currentTimeMillis
  const ping = yield* stats.ping.pipe(
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "timed out" }),
    Effect.tapError((error) => Effect.logWarning("health: the database is unreachable", error)),
    Effect.either
  )
  const now = yield* Clock.currentTimeMillis
  const reachable = ping._tag === "Right"
  const lag = reachable
    ? yield* stats.claimLag(now).pipe(
      Effect.timeout("5 seconds"),
      Effect.tapError((error) => Effect.logWarning("health: could not read the claim lag", error)),
      Effect.option
    )
    : Option.none()
  const tick = yield* worker.health
  const age = tick.lastTickMs > 0 ? Option.some(Math.max(0, now - tick.lastTickMs)) : Option.none()
  const alive = !workerConfig.enabled ||
    Option.exists(age, (ms) => ms <= Duration.toMillis(config.workerStaleAfter))
  return {
    status: reachable && alive ? "ok" : "unavailable",
    database: { reachable, latencyMs: now - startedAt },
    worker: {
      enabled: workerConfig.enabled,
      alive,
      ...Option.match(age, { onNone: () => ({}), onSome: (lastTickAgeMs) => ({ lastTickAgeMs }) }),
      runningBatches: tick.batches
    },
    ...Option.match(lag, { onNone: () => ({}), onSome: (claimLag) => ({ claimLag }) })
  }
})

/**
 * The health route.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<never, never, HttpLayerRouter.HttpRouter | StatsReader | Worker> = HttpLayerRouter
  .use((router) =>
    Effect.gen(function*() {
      const context = yield* Effect.context<StatsReader | Worker>()
      yield* router.add(
        "GET",
        path,
        check.pipe(
          Effect.flatMap((health) =>
            Effect.map(encode(health), (body) =>
              HttpServerResponse.unsafeJson(body, {
                status: health.status === "ok" ? 200 : 503,
                headers: { "cache-control": "no-store" }
              }))
          ),
          Effect.orDie,
          Effect.provide(context)
        )
      )
    })
  )
