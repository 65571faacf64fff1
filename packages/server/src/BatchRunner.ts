/**
 * Runs one batch in this process: claims due items up to the free capacity, runs each attempt with
 * its timeout and rate limiters, records outcomes in groups, and executes the policy's decisions.
 *
 * @since 0.1.0
 */
import { BatchCommand, BatchState, ItemCounts, Policy, Summary } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import { BatchRepo } from "@effect-batch/tables/BatchRepo"
import { type ClaimedItem, ItemRepo } from "@effect-batch/tables/ItemRepo"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { BatchEvents } from "./BatchEvents.js"
import { BatchStateMachine } from "./BatchStateMachine.js"
import { decide, type Decided } from "./internal/Decide.js"
import * as Limiters from "./internal/Limiters.js"
import * as Workflow from "./Workflow.js"
import { WorkflowRegistry } from "./WorkflowRegistry.js"

/**
 * Tuning of a runner.
 *
 * @since 0.1.0
 */
export interface RunnerOptions {
  /** this process's lease owner name */
  readonly owner: string
  /** how long the runner waits for news before it looks at the batch again */
  readonly pollInterval: Duration.Duration
  /** the most outcomes recorded in one statement */
  readonly maxGroup: number
}

const decodeKey = Schema.decodeUnknownSync(ItemKey)

/** The shortest wait between two looks at a batch with nothing claimable. */
const minWaitMs = 10

/** The longest the timeout watchdog sleeps before it looks at the attempts again. */
const watchdogMaxSleepMs = 1_000

/** The most often a runner announces new events (each announcement is a `pg_notify`). */
const announceInterval = Duration.millis(20)

/**
 * The summary of a batch whose unsettled items are about to be skipped.
 *
 * @since 0.1.0
 */
export const summaryAfterSkip = (counts: ItemCounts.ItemCounts): Summary.Summary =>
  Summary.fromCounts(ItemCounts.ItemCounts.make({
    ...counts,
    queued: 0,
    running: 0,
    retryScheduled: 0,
    skipped: counts.skipped + ItemCounts.pending(counts)
  }))

/**
 * The per-batch runner.
 *
 * @since 0.1.0
 */
export class BatchRunner extends Effect.Service<BatchRunner>()("@effect-batch/BatchRunner", {
  effect: Effect.gen(function*() {
    const repo = yield* BatchRepo
    const items = yield* ItemRepo
    const machine = yield* BatchStateMachine
    const events = yield* BatchEvents
    const registry = yield* WorkflowRegistry

    const ignoreRace = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
      effect.pipe(
        Effect.asVoid,
        Effect.catchIf(
          (e) => e._tag === "InvalidTransition" || e._tag === "VersionConflict",
          (e) => Effect.logDebug("another writer changed the batch first", e)
        )
      )

    const failBatch = (record: BatchRecord, reason: BatchState.FailureReason) =>
      ignoreRace(machine.execute({
        tenant: record.tenant,
        batchId: record.id,
        command: (current, at) =>
          Effect.succeed(new BatchCommand.Fail({ at, reason, summary: summaryAfterSkip(current.counts) })),
        during: (current, _, now) => Effect.asVoid(items.skipRemaining({ batchId: current.id, reason: "aborted", now }))
      }))

    const pauseBatch = (record: BatchRecord, consecutiveFailures: number) =>
      ignoreRace(machine.execute({
        tenant: record.tenant,
        batchId: record.id,
        command: (_, at) =>
          Effect.succeed(
            new BatchCommand.Pause({ at, reason: new BatchState.CircuitBreakerOpen({ consecutiveFailures }) })
          )
      }))

    /** Every item settled: start the next round of `retry-failed` after its cool-down, or settle. */
    const settle = (record: BatchRecord) =>
      Option.match(Policy.nextRound(record.config, record.round, record.counts.failed), {
        onNone: () =>
          ignoreRace(machine.execute({
            tenant: record.tenant,
            batchId: record.id,
            command: (current, at) =>
              ItemCounts.pending(current.counts) > 0
                ? Effect.fail(new SettleRace())
                : Effect.succeed(
                  new BatchCommand.Settle({
                    at,
                    summary: Summary.fromCounts(current.counts),
                    review: current.config.review
                  })
                )
          })).pipe(Effect.catchTag("SettleRace", () => Effect.void)),
        onSome: ({ after, round }) =>
          Effect.sleep(after).pipe(Effect.zipRight(
            ignoreRace(machine.execute({
              tenant: record.tenant,
              batchId: record.id,
              command: (current, at) =>
                current.round !== record.round || ItemCounts.pending(current.counts) > 0
                  ? Effect.fail(new SettleRace())
                  : Effect.succeed(new BatchCommand.NextRound({ at, requeued: current.counts.failed })),
              during: (current, _, now) =>
                Effect.asVoid(
                  items.requeue({ batchId: current.id, from: "failed", round, actor: "retry-failed policy", now })
                )
            })).pipe(Effect.catchTag("SettleRace", () => Effect.void))
          ))
      })

    /**
     * Runs a batch until it leaves `Running` (or is finished here). Returns at once when this process
     * does not know the batch's workflow.
     */
    const run = (batchId: Ids.BatchId, wake: Queue.Queue<void>, options: RunnerOptions) =>
      Effect.gen(function*() {
        const first = yield* repo.getAnyTenant(batchId)
        if (Option.isNone(first) || first.value.state._tag !== "Running") return
        const workflow = registry.get(first.value.workflow)
        if (Option.isNone(workflow)) {
          return yield* Effect.logWarning(`workflow ${first.value.workflow} is not registered in this process`)
        }
        const runnable = workflow.value
        const current = yield* Ref.make(first.value)
        const limiters = yield* Limiters.make(first.value.config.rateLimits)
        const aimd = yield* Ref.make(Policy.aimdStart(first.value.config.concurrency))
        const inflight = yield* Ref.make(0)
        const fibers = yield* FiberSet.make()
        const outcomes = yield* Queue.unbounded<Decided>()
        // opened by every finished attempt; the loop closes it before it waits
        const ready = yield* Effect.makeLatch(false)
        const leaseMs = Duration.toMillis(first.value.config.leaseDuration)

        // Attempts in flight here with their deadlines. One watchdog per batch times them out: a timer
        // and a race per attempt (`Effect.timeoutFail`) cost more than a no-op workflow itself.
        const active = new Map<string, { readonly fiber: Fiber.RuntimeFiber<void>; readonly deadline: number }>()
        const timedOut = new Set<string>()
        const registered = yield* Effect.makeLatch(false)

        /** Decides and queues the outcome of a finished attempt. */
        const finish = (
          item: ClaimedItem,
          key: Ids.ItemKey,
          start: number,
          result: Either.Either<unknown, Workflow.AttemptFailure>
        ) =>
          Effect.gen(function*() {
            const record = yield* Ref.get(current)
            const config = record.config
            const now = yield* Clock.currentTimeMillis
            const throttled = result._tag === "Left" && result.left.error.category === "rate-limited"
            const limit = yield* Ref.updateAndGet(
              aimd,
              (state) => throttled ? Policy.aimdOnThrottle(state) : Policy.aimdOnSuccess(state, config.concurrency)
            )
            const decided = decide({
              config,
              item,
              key,
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
              effectiveConcurrency: limit.limit
            })
            yield* Option.match(decided.throttle, {
              onNone: () => Effect.void,
              onSome: ({ limiter, untilMs }) => limiters.holdBack(limiter, untilMs)
            })
            yield* Queue.offer(outcomes, decided)
            yield* ready.open
          })

        const attempt = (item: ClaimedItem) =>
          Effect.gen(function*() {
            const key = decodeKey(item.key)
            const start = yield* Clock.currentTimeMillis
            const timeout = (yield* Ref.get(current)).config.timeout
            const result = yield* runnable.run(item.input, {
              batchId,
              itemKey: key,
              attempt: item.attempt,
              round: item.round,
              limit: limiters.limit
            }).pipe(
              Effect.either,
              Effect.onInterrupt(() =>
                Effect.suspend(() => {
                  active.delete(item.key)
                  return timedOut.delete(item.key)
                    ? finish(item, key, start, Either.left(Workflow.timedOut(timeout)))
                    : Effect.void
                })
              )
            )
            // once the workflow has answered, a late watchdog can no longer turn it into a timeout
            yield* Effect.uninterruptible(Effect.suspend(() => {
              active.delete(item.key)
              timedOut.delete(item.key)
              return finish(item, key, start, result)
            }))
          })

        /** Interrupts the attempts past their deadline; `attempt` records them as timed out. */
        const watchdog = Effect.gen(function*() {
          while (true) {
            yield* registered.close
            if (active.size === 0) {
              yield* registered.await
              continue
            }
            const now = yield* Clock.currentTimeMillis
            let next = now + watchdogMaxSleepMs
            for (const [key, entry] of active) {
              if (entry.deadline <= now) {
                active.delete(key)
                timedOut.add(key)
                yield* Fiber.interruptFork(entry.fiber)
              } else {
                next = Math.min(next, entry.deadline)
              }
            }
            yield* Effect.sleep(Duration.millis(Math.max(1, next - now)))
          }
        })
        yield* Effect.forkScoped(watchdog)

        /** Runs the policy on the committed counters; says whether it changed the batch. */
        const afterCommit = (group: ReadonlyArray<Decided>, applied: ReadonlySet<string>, committed: {
          readonly counts: ItemCounts.ItemCounts
          readonly consecutiveFailures: number
        }) =>
          Effect.gen(function*() {
            const record = yield* Ref.get(current)
            const abort = group.find((d) => applied.has(d.outcome.key) && d.action._tag === "Abort")
            if (abort !== undefined && Option.isSome(abort.failure)) {
              yield* failBatch(
                record,
                new BatchState.ItemFailedFinally({ itemKey: decodeKey(abort.outcome.key), error: abort.failure.value })
              )
              yield* FiberSet.clear(fibers)
              return true
            }
            const action = Policy.afterCommit(record.config, {
              failed: committed.counts.failed,
              settled: ItemCounts.settled(committed.counts),
              consecutiveFailures: committed.consecutiveFailures
            })
            if (action._tag === "ExceedBudget") {
              yield* failBatch(
                record,
                new BatchState.ErrorBudgetExceeded({ failed: action.failed, settled: action.settled })
              )
              yield* FiberSet.clear(fibers)
              return true
            }
            if (action._tag === "AutoPause") {
              yield* pauseBatch(record, action.consecutiveFailures)
              return true
            }
            return false
          })

        /**
         * Whether items may be claimed in the statement that records `group`: only when recording it
         * cannot make the policy stop or pause the batch (all successes, and no failure-ratio budget,
         * which a success can bring into force), so that nothing starts after a decision to stop.
         */
        const claimWithCommit = (group: ReadonlyArray<Decided>, config: BatchRecord["config"]) =>
          config.errorBudget?.maxFailureRatio === undefined && group.every((d) => d.outcome.state === "succeeded")

        // Announcing committed events costs a `pg_notify` round trip: coalesce to one per interval.
        const latestSeq = yield* Ref.make(first.value.seq)
        const announcedSeq = yield* Ref.make(first.value.seq)
        const announceSignal = yield* Queue.sliding<void>(1)
        const announce = Effect.gen(function*() {
          const seq = yield* Ref.get(latestSeq)
          if (seq > (yield* Ref.get(announcedSeq))) {
            yield* Ref.set(announcedSeq, seq)
            yield* events.committed(batchId, seq)
          }
        })
        yield* Effect.addFinalizer(() => announce)
        yield* Queue.take(announceSignal).pipe(
          Effect.zipRight(announce),
          Effect.zipRight(Effect.sleep(announceInterval)),
          Effect.forever,
          Effect.forkScoped
        )

        yield* Clock.currentTimeMillis.pipe(
          Effect.flatMap((now) => items.extendLeases({ batchId, owner: options.owner, now, leaseMs })),
          Effect.catchAll((e) => Effect.logWarning("extending leases failed", e)),
          Effect.repeat(Schedule.spaced(Duration.millis(Math.max(250, leaseMs / 3)))),
          Effect.forkScoped
        )

        /**
         * Waits for an outcome, a command, the next due retry (only when there is capacity to run it) or
         * the poll interval. Never returns at once: a runner must not spin on a due item it cannot claim.
         */
        const waitForNews = (record: BatchRecord, canClaim: boolean) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const due = canClaim && record.counts.retryScheduled > 0 ? yield* items.nextDue(batchId) : Option.none()
            const poll = Duration.toMillis(options.pollInterval)
            const wait = Option.match(due, {
              onNone: () => poll,
              onSome: (at) => Math.min(poll, Math.max(minWaitMs, at - now))
            })
            return yield* Effect.raceAll([
              Effect.as(ready.await, "outcome" as const),
              Queue.take(wake).pipe(Effect.zipRight(Queue.takeAll(wake)), Effect.as("command" as const)),
              Effect.as(Effect.sleep(Duration.millis(wait)), "timer" as const),
              // with capacity to spare, another process's commit may have freed a share of the batch
              canClaim ? Effect.as(committedElsewhere, "hint" as const) : Effect.never
            ])
          })

        const committedElsewhere = yield* events.changes(batchId)

        const refresh = repo.getAnyTenant(batchId).pipe(
          Effect.tap(Option.match({ onNone: () => Effect.void, onSome: (record) => Ref.set(current, record) }))
        )

        // One loop per batch and process: each turn records the finished outcomes and claims up to the
        // free capacity in one statement (`ItemRepo.cycle`), and starts the claimed items.
        let claimable = true
        while (true) {
          const record = yield* Ref.get(current)
          const running = record.state._tag === "Running"
          if (!running && record.state._tag !== "Paused") {
            yield* FiberSet.clear(fibers)
            return
          }
          // let the attempts that are ready finish first, so that they are recorded together
          yield* Effect.yieldNow()
          const group = Array.from(yield* Queue.takeUpTo(outcomes, options.maxGroup))
          const held = yield* Ref.get(inflight)
          if (!running && held === 0) return
          const effective = Math.min(record.config.concurrency, (yield* Ref.get(aimd)).limit)
          const capacity = running ? Math.max(0, effective - (held - group.length)) : 0
          const max = group.length === 0 || claimWithCommit(group, record.config) ? capacity : 0
          if (group.length === 0 && (max === 0 || !claimable)) {
            if (held === 0 && ItemCounts.pending(record.counts) === 0) {
              yield* Effect.flatMap(refresh, Option.match({ onNone: () => Effect.void, onSome: settle }))
              yield* refresh
              claimable = true
              continue
            }
            yield* ready.close
            if ((yield* Queue.size(outcomes)) > 0) continue
            const news = yield* waitForNews(record, capacity > 0)
            claimable = true
            // a command, a due retry or the poll: look at the batch again
            if (news === "command" || news === "timer") yield* refresh
            continue
          }
          const now = yield* Clock.currentTimeMillis
          const result = yield* items.cycle({
            batchId,
            owner: options.owner,
            now,
            leaseMs,
            max,
            held: held - group.length,
            outcomes: group.map((d) => d.outcome)
          }).pipe(
            Effect.tapError((e) => Effect.logWarning("recording outcomes or claiming failed; retrying", e)),
            Effect.retry(Schedule.exponential("50 millis").pipe(Schedule.union(Schedule.spaced("5 seconds"))))
          )
          if (Option.isNone(result)) return
          const cycle = result.value
          claimable = max > 0 ? cycle.claimed.length === max : claimable
          yield* Ref.set(inflight, held - group.length + cycle.claimed.length)
          yield* Ref.set(current, {
            ...record,
            seq: cycle.seq,
            counts: cycle.counts,
            consecutiveFailures: cycle.consecutiveFailures
          })
          yield* Ref.set(latestSeq, cycle.seq)
          yield* Queue.offer(announceSignal, undefined)
          const changed = group.length > 0 && (yield* afterCommit(group, new Set(cycle.applied), cycle))
          if (changed || cycle.version !== record.version) yield* refresh
          const after = yield* Ref.get(current)
          if ((after.state._tag === "Running" || after.state._tag === "Paused") && cycle.claimed.length > 0) {
            const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(after.config.timeout)
            for (const item of cycle.claimed) {
              active.set(item.key, { fiber: yield* FiberSet.run(fibers, attempt(item)), deadline })
            }
            yield* registered.open
          }
        }
      }).pipe(
        Effect.scoped,
        Effect.annotateLogs({ batchId }),
        Effect.withSpan("BatchRunner.run", { attributes: { batchId } })
      )

    return { run } as const
  })
}) {}

class SettleRace extends Schema.TaggedError<SettleRace>()("SettleRace", {}) {}
