/**
 * `GET /metrics`: Prometheus text exposition. Batches by state and items by state (over every tenant,
 * from the batches' counters), open event streams and the worker loop of this process, and the claim
 * lag. No token needed: it carries no tenant names, only totals — keep it on an internal network.
 *
 * @since 0.1.0
 */
import { StatsReader } from "@effect-batch/tables/StatsReader"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Worker } from "../Worker.js"
import { OpenStreams } from "./OpenStreams.js"

/**
 * The route.
 *
 * @since 0.1.0
 */
export const path = "/metrics"

interface Family {
  readonly name: string
  readonly help: string
  readonly samples: ReadonlyArray<readonly [labels: Record<string, string>, value: number]>
}

const escape = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

/**
 * Renders metric families as Prometheus text (every family is a gauge).
 *
 * @since 0.1.0
 */
export const render = (families: ReadonlyArray<Family>): string =>
  families.map((family) => {
    const lines = [`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} gauge`]
    for (const [labels, value] of family.samples) {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`)
      lines.push(`${family.name}${pairs.length === 0 ? "" : `{${pairs.join(",")}}`} ${value}`)
    }
    return lines.join("\n")
  }).join("\n") + "\n"

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
  const worker = yield* Worker
  const streams = yield* OpenStreams
  const now = yield* Clock.currentTimeMillis
  const [batches, items, lag, tick, open] = yield* Effect.all([
    stats.batchesByState,
    stats.itemsByState,
    stats.claimLag(now),
    worker.health,
    streams.open
  ])
  const families: ReadonlyArray<Family> = [
    {
      name: "effect_batch_batches",
      help: "Batches by state.",
      samples: batches.map((b) => [{ state: b.state }, b.count])
    },
    {
      name: "effect_batch_items",
      help: "Items by item state and by the state of their batch.",
      samples: items.flatMap((row) =>
        itemStates.map(([label, field]) => [{ batch_state: row.batchState, state: label }, row[field]] as const)
      )
    },
    {
      name: "effect_batch_queued_items_running_batches",
      help: "Items waiting to be claimed in running batches.",
      samples: [[{}, lag.queuedInRunningBatches]]
    },
    {
      name: "effect_batch_overdue_retry_seconds",
      help: "How long the oldest due retry of a running batch has waited to be claimed.",
      samples: [[{}, lag.overdueRetryMs / 1000]]
    },
    {
      name: "effect_batch_expired_lease_seconds",
      help: "How long the oldest expired lease has waited to be reclaimed.",
      samples: [[{}, lag.expiredLeaseMs / 1000]]
    },
    {
      name: "effect_batch_open_streams",
      help: "Event streams open on this process.",
      samples: [[{ transport: "sse" }, open.sse], [{ transport: "rpc" }, open.rpc]]
    },
    {
      name: "effect_batch_worker_batches",
      help: "Batches this process is running.",
      samples: [[{}, tick.batches]]
    },
    {
      name: "effect_batch_worker_last_tick_age_seconds",
      help: "Seconds since the worker loop of this process last ticked (-1 before the first tick).",
      samples: [[{}, tick.lastTickMs > 0 ? Math.max(0, now - tick.lastTickMs) / 1000 : -1]]
    }
  ]
  return render(families)
})

/**
 * The metrics route.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<never, never, HttpLayerRouter.HttpRouter | StatsReader | Worker | OpenStreams> =
  HttpLayerRouter.use((router) =>
    Effect.gen(function*() {
      const context = yield* Effect.context<StatsReader | Worker | OpenStreams>()
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
          Effect.catchTag("SqlError", (error) =>
            Effect.zipRight(
              Effect.logWarning("metrics: the database failed", error),
              Effect.succeed(HttpServerResponse.empty({ status: 503 }))
            )),
          Effect.provide(context)
        )
      )
    })
  )
