/**
 * The worker loop of this process: starts a runner for every running batch, reclaims expired leases,
 * and runs post-settlement hooks.
 *
 * @since 0.1.0
 */
import type { Ids } from "@effect-batch/domain"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import { BatchRepo } from "@effect-batch/tables/BatchRepo"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { BatchEvents } from "./BatchEvents.js"
import { BatchRunner, type RunnerHandle } from "./BatchRunner.js"
import * as Storage from "./internal/Storage.js"
import * as LostLeases from "./Worker/LostLeases.js"

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
  /** the most start marks and outcomes recorded in one statement */
  readonly maxGroup: number
  /** the largest encoded output of a durable step, in bytes (JSON) */
  readonly maxStepOutputBytes: number
  /**
   * the most items of a batch this process leases ahead of its free slots (0: only what runs); it
   * leases less when attempts are slow, enough for two claim round trips at the measured rate
   */
  readonly prefetch: number
  /**
   * on shutdown: how long the attempts running here may take to finish (nothing new starts, leased
   * items go back at once) before they are interrupted and their leases given back; zero interrupts
   * them at once
   */
  readonly drainTimeout: Duration.Duration
  /** whether this process runs items at all (an API-only process sets false) */
  readonly enabled: boolean
  /** whether this process drives campaigns (starts their batches, settles them); only when `enabled` */
  readonly campaigns: boolean
}

/**
 * The worker's options. Defaults: a random owner, a 1 second poll, groups of up to 1,000 entries, a
 * lease-ahead of up to 500 items per batch, step outputs of up to 1 MiB, no drain on shutdown.
 *
 * @since 0.1.0
 */
export class WorkerConfig extends Context.Reference<WorkerConfig>()("@effect-batch/WorkerConfig", {
  defaultValue: (): WorkerOptions => ({
    owner: `${process.pid}-${crypto.randomUUID().slice(0, 8)}`,
    pollInterval: Duration.seconds(1),
    maxGroup: 1_000,
    maxStepOutputBytes: 1_048_576,
    prefetch: 500,
    drainTimeout: Duration.zero,
    enabled: true,
    campaigns: true
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
    const events = yield* BatchEvents
    const repo = yield* BatchRepo
    const lostLeases = yield* LostLeases.make
    const runners = yield* FiberMap.make<Ids.BatchId>()
    const handles = new Map<Ids.BatchId, RunnerHandle>()
    const kickQueue = yield* Queue.sliding<void>(1)
    const lastTick = yield* Ref.make(0)

    // the loop and `run` both start runners: one at a time, so that a batch never gets two
    const starting = yield* Effect.makeSemaphore(1)
    const start = (batchId: Ids.BatchId) =>
      Effect.gen(function*() {
        if (yield* FiberMap.has(runners, batchId)) return
        const handle: RunnerHandle = { wake: yield* Queue.sliding<void>(1), hold: () => {} }
        handles.set(batchId, handle)
        yield* FiberMap.run(
          runners,
          batchId,
          runner.run(batchId, handle, options).pipe(
            Effect.catchAllCause((cause) =>
              Effect.logError("batch runner failed; it restarts on the next tick", cause)
            ),
            Effect.ensuring(Effect.sync(() => handles.delete(batchId)))
          )
        )
      }).pipe(starting.withPermits(1))

    const runHook = (batchId: Ids.BatchId, wait: boolean) =>
      repo.runHook(batchId, hook, { wait }).pipe(
        Effect.asVoid,
        Effect.catchAllCause((cause) => Effect.logError("settlement hook failed; it runs again later", cause))
      )

    /**
     * Takes back what owners whose lease expired by `now` held: their started attempts are lost (each
     * a used attempt, decided by the batch's failure policy), the rest goes back to the queue.
     */
    const reclaim = (now: number) =>
      Effect.gen(function*() {
        const reclaimed = yield* lostLeases.reclaim(now)
        for (const [batchId, n] of reclaimed) {
          yield* Effect.logInfo(`reclaimed ${n} item(s) of an expired lease`).pipe(Effect.annotateLogs({ batchId }))
          yield* kick(batchId)
        }
        return reclaimed
      }).pipe(Storage.decide("reclaiming expired leases"))

    const tick = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* reclaim(now)
      for (const batchId of yield* repo.runnable(1_000)) yield* start(batchId)
      for (const batchId of yield* repo.pendingHooks(100)) yield* runHook(batchId, false)
      yield* Ref.set(lastTick, now)
    }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("worker tick failed", cause)))

    /** Wakes the loop (new or resumed work) and, if it runs, the batch's runner (a command changed it). */
    const kick = (batchId?: Ids.BatchId) =>
      Queue.offer(kickQueue, undefined).pipe(
        Effect.zipRight(
          batchId === undefined ? Effect.void : Effect.suspend(() => {
            const handle = handles.get(batchId)
            return handle === undefined ? Effect.void : Queue.offer(handle.wake, undefined)
          })
        ),
        Effect.asVoid
      )

    if (options.enabled) {
      // a command in any process: this process's runner of that batch starts nothing until it has
      // read the batch again
      yield* events.commands.pipe(
        Stream.runForEach((batchId) =>
          Effect.sync(() => handles.get(batchId)?.hold()).pipe(Effect.zipRight(kick(batchId)))
        ),
        Effect.forkScoped
      )
      yield* tick.pipe(
        Effect.zipRight(Effect.raceFirst(Queue.take(kickQueue), Effect.sleep(options.pollInterval))),
        Effect.forever,
        Effect.forkScoped
      )
    }

    /**
     * Runs a batch that was just started in this process: starts its runner here now (or wakes the
     * one that runs), without waiting for the loop's next look for work.
     */
    const run = (batchId: Ids.BatchId) =>
      options.enabled
        ? Effect.suspend(() => {
          // a runner that is there may be ending: the loop looks again too
          return handles.has(batchId) ? kick(batchId) : start(batchId)
        })
        : Effect.void

    /**
     * Stops this process's runner of a batch from starting attempts until it reads the batch again
     * (after `kick`): called before a command that stops work, so that nothing starts here once the
     * command has committed.
     */
    const hold = (batchId: Ids.BatchId) => Effect.sync(() => handles.get(batchId)?.hold())

    /** When the loop last completed a tick (epoch millis), for health checks. */
    const health = Effect.all({ lastTickMs: Ref.get(lastTick), batches: FiberMap.size(runners) })

    /**
     * Runs a batch's settlement hook now if it is pending and this process runs hooks. A redrive calls
     * it first, so that the settlement it leaves gets its own run while the batch still shows it.
     */
    const runPendingHook = (batchId: Ids.BatchId) => options.enabled ? runHook(batchId, true) : Effect.void

    return { kick, run, hold, health, runPendingHook, reclaim, owner: options.owner } as const
  })
}) {}
