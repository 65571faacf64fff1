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
        const leaseMs = Duration.toMillis(first.value.config.leaseDuration)

        const attempt = (item: ClaimedItem) =>
          Effect.gen(function*() {
            const record = yield* Ref.get(current)
            const config = record.config
            const key = decodeKey(item.key)
            const start = yield* Clock.currentTimeMillis
            const result = yield* runnable.run(item.input, {
              batchId,
              itemKey: key,
              attempt: item.attempt,
              round: item.round,
              limit: limiters.limit
            }).pipe(
              Effect.timeoutFail({ duration: config.timeout, onTimeout: () => Workflow.timedOut(config.timeout) }),
              Effect.either
            )
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
          })

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
              return yield* FiberSet.clear(fibers)
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
              return yield* FiberSet.clear(fibers)
            }
            if (action._tag === "AutoPause") yield* pauseBatch(record, action.consecutiveFailures)
          })

        const writer = Effect.gen(function*() {
          const group = yield* Queue.takeBetween(outcomes, 1, options.maxGroup)
          const decided = Array.from(group)
          const now = yield* Clock.currentTimeMillis
          const result = yield* items.complete({
            batchId,
            owner: options.owner,
            now,
            outcomes: decided.map((d) => d.outcome)
          }).pipe(
            Effect.tapError((e) => Effect.logWarning("recording outcomes failed; retrying", e)),
            Effect.retry(Schedule.exponential("50 millis").pipe(Schedule.union(Schedule.spaced("5 seconds"))))
          )
          yield* Ref.update(inflight, (n) => n - decided.length)
          yield* events.committed(batchId, result.seq)
          yield* afterCommit(decided, new Set(result.applied), result)
          yield* Queue.offer(wake, undefined)
        }).pipe(Effect.forever)

        yield* Effect.forkScoped(writer)
        yield* Clock.currentTimeMillis.pipe(
          Effect.flatMap((now) => items.extendLeases({ batchId, owner: options.owner, now, leaseMs })),
          Effect.catchAll((e) => Effect.logWarning("extending leases failed", e)),
          Effect.repeat(Schedule.spaced(Duration.millis(Math.max(250, leaseMs / 3)))),
          Effect.forkScoped
        )

        /**
         * Waits for a commit, a command, the next due retry (only when there is capacity to run it) or
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
            yield* Effect.raceFirst(
              Queue.take(wake).pipe(Effect.zipRight(Queue.takeAll(wake))),
              Effect.sleep(Duration.millis(wait))
            )
          })

        while (true) {
          const latest = yield* repo.getAnyTenant(batchId)
          if (Option.isNone(latest)) return
          const record = latest.value
          yield* Ref.set(current, record)
          if (record.state._tag !== "Running") {
            if (record.state._tag === "Paused") {
              while ((yield* Ref.get(inflight)) > 0) yield* waitForNews(record, false)
            } else {
              yield* FiberSet.clear(fibers)
            }
            return
          }
          const effective = Math.min(record.config.concurrency, (yield* Ref.get(aimd)).limit)
          const free = effective - (yield* Ref.get(inflight))
          let claimed: ReadonlyArray<ClaimedItem> = []
          if (free > 0) {
            const now = yield* Clock.currentTimeMillis
            claimed = yield* items.claim({ batchId, owner: options.owner, max: free, now, leaseMs })
            if (claimed.length > 0) {
              yield* Ref.update(inflight, (n) => n + claimed.length)
              for (const item of claimed) yield* FiberSet.run(fibers, attempt(item))
              yield* events.committed(batchId, record.seq)
            }
          }
          if (claimed.length > 0 && claimed.length === free) continue
          if ((yield* Ref.get(inflight)) === 0 && ItemCounts.pending(record.counts) === 0) {
            yield* settle(record)
            continue
          }
          yield* waitForNews(record, free - claimed.length > 0)
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
