import { BatchOrchestrator } from "@effect-batch/server"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type Attempt, type ChildMessage, durableWork, type Watched, workItems } from "./support/Durable.js"
import { caller } from "./support/Harness.js"
import { apiAt, freshDatabase, ledger, pollUntil, spawnWorker } from "./support/Processes.js"

const total = 2_000
const concurrency = 8
const workflow = durableWork({ itemMs: 0 }).name

const isAttempt = (m: ChildMessage): m is typeof Attempt.Type => m._tag === "Attempt"
const isWatched = (m: ChildMessage): m is typeof Watched.Type => m._tag === "Watched"

/**
 * The most attempts running at one instant, from their start and end times. At equal times an end
 * counts before a start: the slot of an attempt is only given out again after its outcome commits.
 */
const maxOverlap = (attempts: ReadonlyArray<typeof Attempt.Type>): number => {
  const edges = attempts.flatMap((a) => [{ at: a.start, delta: 1 }, { at: a.end, delta: -1 }])
  edges.sort((x, y) => x.at - y.at || x.delta - y.delta)
  let running = 0
  let max = 0
  for (const edge of edges) {
    running += edge.delta
    max = Math.max(max, running)
  }
  return max
}

describe("two processes on one Postgres (real processes)", () => {
  it.scopedLive(
    "share a batch: global concurrency holds, no outcome twice, both work, each sees every event",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
          const submitted = yield* orchestrator.submitEncoded(workflow, workItems(total), { concurrency }, caller)
          // Held until both processes are up and subscribed, so that both compete from the first item.
          yield* orchestrator.pause(caller, submitted.id, "until both workers are up")
          const env = { ITEM_MS: "5", LOG_ATTEMPTS: "true", WATCH_BATCH: submitted.id }
          const workers = [
            yield* spawnWorker({ url, owner: "alpha", env }),
            yield* spawnWorker({ url, owner: "beta", env })
          ]
          for (const worker of workers) yield* worker.waitFor((m) => m._tag === "Watching")
          yield* orchestrator.resume(caller, submitted.id)

          const watched = []
          for (const worker of workers) watched.push(yield* worker.waitFor(isWatched))
          yield* pollUntil(
            "the batch completes",
            Effect.map(orchestrator.get(caller, submitted.id), (b) => b.state._tag === "Completed")
          )

          const recorded = yield* ledger(submitted.id)
          assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
          assert.strictEqual(recorded.derived.succeeded, total)
          assert.strictEqual(recorded.itemSucceeded, total, "no outcome recorded twice")
          assert.strictEqual(recorded.distinctSucceeded, total)
          assert.strictEqual(recorded.maxPerKey, 1)
          assert.strictEqual(recorded.minSeq, 1)
          assert.strictEqual(recorded.maxSeq, recorded.events, "sequences are gapless")

          const attempts = workers.flatMap((w) => w.messages().filter(isAttempt))
          assert.strictEqual(new Set(attempts.map((a) => a.key)).size, total, "every item ran")
          const overlap = maxOverlap(attempts)
          assert.isAtMost(overlap, concurrency, "the batch's concurrency holds across processes")
          assert.isAbove(overlap, concurrency / 2, "the attempts did run concurrently")

          for (const seen of watched) {
            assert.deepStrictEqual(
              {
                itemSucceeded: seen.itemSucceeded,
                distinct: seen.distinctSucceeded,
                gapless: seen.gapless,
                events: seen.events,
                last: seen.lastTag
              },
              {
                itemSucceeded: total,
                distinct: total,
                gapless: true,
                events: recorded.batch.lastSeq,
                last: "BatchCompleted"
              },
              `${seen.owner} received every event, its own and the other process's`
            )
          }

          const byOwner = workers.map((w) => attempts.filter((a) => a.owner === w.owner).length)
          assert.isTrue(
            byOwner.every((n) => n > 0),
            `both processes share the work: ${workers.map((w, i) => `${w.owner} ran ${byOwner[i]}`).join(", ")}`
          )
        }).pipe(Effect.provide(apiAt(url)))
      }),
    90_000
  )
})
