/**
 * Runs one batch in this process. The runner is several small parts (see `BatchRunner/`): a claimer
 * that leases items ahead into a local queue, executors that run them within this process's slot
 * share, a watchdog for their deadlines, a committer that records start marks and outcomes in
 * groups, lease renewal, slowdown sampling, and an announcer. This module wires them and reacts to the batch's state:
 * `Running` runs, `Paused` stops starting and gives back what waits, anything else stops; when every
 * item is settled it settles the batch (or starts the next round of `retry-failed`).
 *
 * @since 0.1.0
 */
import { BatchCommand, ItemCounts, Policy, Summary } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import { BatchRepo } from "@effect-batch/tables/BatchRepo"
import { type CommitResult, ItemRepo } from "@effect-batch/tables/ItemRepo"
import { StepRepo } from "@effect-batch/tables/StepRepo"
import { TrendRepo } from "@effect-batch/tables/TrendRepo"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import { BatchEvents } from "./BatchEvents.js"
import * as Announcer from "./BatchRunner/Announcer.js"
import * as Claimer from "./BatchRunner/Claimer.js"
import * as Committer from "./BatchRunner/Committer.js"
import * as Executors from "./BatchRunner/Executors.js"
import * as Leases from "./BatchRunner/Leases.js"
import * as Run from "./BatchRunner/Run.js"
import * as Trends from "./BatchRunner/Trends.js"
import * as Watchdog from "./BatchRunner/Watchdog.js"
import { BatchStateMachine } from "./internal/BatchStateMachine.js"
import * as BatchStops from "./internal/BatchStops.js"
import * as Limiters from "./internal/Limiters.js"
import * as Steps from "./internal/Steps.js"
import * as Observability from "./Observability.js"
import { SharedLimiters } from "./SharedLimiters.js"
import { WorkflowRegistry } from "./WorkflowRegistry.js"

/**
 * Tuning of a runner.
 *
 * @since 0.1.0
 */
export type RunnerOptions = Run.RunnerOptions

/**
 * How the worker reaches a running runner: `wake` after a command, `hold` before a command that
 * stops work (the runner starts nothing until it has read the batch again).
 *
 * @since 0.2.0
 */
export interface RunnerHandle {
  readonly wake: Queue.Queue<void>
  hold: () => void
}

/**
 * The summary of a batch whose unsettled items are about to be skipped.
 *
 * @since 0.1.0
 */
export const summaryAfterSkip: (counts: ItemCounts.ItemCounts) => Summary.Summary = BatchStops.summaryAfterSkip

/** How long stopping may take to record the last outcomes and give the leases back. */
const stopTimeout = Duration.seconds(5)

class SettleRace extends Schema.TaggedError<SettleRace>()("SettleRace", {}) {}

/**
 * The per-batch runner.
 *
 * @since 0.1.0
 */
export class BatchRunner extends Effect.Service<BatchRunner>()("@effect-batch/BatchRunner", {
  effect: Effect.gen(function*() {
    const repo = yield* BatchRepo
    const items = yield* ItemRepo
    const stepRepo = yield* StepRepo
    const trendRepo = yield* TrendRepo
    const sharedLimiters = yield* SharedLimiters
    const machine = yield* BatchStateMachine
    const events = yield* BatchEvents
    const registry = yield* WorkflowRegistry

    const ignoreRace = BatchStops.ignoreRace

    /**
     * Batches whose last runner here could not give its leases back (the database was out of reach):
     * the next runner, which renews the same owner's share, gives them back first, or they would never
     * expire.
     */
    const unreleased = new Set<Ids.BatchId>()

    /**
     * Stops the batch as the policy decided after a commit. Failing it interrupts the attempts running
     * here first. If another writer changed the batch meanwhile, a failing runner ends and starts again:
     * its executors are gone, and the attempts they held go back to the queue with the runner's leases.
     */
    const stopBatch = (record: BatchRecord, stop: BatchStops.Stop, interruptAttempts: Effect.Effect<void>) =>
      BatchStops.execute(machine, items, record, stop, interruptAttempts).pipe(
        Effect.catchIf(
          BatchStops.isRace,
          (e) =>
            stop._tag === "Fail"
              ? Effect.dieMessage(`the batch changed while it was failing (${e._tag}); the runner starts again`)
              : BatchStops.logRace(e)
        )
      )

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

    /** The policy on the committed counters, after every group commit. */
    const onCommit = (
      run: Run.Run,
      announcer: Announcer.Announcer,
      applyShare: (slots: number) => void,
      /** interrupts the attempts running here, and waits until they are */
      interruptAttempts: Effect.Effect<void>
    ) =>
    (
      group: ReadonlyArray<Committer.Pending>,
      result: CommitResult
    ) =>
      Effect.gen(function*() {
        run.record = {
          ...run.record,
          seq: result.seq,
          counts: result.counts,
          consecutiveFailures: result.consecutiveFailures
        }
        applyShare(result.slots)
        announcer.committed(result.seq)
        run.seen(result.version)
        const applied = new Set(result.applied)
        let idx = 0
        let abort: Committer.Pending | undefined
        let retries = false
        let predicted = 0
        for (const pending of group) {
          if (pending.entry._tag !== "Finished") continue
          const tag = pending.decided?.action._tag
          if (tag === "Abort" || tag === "ExceedBudget") predicted++
          if (applied.has(idx)) {
            if (abort === undefined && pending.decided?.action._tag === "Abort") abort = pending
            if (pending.entry.outcome.state === "retry") retries = true
          }
          idx++
        }
        const record = run.record
        const stop = <E>(effect: Effect.Effect<void, E>) =>
          Effect.gen(function*() {
            run.slots.hold(true)
            run.stale = true
            yield* effect
            run.pendingStops -= predicted
            // read what the command stored before anything may start again
            run.stale = true
            run.changed.notify()
          })
        const stopping = BatchStops.afterRecorded(record.config, abort?.decided, {
          failed: result.counts.failed,
          settled: ItemCounts.settled(result.counts),
          consecutiveFailures: result.consecutiveFailures
        })
        if (Option.isSome(stopping)) return yield* stop(stopBatch(record, stopping.value, interruptAttempts))
        run.pendingStops -= predicted
        // the outcomes that made an executor stop starting are committed, and the batch goes on
        if (run.pendingStops === 0 && run.slots.holding() && run.record.state._tag === "Running" && !run.stale) {
          run.slots.hold(false)
          run.news.notify()
        }
        if (retries) run.claimable()
        if (ItemCounts.pending(result.counts) === 0) run.changed.notify()
      })

    /**
     * Runs a batch until it leaves `Running` and `Paused` (or is finished here). Returns at once when
     * this process does not know the batch's workflow.
     */
    const run = (batchId: Ids.BatchId, handle: RunnerHandle, options: RunnerOptions) =>
      Effect.gen(function*() {
        if (unreleased.has(batchId)) {
          yield* items.release({ batchId, owner: options.owner, items: [], dropShare: true })
          unreleased.delete(batchId)
        }
        const first = yield* repo.getAnyTenant(batchId)
        if (Option.isNone(first) || first.value.state._tag !== "Running") return
        const workflow = registry.get(first.value.workflow)
        if (Option.isNone(workflow)) {
          return yield* Effect.logWarning(`workflow ${first.value.workflow} is not registered in this process`)
        }
        const r = Run.make(batchId, first.value, options)
        const slots = r.slots
        const limiters = yield* Limiters.make({
          rateLimits: first.value.config.rateLimits,
          tenant: first.value.tenant,
          shared: sharedLimiters,
          throttled: r.throttled,
          concurrency: () => r.aimd.limit
        })
        const watchdog = Watchdog.make()
        const committer = Committer.make(r)
        const announcer = Announcer.make(events, batchId, first.value.seq)
        const applyShare = (granted: number) => {
          const previous = slots.share()
          slots.setShare(granted)
          if (granted > previous) r.news.notify()
          // Less than before: the database counts the old share as in use until this process reports,
          // so it reports now. Less than it could use: lease renewal asks again soon by itself.
          if (granted < previous) r.renewNow()
        }
        handle.hold = () => {
          slots.hold(true)
          r.stale = true
        }

        // Registered first, so it runs last: after every part below is interrupted, the outcomes
        // that finished are recorded and what this process still holds goes back to the queue.
        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            slots.stop()
            yield* committer.flush
            yield* items.release({
              batchId,
              owner: options.owner,
              items: [...slots.drain(), ...r.inflight],
              dropShare: true
            })
            yield* announcer.flush
          }).pipe(
            Effect.timeout(stopTimeout),
            Effect.catchAllCause((cause) =>
              Effect.zipRight(
                Effect.sync(() => unreleased.add(batchId)),
                Effect.logWarning("giving leases back failed; the next runner gives them back", cause)
              )
            )
          )
        )

        // the parts run as long as the runner; the first to fail fails the runner (the worker restarts it)
        const parts = yield* FiberSet.make<unknown, unknown>()
        yield* FiberSet.run(parts, watchdog.run)
        yield* FiberSet.run(parts, announcer.run)
        // executors apart from the other parts: a policy stop interrupts them alone
        const executorFibers = yield* FiberSet.make<void, never>()
        // Registered after the parts, so it runs before they are interrupted: nothing starts any more,
        // what waits goes back to the queue, and the attempts running here may finish (and be recorded
        // by the committer) within the drain timeout.
        if (!Duration.isZero(options.drainTimeout)) {
          yield* Effect.addFinalizer(() =>
            Effect.gen(function*() {
              slots.stop()
              const waiting = slots.drain()
              if (waiting.length > 0) {
                yield* items.release({ batchId, owner: options.owner, items: waiting, dropShare: false })
              }
              yield* FiberSet.awaitEmpty(executorFibers)
            }).pipe(
              Effect.timeoutOption(options.drainTimeout),
              Effect.flatMap(Option.match({
                onNone: () =>
                  Effect.logInfo(
                    `${slots.executing()} attempt(s) still running after the drain timeout are interrupted`
                  ),
                onSome: () => Effect.void
              })),
              Effect.catchAllCause((cause) => Effect.logWarning("draining the running attempts failed", cause))
            )
          )
        }
        yield* FiberSet.run(parts, committer.run(onCommit(r, announcer, applyShare, FiberSet.clear(executorFibers))))
        yield* FiberSet.run(parts, Claimer.make({ run: r, applyShare }))
        yield* FiberSet.run(parts, Leases.make({ run: r, applyShare }))
        yield* FiberSet.run(
          parts,
          Trends.make({
            run: r,
            trends: trendRepo,
            committed: announcer.committed,
            pause: (reason) =>
              Effect.gen(function*() {
                slots.hold(true)
                r.stale = true
                yield* stopBatch(r.record, BatchStops.Stop.Pause({ reason }), Effect.void)
                r.stale = true
                r.changed.notify()
              }).pipe(Effect.catchAll((e) => Effect.logWarning("pausing the slow batch failed", e)))
          })
        )
        const executors = Executors.make({
          run: r,
          runnable: workflow.value,
          limiters,
          watchdog,
          committer,
          steps: Steps.make({
            repo: stepRepo,
            batchId,
            declared: workflow.value.steps?.length,
            maxOutputBytes: options.maxStepOutputBytes,
            record: (step) => committer.step({ _tag: "Step", step })
          }),
          spawn: (executor) => FiberSet.run(executorFibers, executor),
          attemptSpans: yield* Observability.AttemptSpans
        })

        const refresh = Effect.gen(function*() {
          r.stale = false
          const fresh = yield* repo.getAnyTenant(batchId)
          if (Option.isNone(fresh)) return false
          // counters from a statement that committed after this read began are newer: keep them
          r.record = fresh.value.seq >= r.record.seq
            ? fresh.value
            : { ...fresh.value, seq: r.record.seq, counts: r.record.counts }
          return true
        })

        const control = Effect.gen(function*() {
          while (true) {
            // a command or a policy decision changed the batch: act on what is stored, not on the past
            if (r.stale && !(yield* refresh)) return
            const record = r.record
            const state = record.state._tag
            if (state === "Running") {
              if (r.pendingStops === 0 && slots.holding()) {
                slots.hold(false)
                r.claimable()
                r.renewNow()
              }
              // as many executors as the concurrency, counting the live ones (a policy stop interrupts them)
              for (let n = yield* FiberSet.size(executorFibers); n < record.config.concurrency; n++) {
                yield* FiberSet.run(executorFibers, executors.executor)
              }
              const idle = slots.executing() === 0 && slots.size() === 0 && committer.idle()
              if (idle && ItemCounts.pending(record.counts) === 0) {
                yield* settle(record)
                if (!(yield* refresh)) return
                continue
              }
            } else if (state === "Paused") {
              slots.hold(true)
              const waiting = slots.drain()
              if (waiting.length > 0) {
                yield* items.release({ batchId, owner: options.owner, items: waiting, dropShare: false })
              }
            } else {
              return
            }
            const news = yield* Effect.raceAll([
              Queue.take(handle.wake).pipe(Effect.zipRight(Queue.takeAll(handle.wake)), Effect.as("command" as const)),
              Effect.as(r.changed.wait(() => r.stale), "changed" as const),
              Effect.as(Effect.sleep(options.pollInterval), "poll" as const)
            ])
            if (news !== "changed" || r.stale || state !== "Running" || ItemCounts.pending(r.record.counts) === 0) {
              if (!(yield* refresh)) return
            }
            // a command (or leases reclaimed here) may have put items back in the queue
            if (news === "command") r.claimable()
          }
        }).pipe(Effect.annotateLogs({ fiber: "control" }))
        yield* Effect.raceFirst(control, FiberSet.join(parts))
      }).pipe(
        Effect.scoped,
        Effect.annotateLogs({ batchId }),
        Effect.withSpan("BatchRunner.run", { attributes: { batchId } })
      )

    return { run } as const
  })
}) {}
