/**
 * `GET /metrics`: Prometheus text exposition. Batches by state, slow batches and items by state (over
 * every tenant, from the batches' counters), open event streams and the worker loop of this process, the claim
 * lag, and the state of every shared rate limiter across the fleet (labelled by tenant and limiter);
 * then the counters and histograms of this process's attempts (Effect metrics named `effect_batch_…`).
 * No token needed: keep it on an internal network (the limiters' labels name tenants).
 *
 * @since 0.1.0
 */
import { LimiterRepo } from "@effect-batch/tables/LimiterRepo"
import { StatsReader } from "@effect-batch/tables/StatsReader"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as AttemptMetrics from "../internal/AttemptMetrics.js"
import * as Storage from "../internal/Storage.js"
import { Worker } from "../Worker.js"
import { type Family, fromSnapshot, render } from "./Metrics/Exposition.js"
import { OpenStreams } from "./OpenStreams.js"

/**
 * The route.
 *
 * @since 0.1.0
 */
export const path = "/metrics"

const itemStates = [
  ["queued", "queued"],
  ["running", "running"],
  ["retry_scheduled", "retryScheduled"],
  ["succeeded", "succeeded"],
  ["failed", "failed"],
  ["quarantined", "quarantined"],
  ["skipped", "skipped"]
] as const

/**
 * Collects the metrics.
 *
 * @since 0.1.0
 */
export const collect = Effect.gen(function*() {
  const stats = yield* StatsReader
  const limiterRepo = yield* LimiterRepo
  const worker = yield* Worker
  const streams = yield* OpenStreams
  const now = yield* Clock.currentTimeMillis
  const [batches, slow, items, lag, tick, open, limiters, registry] = yield* Effect.all([
    stats.batchesByState,
    stats.slowBatches,
    stats.itemsByState,
    stats.claimLag(now),
    worker.health,
    streams.open,
    limiterRepo.everyTenant(now),
    Metric.snapshot
  ])
  const perLimiter = (value: (limiter: (typeof limiters)[number]) => number) =>
    limiters.map((l) => [{ tenant: l.tenant, limiter: l.name }, value(l)] as const)
  const families: ReadonlyArray<Family> = [
    {
      type: "gauge",
      name: "effect_batch_batches",
      help: "Batches by state.",
      samples: batches.map((b) => [{ state: b.state }, b.count])
    },
    {
      type: "gauge",
      name: "effect_batch_batches_slow",
      help: "Running or paused batches that slowdown detection found slower than their own baseline.",
      samples: [[{}, slow]]
    },
    {
      type: "gauge",
      name: "effect_batch_items",
      help: "Items by item state and by the state of their batch.",
      samples: items.flatMap((row) =>
        itemStates.map(([label, field]) => [{ batch_state: row.batchState, state: label }, row[field]] as const)
      )
    },
    {
      type: "gauge",
      name: "effect_batch_queued_items_running_batches",
      help: "Items waiting to be claimed in running batches.",
      samples: [[{}, lag.queuedInRunningBatches]]
    },
    {
      type: "gauge",
      name: "effect_batch_overdue_retry_seconds",
      help: "How long the oldest due retry of a running batch has waited to be claimed.",
      samples: [[{}, lag.overdueRetryMs / 1000]]
    },
    {
      type: "gauge",
      name: "effect_batch_expired_lease_seconds",
      help: "How long the oldest expired lease has waited to be reclaimed.",
      samples: [[{}, lag.expiredLeaseMs / 1000]]
    },
    {
      type: "gauge",
      name: "effect_batch_open_streams",
      help: "Event streams open on this process.",
      samples: [[{ transport: "sse" }, open.sse], [{ transport: "rpc" }, open.rpc]]
    },
    {
      type: "gauge",
      name: "effect_batch_worker_batches",
      help: "Batches this process is running.",
      samples: [[{}, tick.batches]]
    },
    {
      type: "gauge",
      name: "effect_batch_worker_last_tick_age_seconds",
      help: "Seconds since the worker loop of this process last ticked (-1 before the first tick).",
      samples: [[{}, tick.lastTickMs > 0 ? Math.max(0, now - tick.lastTickMs) / 1000 : -1]]
    },
    {
      type: "gauge",
      name: "effect_batch_limiter_limit",
      help: "A shared rate limiter's limit per interval.",
      samples: perLimiter((l) => l.permits)
    },
    {
      type: "gauge",
      name: "effect_batch_limiter_interval_seconds",
      help: "A shared rate limiter's interval.",
      samples: perLimiter((l) => l.intervalMs / 1000)
    },
    {
      type: "gauge",
      name: "effect_batch_limiter_permits_in_window",
      help: "Permits of a shared rate limiter counted now: used within the interval or reserved by a process.",
      samples: perLimiter((l) => l.counted)
    },
    {
      type: "gauge",
      name: "effect_batch_limiter_held_back_seconds",
      help: "How much longer a shared rate limiter is held back after a rate-limit answer (0: not held back).",
      samples: perLimiter((l) => Math.max(0, l.heldUntilMs - now) / 1000)
    },
    {
      type: "gauge",
      name: "effect_batch_limiter_throttles",
      help: "Rate-limit answers seen through a shared rate limiter.",
      samples: perLimiter((l) => l.throttles)
    },
    {
      type: "gauge",
      name: "effect_batch_limiter_effective_concurrency",
      help: "Attempts the users of a shared rate limiter may execute at once, summed over processes.",
      samples: perLimiter((l) => l.effectiveConcurrency)
    }
  ]
  return render([...families, ...fromSnapshot(registry, AttemptMetrics.prefix)])
}).pipe(Storage.decide("collecting the metrics"))

/**
 * The metrics route.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<
  never,
  never,
  HttpLayerRouter.HttpRouter | StatsReader | LimiterRepo | Worker | OpenStreams
> = HttpLayerRouter.use((router) =>
  Effect.gen(function*() {
    const context = yield* Effect.context<StatsReader | LimiterRepo | Worker | OpenStreams>()
    yield* router.add(
      "GET",
      path,
      collect.pipe(
        Effect.map((text) =>
          HttpServerResponse.text(text, {
            contentType: "text/plain; version=0.0.4; charset=utf-8",
            headers: { "cache-control": "no-store" }
          })
        ),
        Effect.catchTag("StorageUnavailable", () => Effect.succeed(HttpServerResponse.empty({ status: 503 }))),
        Effect.provide(context)
      )
    )
  })
)
