/**
 * The executors of one batch in this process: fibers that take leased items from the local queue
 * while a slot is free, run each attempt under its own deadline and the batch's rate limiters,
 * decide its outcome with the pure policy, and hand start mark and outcome to the committer. A
 * finished attempt frees its slot at once: the next item starts without waiting for a round trip.
 */
import { ItemCounts, Policy } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import type { ClaimedItem } from "@effect-batch/tables/ItemRepo"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { decide } from "../internal/Decide.js"
import type * as Limiters from "../internal/Limiters.js"
import * as Workflow from "../Workflow.js"
import type { Committer } from "./Committer.js"
import { average, type Run } from "./Run.js"
import type { Watchdog } from "./Watchdog.js"

export interface Executors {
  /** one executor fiber: runs until the slots are stopped */
  readonly executor: Effect.Effect<void>
}

export const make = (options: {
  readonly run: Run
  readonly runnable: Workflow.Runnable
  readonly limiters: Limiters.Limiters
  readonly watchdog: Watchdog
  readonly committer: Committer
}): Executors => {
  const { committer, limiters, run, runnable, watchdog } = options
  const slots = run.slots
  let aimd = Policy.aimdStart(run.record.config.concurrency)

  /** Records a finished attempt: frees its slot, decides its outcome, hands it to the committer. */
  const finish = (item: ClaimedItem, start: number, result: Either.Either<unknown, Workflow.AttemptFailure>) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      run.inflight.delete(item)
      slots.finish()
      // a free slot with a short queue: the claimer may lease more
      run.nudge()
      run.attemptMs = average(run.attemptMs, now - start)
      const config = run.record.config
      const throttled = result._tag === "Left" && result.left.error.category === "rate-limited"
      aimd = throttled ? Policy.aimdOnThrottle(aimd) : Policy.aimdOnSuccess(aimd, config.concurrency)
      slots.setLimit(aimd.limit)
      const record = run.record
      const decided = decide({
        config,
        item,
        // the key was validated when the batch was submitted
        key: ItemKey.make(item.key, true),
        result,
        durationMs: now - start,
        now,
        random: yield* Random.next,
        counters: {
          settled: ItemCounts.settled(record.counts),
          failed: record.counts.failed,
          consecutiveFailures: record.consecutiveFailures
        },
        timeout: config.timeout,
        effectiveConcurrency: aimd.limit
      })
      if (Option.isSome(decided.throttle)) {
        yield* limiters.holdBack(decided.throttle.value.limiter, decided.throttle.value.untilMs)
      }
      // a decision to stop the batch stops this process from starting anything at once
      if (decided.action._tag === "Abort" || decided.action._tag === "ExceedBudget") {
        run.pendingStops++
        slots.hold(true)
      }
      committer.finished({ _tag: "Finished", outcome: decided.outcome }, decided)
    })

  /**
   * One executor: takes the next leased item while a slot is free and runs its attempt in a child
   * fiber, which the watchdog interrupts at the attempt's deadline.
   */
  const executor: Effect.Effect<void> = Effect.gen(function*() {
    while (true) {
      const item = slots.tryStart()
      if (item === undefined) {
        if (slots.stopped()) return
        yield* slots.startable
        continue
      }
      run.nudge()
      const start = yield* Clock.currentTimeMillis
      committer.started({ _tag: "Started", item, atMs: start })
      run.inflight.add(item)
      const timeout = run.record.config.timeout
      const fiber = yield* Effect.fork(Effect.either(runnable.run(item.input, {
        batchId: run.batchId,
        itemKey: ItemKey.make(item.key, true),
        attempt: item.attempt,
        round: item.round,
        limit: limiters.limit
      })))
      yield* watchdog.watch(fiber, start + Duration.toMillis(timeout))
      const exit = yield* Fiber.await(fiber).pipe(
        Effect.onInterrupt(() => Effect.sync(() => watchdog.unwatch(fiber)))
      )
      // past its deadline it is a timeout, whatever it answered
      const result = watchdog.unwatch(fiber)
        ? Either.left(Workflow.timedOut(timeout))
        : Exit.isSuccess(exit)
        ? exit.value
        : Either.left(Workflow.interrupted)
      yield* finish(item, start, result)
    }
  }).pipe(Effect.annotateLogs({ fiber: "executor" }))

  return { executor }
}
