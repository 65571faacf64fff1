/**
 * Taking back what processes whose lease expired held. The attempts they had started are lost: each
 * counts as a used attempt, and the batch's failure policy decides it like any failed attempt of the
 * category `worker-lost` — a retry while attempts remain, else a final failure (failed, or quarantined
 * when the batch quarantines it) that counts against the error budget, may trip the breaker, and fails
 * the batch under `abort-all`. So an item whose attempts kill their process (a poison pill) ends
 * instead of taking down every worker in turn. Everything else they held goes back to the queue.
 */
import { ItemCounts } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import { BatchRepo } from "@effect-batch/tables/BatchRepo"
import { ItemRepo, type LostAttempt } from "@effect-batch/tables/ItemRepo"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { BatchEvents } from "../BatchEvents.js"
import { BatchStateMachine } from "../internal/BatchStateMachine.js"
import * as BatchStops from "../internal/BatchStops.js"
import { decide, type Decided } from "../internal/Decide.js"
import * as Workflow from "../Workflow.js"

/** The most expired owners taken back per call. */
const limit = 1_000

export const make = Effect.gen(function*() {
  const items = yield* ItemRepo
  const repo = yield* BatchRepo
  const machine = yield* BatchStateMachine
  const events = yield* BatchEvents

  /** The outcomes of lost attempts, decided on the batch as read under its row lock. */
  const decideLost = (now: number, decisions: Map<Ids.BatchId, ReadonlyArray<Decided>>) =>
  (
    batchId: Ids.BatchId,
    lost: ReadonlyArray<LostAttempt>
  ) =>
    Effect.gen(function*() {
      const found = yield* repo.getAnyTenant(batchId)
      if (Option.isNone(found)) return []
      const { config, counts, consecutiveFailures } = found.value
      const decided: Array<Decided> = []
      for (const { item, startedAtMs } of lost) {
        decided.push(decide({
          config,
          item,
          // the key was validated when the batch was submitted
          key: ItemKey.make(item.key, true),
          result: Either.left(Workflow.workerLost(item.consumed + 1, item.lost_leases + 1)),
          durationMs: Math.max(0, now - startedAtMs),
          now,
          random: yield* Random.next,
          counters: { settled: ItemCounts.settled(counts), failed: counts.failed, consecutiveFailures },
          timeout: config.timeout,
          effectiveConcurrency: config.concurrency
        }))
      }
      decisions.set(batchId, [...(decisions.get(batchId) ?? []), ...decided])
      return decided.map((d) => d.outcome)
    })

  /**
   * Takes back what owners whose lease expired by `now` held, recording their lost attempts, and
   * stops a batch when those outcomes say so. Returns how many items went back to the queue or were
   * recorded, per batch.
   */
  const reclaim = (now: number) =>
    Effect.gen(function*() {
      const decisions = new Map<Ids.BatchId, ReadonlyArray<Decided>>()
      const reclaimed = yield* items.reclaimExpired({ now, limit, decide: decideLost(now, decisions) })
      const changed = new Map<Ids.BatchId, number>()
      for (const r of reclaimed) {
        changed.set(r.batchId, (changed.get(r.batchId) ?? 0) + r.requeued + r.recorded.length)
        if (r.recorded.length === 0) continue
        yield* events.committed(r.batchId, r.seq)
        const recorded = new Set(r.recorded)
        const abort = decisions.get(r.batchId)?.find((d) => recorded.has(d.outcome) && d.action._tag === "Abort")
        const record = yield* repo.getAnyTenant(r.batchId)
        if (Option.isNone(record)) continue
        const stop = BatchStops.afterRecorded(record.value.config, abort, {
          failed: r.counts.failed,
          settled: ItemCounts.settled(r.counts),
          consecutiveFailures: r.consecutiveFailures
        })
        if (Option.isSome(stop)) {
          yield* BatchStops.ignoreRace(BatchStops.execute(machine, items, record.value, stop.value, Effect.void))
        }
      }
      return changed
    }).pipe(Effect.withSpan("Worker.reclaim"))

  return { reclaim } as const
})
