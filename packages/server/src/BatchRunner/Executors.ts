/**
 * The executors of one batch in this process: fibers that take leased items from the local queue
 * while a slot is free, run each attempt under its own deadline and the batch's rate limiters,
 * decide its outcome with the pure policy, and hand start mark and outcome to the committer. A
 * finished attempt frees its slot at once: the next item starts without waiting for a round trip.
 */
import { ItemCounts, Policy } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import type { ClaimedItem } from "@effect-batch/tables/ItemRepo"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as AttemptMetrics from "../internal/AttemptMetrics.js"
import { decide, type Decided } from "../internal/Decide.js"
import type * as Limiters from "../internal/Limiters.js"
import type * as Steps from "../internal/Steps.js"
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
  readonly steps: Steps.Steps
  /** starts another executor in the runner's scope (one that timed out cannot run again) */
  readonly spawn: (executor: Effect.Effect<void>) => Effect.Effect<unknown>
  /** one attempt in this many runs in a span of its own (0: none) */
  readonly attemptSpans: number
}): Executors => {
  const { attemptSpans, committer, limiters, run, runnable, watchdog } = options
  const slots = run.slots
  let attempts = 0
  const traced = <A, E, R>(effect: Effect.Effect<A, E, R>, item: ClaimedItem): Effect.Effect<A, E, R> =>
    attemptSpans > 0 && ++attempts % attemptSpans === 0
      ? Effect.withSpan(effect, "BatchRunner.attempt", {
        attributes: { batchId: run.batchId, itemKey: item.key, attempt: item.attempt, round: item.round }
      })
      : effect

  /** Records a finished attempt: frees its slot, decides its outcome, hands it to the committer. */
  const finish = (
    item: ClaimedItem,
    start: number,
    now: number,
    result: Either.Either<unknown, Workflow.AttemptFailure>,
    random: number
  ): Decided => {
    run.inflight.delete(item)
    slots.finish()
    // a free slot with a short queue: the claimer may lease more
    run.nudge()
    run.attemptMs = average(run.attemptMs, now - start)
    AttemptMetrics.attemptFinished(now - start)
    const config = run.record.config
    if (result._tag === "Left" && result.left.error.category === "rate-limited") {
      AttemptMetrics.throttled(result.left.limiter)
      if (limiters.lowersConcurrency(result.left.limiter, now)) run.throttled()
    } else {
      run.aimd = Policy.aimdOnSuccess(run.aimd, config.concurrency)
      slots.setLimit(run.aimd.limit)
    }
    const record = run.record
    const decided = decide({
      config,
      item,
      // the key was validated when the batch was submitted
      key: ItemKey.make(item.key, true),
      result,
      durationMs: now - start,
      now,
      random,
      counters: {
        settled: ItemCounts.settled(record.counts),
        failed: record.counts.failed,
        consecutiveFailures: record.consecutiveFailures
      },
      timeout: config.timeout,
      effectiveConcurrency: run.aimd.limit
    })
    // a decision to stop the batch stops this process from starting anything at once
    if (decided.action._tag === "Abort" || decided.action._tag === "ExceedBudget") {
      run.pendingStops++
      slots.hold(true)
    }
    committer.finished({ _tag: "Finished", outcome: decided.outcome }, decided)
    return decided
  }

  /** Finishes a failed attempt: the policy's jitter and a throttle's hold need the runtime. */
  const finishFailed = (item: ClaimedItem, start: number, now: number, failure: Workflow.AttemptFailure) =>
    Effect.flatMap(Random.next, (random) => {
      const decided = finish(item, start, now, Either.left(failure), random)
      return Option.isSome(decided.throttle)
        ? limiters.holdBack(decided.throttle.value.limiter, decided.throttle.value.untilMs)
        : Effect.void
    })

  /**
   * One executor: takes the next leased item while a slot is free and runs its attempt on its own
   * fiber, which the watchdog interrupts at the attempt's deadline. Everything but the attempt and the
   * wait for work is uninterruptible, so an outcome is always handed over whole. A fiber that was timed
   * out stays interrupted: it hands over the timeout, starts a replacement and ends.
   */
  const executor: Effect.Effect<void> = Effect.withFiberRuntime<void>((fiber) =>
    Effect.clockWith((clock) =>
      Effect.uninterruptibleMask((restore) => {
        const attempt = (item: ClaimedItem): Effect.Effect<boolean> => {
          run.nudge()
          const start = clock.unsafeCurrentTimeMillis()
          AttemptMetrics.attemptStarted()
          run.inflight.add(item)
          if (item.lost_leases === 0) {
            committer.started({ _tag: "Started", item, atMs: start })
            return execute(item, start)
          }
          // A process holding this item lost its lease before: its start is recorded before it runs,
          // so that if this attempt takes the process down too, it counts as a used attempt.
          return Effect.flatMap(
            restore(committer.startedDurably({ _tag: "Started", item, atMs: start })),
            (recorded) => {
              if (recorded) return execute(item, start)
              // the lease was lost meanwhile: the item is no longer this process's
              run.inflight.delete(item)
              slots.finish()
              run.nudge()
              return Effect.succeed(true)
            }
          )
        }
        const execute = (item: ClaimedItem, start: number): Effect.Effect<boolean> => {
          const timeout = run.record.config.timeout
          watchdog.watch(fiber, start + Duration.toMillis(timeout))
          // the key was validated when the batch was submitted
          const itemKey = ItemKey.make(item.key, true)
          return Effect.flatMap(
            Effect.exit(restore(traced(
              runnable.run(item.input, {
                batchId: run.batchId,
                itemKey,
                attempt: item.attempt,
                round: item.round,
                limit: limiters.limit,
                step: options.steps.forAttempt(item, itemKey)
              }),
              item
            ))),
            (exit): Effect.Effect<boolean> => {
              const now = clock.unsafeCurrentTimeMillis()
              // past its deadline it is a timeout, whatever it answered
              if (watchdog.unwatch(fiber)) {
                return finishFailed(item, start, now, Workflow.timedOut(timeout)).pipe(
                  Effect.zipRight(options.spawn(Effect.interruptible(executor))),
                  Effect.as(false)
                )
              }
              if (Exit.isSuccess(exit)) {
                finish(item, start, now, Either.right(exit.value), 0)
                return Effect.succeed(true)
              }
              const failed = Cause.failureOption(exit.cause)
              if (Option.isSome(failed)) return Effect.as(finishFailed(item, start, now, failed.value), true)
              // interrupted: from outside (the runner stops), and the item's lease goes back with the
              // others; or by the workflow itself, which is its outcome
              return Effect.matchCauseEffect(restore(Effect.void), {
                onFailure: () => Effect.succeed(false),
                onSuccess: () => Effect.as(finishFailed(item, start, now, Workflow.interrupted), true)
              })
            }
          )
        }
        const loop: Effect.Effect<void> = Effect.suspend(() => {
          const item = slots.tryStart()
          if (item === undefined) {
            if (slots.stopped()) return Effect.void
            return Effect.flatMap(restore(slots.startable), () => loop)
          }
          return Effect.flatMap(attempt(item), (again) => again ? loop : Effect.void)
        })
        return loop
      })
    )
  ).pipe(Effect.annotateLogs({ fiber: "executor" }))

  return { executor }
}
