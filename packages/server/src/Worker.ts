/**
 * The worker loop of this process: starts a runner for every running batch, reclaims expired leases,
 * and runs post-settlement hooks.
 *
 * @since 0.1.0
 */
import type { Ids } from "@effect-batch/domain"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import { BatchRepo } from "@effect-batch/tables/BatchRepo"
import { ItemRepo } from "@effect-batch/tables/ItemRepo"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import { BatchRunner } from "./BatchRunner.js"

/**
 * Tuning of the worker loop.
 *
 * @since 0.1.0
 */
export interface WorkerOptions {
  /** the lease owner name of this process (unique per process) */
  readonly owner: string
  /** how often the loop looks for work and expired leases when nothing wakes it */
  readonly pollInterval: Duration.Duration
  /** the most outcomes recorded in one statement */
  readonly maxGroup: number
  /** whether this process runs items at all (an API-only process sets false) */
  readonly enabled: boolean
}

/**
 * The worker's options. Defaults: a random owner, a 1 second poll, groups of up to 1,000 outcomes.
 *
 * @since 0.1.0
 */
export class WorkerConfig extends Context.Reference<WorkerConfig>()("@effect-batch/WorkerConfig", {
  defaultValue: (): WorkerOptions => ({
    owner: `${process.pid}-${crypto.randomUUID().slice(0, 8)}`,
    pollInterval: Duration.seconds(1),
    maxGroup: 1_000,
    enabled: true
  })
}) {}

/**
 * Sets the worker's options.
 *
 * @since 0.1.0
 */
export const layerConfig = (options: Partial<WorkerOptions>): Layer.Layer<WorkerConfig> =>
  Layer.effect(WorkerConfig, Effect.map(WorkerConfig, (defaults) => ({ ...defaults, ...options })))

/**
 * A durable hook run once per settlement (Completed, Failed, Rejected), inside the transaction that
 * marks it done: writes it makes through the same database commit with that mark, so a crash before
 * the commit runs it again and a crash after it does not. A redrive runs a still pending hook before
 * the batch runs again, so that each settlement gets its own run and sees its own settled batch.
 *
 * @since 0.1.0
 */
export class SettledHook extends Context.Reference<SettledHook>()("@effect-batch/SettledHook", {
  defaultValue: (): (record: BatchRecord) => Effect.Effect<void, unknown> => () => Effect.void
}) {}

/**
 * The worker loop.
 *
 * @since 0.1.0
 */
export class Worker extends Effect.Service<Worker>()("@effect-batch/Worker", {
  scoped: Effect.gen(function*() {
    const options = yield* WorkerConfig
    const hook = yield* SettledHook
    const runner = yield* BatchRunner
    const repo = yield* BatchRepo
    const items = yield* ItemRepo
    const runners = yield* FiberMap.make<Ids.BatchId>()
    const wakes = new Map<Ids.BatchId, Queue.Queue<void>>()
    const kickQueue = yield* Queue.sliding<void>(1)
    const lastTick = yield* Ref.make(0)

    const start = (batchId: Ids.BatchId) =>
      Effect.gen(function*() {
        if (yield* FiberMap.has(runners, batchId)) return
        const wake = yield* Queue.sliding<void>(1)
        wakes.set(batchId, wake)
        yield* FiberMap.run(
          runners,
          batchId,
          runner.run(batchId, wake, options).pipe(
            Effect.catchAllCause((cause) =>
              Effect.logError("batch runner failed; it restarts on the next tick", cause)
            ),
            Effect.ensuring(Effect.sync(() => wakes.delete(batchId)))
          )
        )
      })

    const runHook = (batchId: Ids.BatchId) =>
      repo.runHook(batchId, hook).pipe(
        Effect.asVoid,
        Effect.catchAllCause((cause) => Effect.logError("settlement hook failed; it runs again later", cause))
      )

    const tick = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const reclaimed = yield* items.reclaimExpired({ now, limit: 10_000 })
      if (reclaimed > 0) yield* Effect.logInfo(`reclaimed ${reclaimed} expired lease(s)`)
      for (const batchId of yield* repo.runnable(1_000)) yield* start(batchId)
      for (const batchId of yield* repo.pendingHooks(100)) yield* runHook(batchId)
      yield* Ref.set(lastTick, now)
    }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("worker tick failed", cause)))

    if (options.enabled) {
      yield* tick.pipe(
        Effect.zipRight(Effect.raceFirst(Queue.take(kickQueue), Effect.sleep(options.pollInterval))),
        Effect.forever,
        Effect.forkScoped
      )
    }

    /** Wakes the loop (new or resumed work) and, if it runs, the batch's runner (a command changed it). */
    const kick = (batchId?: Ids.BatchId) =>
      Queue.offer(kickQueue, undefined).pipe(
        Effect.zipRight(
          batchId === undefined ? Effect.void : Effect.suspend(() => {
            const wake = wakes.get(batchId)
            return wake === undefined ? Effect.void : Queue.offer(wake, undefined)
          })
        ),
        Effect.asVoid
      )

    /** When the loop last completed a tick (epoch millis), for health checks. */
    const health = Effect.all({ lastTickMs: Ref.get(lastTick), batches: FiberMap.size(runners) })

    /**
     * Runs a batch's settlement hook now if it is pending and this process runs hooks. A redrive calls
     * it first, so that the settlement it leaves gets its own run while the batch still shows it.
     */
    const runPendingHook = (batchId: Ids.BatchId) => options.enabled ? runHook(batchId) : Effect.void

    return { kick, health, runPendingHook, owner: options.owner } as const
  })
}) {}
