import type { BatchState, Ids } from "@effect-batch/domain"
import { BatchOrchestrator, EffectBatch, Worker, WorkflowRegistry } from "@effect-batch/server"
import { ItemRepo, TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { durableWork } from "./support/Durable.js"
import { advanceUntil, caller } from "./support/Harness.js"

const work = durableWork({ itemMs: 0 })
const maxAttempts = 2
const leaseMs = 1_000
const keys = ["poison", "a", "b", "c"]

/**
 * The orchestrator; with `running` off, this process's worker loop does not run: the test reclaims
 * expired leases itself, at the times it chooses.
 */
const orchestrator = (running: boolean) =>
  EffectBatch.layer.pipe(
    Layer.provide(Layer.mergeAll(
      WorkflowRegistry.layer(work),
      Worker.layerConfig({ enabled: running, pollInterval: Duration.millis(100) })
    ))
  )

/**
 * Processes that die in turn while running the poison pill's attempt: each leases every item, records
 * the poison pill's start, and is never heard of again; once its lease has expired, the worker loop's
 * reclaim takes back what it held. Stops once the poison pill is no longer claimable (it is settled)
 * or after `maxAttempts + 1` deaths.
 */
const dieOnPoison = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const items = yield* ItemRepo.ItemRepo
    const worker = yield* Worker.Worker
    for (let n = 1; n <= maxAttempts + 1; n++) {
      yield* TestClock.adjust(Duration.seconds(1))
      const now = yield* Clock.currentTimeMillis
      const request = { batchId, owner: `dies-${n}`, now, leaseMs, executing: 1, wanted: 1 }
      const claimed = yield* Effect.flatten(items.claim({ ...request, max: 10 }))
      const poison = claimed.items.find((item) => item.key === "poison")
      if (poison === undefined) return n - 1
      assert.strictEqual(poison.consumed, n - 1, "each lost attempt was used")
      yield* items.commit({ ...request, entries: [{ _tag: "Started", item: poison, atMs: now }] })
      yield* TestClock.adjust(leaseMs + 1)
      yield* worker.reclaim(yield* Clock.currentTimeMillis)
    }
    return maxAttempts + 1
  })

/** A worker loop comes up in this process and runs the batch until it is no longer running. */
const runToEnd = (batchId: Ids.BatchId) =>
  Effect.flatMap(
    BatchOrchestrator.BatchOrchestrator,
    (o) => advanceUntil(Effect.map(o.get(caller, batchId), (b) => b.state._tag !== "Running"))
  ).pipe(Effect.provide(orchestrator(true)))

/** The batch's counters agree with its item rows, and its events are numbered 1, 2, … with no gap. */
const assertConsistent = (o: BatchOrchestrator.BatchOrchestrator["Type"], batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const batch = yield* o.get(caller, batchId)
    assert.deepStrictEqual(batch.counts, yield* (yield* ItemRepo.ItemRepo).countFromItems(batchId))
    const events = yield* o.events(caller, batchId, 0).pipe(
      Stream.take(batch.lastSeq),
      Stream.runCollect,
      Effect.map(Chunk.toReadonlyArray)
    )
    assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1))
    return { batch, events }
  })

const resultsOf = (o: BatchOrchestrator.BatchOrchestrator["Type"], batchId: Ids.BatchId) =>
  o.results(caller, batchId).pipe(
    Stream.runCollect,
    Effect.map((results) => Object.fromEntries(Chunk.toReadonlyArray(results).map((r) => [r.key, r])))
  )

const submit = (o: BatchOrchestrator.BatchOrchestrator["Type"], config: Record<string, unknown>) =>
  o.submitEncoded(
    work.name,
    keys.map((key, n) => ({ key, input: { n } })),
    { concurrency: 2, leaseDuration: "1 second", retry: { maxAttempts, base: "10 millis" }, ...config },
    caller
  )

const reasonOf = (state: BatchState.BatchState) => state._tag === "Failed" ? state.reason._tag : undefined

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "120 seconds" })(`lost leases (${name})`, (it) => {
    it.effect("an item whose attempts take their process down fails as worker-lost; the others run; the batch settles", () =>
      Effect.gen(function*() {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        const batch = yield* submit(o, {})
        assert.strictEqual(yield* dieOnPoison(batch.id), maxAttempts)
        const lost = yield* assertConsistent(o, batch.id)
        assert.deepStrictEqual([lost.batch.counts.failed, lost.batch.counts.queued], [1, 3])
        const retried = lost.events.filter((e) => e._tag === "ItemRetryScheduled")
        assert.deepStrictEqual(retried.map((e) => [e.itemKey, e.error.category]), [["poison", "worker-lost"]])
        const failed = lost.events.filter((e) => e._tag === "ItemFailed")
        assert.deepStrictEqual(failed.map((e) => [e.itemKey, e.error.category, e.error.tag]), [
          ["poison", "worker-lost", "WorkerLost"]
        ])
        assert.include(failed[0]?._tag === "ItemFailed" ? failed[0].error.message : "", "attempt 2")

        yield* runToEnd(batch.id)
        const { batch: done } = yield* assertConsistent(o, batch.id)
        assert.strictEqual(done.state._tag, "Completed")
        assert.deepStrictEqual([done.counts.succeeded, done.counts.failed], [3, 1])
        const results = yield* resultsOf(o, batch.id)
        assert.deepStrictEqual(Object.values(results).map((r) => r.state), [
          "Succeeded",
          "Succeeded",
          "Succeeded",
          "Failed"
        ])
        assert.strictEqual(results["poison"]?.error?.category, "worker-lost")
      }).pipe(Effect.provide(orchestrator(false))))

    it.effect("a quarantining batch sets the item aside; released, it runs again", () =>
      Effect.gen(function*() {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        const batch = yield* submit(o, { quarantine: { categories: [], afterRounds: 1 } })
        assert.strictEqual(yield* dieOnPoison(batch.id), maxAttempts)
        const { events } = yield* assertConsistent(o, batch.id)
        assert.isTrue(events.some((e) => e._tag === "ItemQuarantined" && e.itemKey === "poison"))
        yield* runToEnd(batch.id)
        const settled = yield* assertConsistent(o, batch.id)
        assert.strictEqual(settled.batch.state._tag, "Completed")
        assert.deepStrictEqual([settled.batch.counts.succeeded, settled.batch.counts.quarantined], [3, 1])

        // a person releases it (here its attempt does not take the process down)
        assert.strictEqual((yield* o.releaseQuarantined(caller, batch.id)).released, 1)
        yield* runToEnd(batch.id)
        const again = yield* assertConsistent(o, batch.id)
        assert.strictEqual(again.batch.state._tag, "Completed")
        assert.strictEqual(again.batch.counts.succeeded, 4)
      }).pipe(Effect.provide(orchestrator(false))))

    it.effect("the final loss counts like any failure: abort-all fails the batch, an error budget is exceeded", () =>
      Effect.gen(function*() {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        const cases = [
          { config: { failurePolicy: "abort-all" }, reason: "ItemFailedFinally" },
          { config: { errorBudget: { maxFailures: 0, minSettled: 1 } }, reason: "ErrorBudgetExceeded" }
        ] as const
        for (const { config, reason } of cases) {
          const batch = yield* submit(o, config)
          assert.strictEqual(yield* dieOnPoison(batch.id), maxAttempts)
          const { batch: stopped } = yield* assertConsistent(o, batch.id)
          assert.strictEqual(reasonOf(stopped.state), reason)
          assert.deepStrictEqual([stopped.counts.failed, stopped.counts.skipped], [1, 3])
        }
      }).pipe(Effect.provide(orchestrator(false))))
  })
}
