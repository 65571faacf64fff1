import { BatchOrchestrator } from "@effect-batch/server"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { type AttemptStarted, durableWork, workItems } from "./support/Durable.js"
import { caller } from "./support/Harness.js"
import { apiAt, eventTags, freshDatabase, ledger, pollUntil, spawnWorker } from "./support/Processes.js"

const workflow = durableWork({ itemMs: 0 }).name
const maxAttempts = 2
/** More workers than a poison pill may take down (`maxAttempts`, and one whose start was not recorded). */
const maxWorkers = maxAttempts + 3

const isStarted = (m: { readonly _tag: string }): m is typeof AttemptStarted.Type => m._tag === "AttemptStarted"

describe("poison pills (Postgres, real processes)", () => {
  it.scopedLive(
    "an item whose attempts kill their process fails as worker-lost after its attempts; the other 49 succeed",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
          const items = [...workItems(49)]
          items.splice(10, 0, { key: "poison", input: { n: 49 } })
          const submitted = yield* orchestrator.submitEncoded(
            workflow,
            items,
            { concurrency: 1, leaseDuration: "1 second", retry: { maxAttempts, base: "10 millis" } },
            caller
          )
          const batch = orchestrator.get(caller, submitted.id)
          const completed = Effect.map(batch, (b) => b.state._tag === "Completed")

          // a supervisor's loop: a new worker each time the previous one dies, a bounded number of times
          const dead: Array<string> = []
          for (let n = 0; n < maxWorkers && !(yield* completed); n++) {
            const worker = yield* spawnWorker({
              url,
              owner: `worker-${n}`,
              env: { ITEM_MS: "0", POLL_MS: "100", LOG_STARTS: "true", POISON_KEY: "poison" }
            })
            yield* pollUntil(
              "the worker dies or the batch completes",
              Effect.map(completed, (done) => done || worker.exited()),
              "30 seconds"
            )
            if (worker.exited()) {
              dead.push(worker.messages().filter(isStarted).at(-1)?.key ?? "none")
            }
          }
          assert.isTrue(yield* completed, `the batch completes (workers that died: ${dead.length})`)
          // each death was the poison pill's attempt; the first may not have had its start recorded yet
          assert.isTrue(dead.every((key) => key === "poison"), `the poison pill ended every worker: ${dead}`)
          assert.isAtLeast(dead.length, maxAttempts)
          assert.isAtMost(dead.length, maxAttempts + 1)

          const done = yield* batch
          assert.deepStrictEqual([done.counts.succeeded, done.counts.failed], [49, 1])
          const recorded = yield* ledger(submitted.id)
          assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
          assert.strictEqual(recorded.itemSucceeded, 49, "one ItemSucceeded per item")
          assert.strictEqual(recorded.maxPerKey, 1)
          assert.strictEqual(recorded.minSeq, 1, "sequences start at 1")
          assert.strictEqual(recorded.maxSeq, recorded.events, "sequences are gapless")
          // the poison pill's first counted loss, and at most one innocent attempt that had finished
          // but was not recorded yet when the first worker died
          assert.isAtLeast(recorded.lostAttempts, 1)
          assert.isAtMost(recorded.lostAttempts, 2)

          const poison = (yield* eventTags(submitted.id)).filter((e) => e.key === "poison").map((e) => e.tag)
          assert.deepStrictEqual(poison.filter((tag) => tag !== "ItemStarted"), ["ItemRetryScheduled", "ItemFailed"])
          const results = Chunk.toReadonlyArray(yield* Stream.runCollect(orchestrator.results(caller, submitted.id)))
          const failed = results.filter((r) => r.state !== "Succeeded")
          assert.deepStrictEqual(failed.map((r) => [r.key, r.state, r.error?.category, r.error?.tag]), [
            ["poison", "Failed", "worker-lost", "WorkerLost"]
          ])
          assert.include(failed[0]?.error?.message ?? "", `attempt ${maxAttempts}`)
        }).pipe(Effect.provide(apiAt(url)))
      }),
    60_000
  )
})
