import { BatchOrchestrator } from "@effect-batch/server"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { durableWork, workItems } from "./support/Durable.js"
import { caller } from "./support/Harness.js"
import { apiAt, freshDatabase, leasesHeld, ledger, pollUntil, spawnWorker } from "./support/Processes.js"

const total = 2_000
const workflow = durableWork({ itemMs: 0 }).name
/** Items take 5 ms of real time: 2,000 of them at concurrency 8 are mid-flight for several seconds. */
const workerEnv = { ITEM_MS: "5" }

/**
 * A worker process runs a batch of 2,000 items and is SIGKILLed once `killAfter` items have
 * succeeded (or, for 0, once the first items are leased); a second process resumes the batch.
 */
const crashAndResume = (killAfter: number) =>
  Effect.gen(function*() {
    const url = yield* freshDatabase
    yield* Effect.gen(function*() {
      const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
      const submitted = yield* orchestrator.submitEncoded(
        workflow,
        workItems(total),
        { concurrency: 8, leaseDuration: "2 seconds" },
        caller
      )
      const batch = orchestrator.get(caller, submitted.id)

      const first = yield* spawnWorker({ url, owner: "first", env: workerEnv })
      yield* pollUntil(
        `${killAfter} items succeeded`,
        Effect.map(batch, (b) => killAfter === 0 ? b.counts.running > 0 : b.counts.succeeded >= killAfter)
      )
      yield* first.kill("SIGKILL")
      const atKill = yield* batch
      assert.strictEqual(atKill.state._tag, "Running", "the batch was mid-flight when its worker died")
      assert.isAtLeast(atKill.counts.succeeded, killAfter)
      assert.isBelow(atKill.counts.succeeded, total)
      // leased ahead or executing: a commit can settle every running item before the next start marks land
      assert.isAbove(yield* leasesHeld(submitted.id, "first"), 0, "the dead worker held leases")

      yield* spawnWorker({ url, owner: "second", env: workerEnv })
      yield* pollUntil("the resumed batch completes", Effect.map(batch, (b) => b.state._tag === "Completed"))

      const recorded = yield* ledger(submitted.id)
      assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
      assert.strictEqual(recorded.derived.succeeded, total)
      assert.strictEqual(recorded.itemSucceeded, total, "one ItemSucceeded per item")
      assert.strictEqual(recorded.distinctSucceeded, total)
      assert.strictEqual(recorded.maxPerKey, 1)
      assert.strictEqual(recorded.otherOutcomes, 0)
      // the attempts the dead worker was running are lost: each is retried, a used attempt
      assert.isAtMost(recorded.lostAttempts, 8, "at most the attempts running in the dead worker were lost")
      assert.strictEqual(recorded.minSeq, 1, "sequences start at 1")
      assert.strictEqual(recorded.maxSeq, recorded.events, "sequences are gapless")
      assert.strictEqual(recorded.maxSeq, recorded.batch.lastSeq)
      assert.isAbove(recorded.reRuns, 0, "items leased by the dead worker ran again")
      if (recorded.batch.state._tag === "Completed") {
        assert.strictEqual(recorded.batch.state.summary.succeeded, total)
      }

      const results = Chunk.toReadonlyArray(yield* Stream.runCollect(orchestrator.results(caller, submitted.id)))
      assert.strictEqual(results.length, total)
      assert.isTrue(
        results.every((r, n) => r.state === "Succeeded" && r.key === workItems(total)[n]?.key),
        "every item succeeded, in key order"
      )
      assert.deepStrictEqual(results[1_234]?.output, { n: 1_234, doubled: 2_468 })
    }).pipe(Effect.provide(apiAt(url)))
  })

describe("crash and resume (Postgres, real processes)", () => {
  for (const killAfter of [0, 500, 1_500]) {
    it.scopedLive(
      `SIGKILL after ~${killAfter} of ${total} items: a new process finishes the batch, nothing lost or doubled`,
      () => crashAndResume(killAfter),
      60_000
    )
  }
})
