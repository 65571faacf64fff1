import type { Ids } from "@effect-batch/domain"
import { BatchOrchestrator } from "@effect-batch/server"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import { createHookTable, durableWork, hookRuns, hookState, workItems } from "./support/Durable.js"
import { between, faultSeed, outcomes, prng, storedBatches } from "./support/FaultSchedule.js"
import { caller } from "./support/Harness.js"
import { apiAt, freshDatabase, ledger, pollUntil, spawnWorker, type WorkerProcess } from "./support/Processes.js"

/** Short leases so a dead worker's items come back within a second; attempts to spare for lost ones. */
const config = {
  concurrency: 8,
  leaseDuration: "1 second",
  retry: { maxAttempts: 30, base: "10 millis", cap: "100 millis" }
}
const workflowName = durableWork({ itemMs: 0 }).name
const workerEnv = { ITEM_MS: "2", POLL_MS: "50", HOOK: "record" }
const lanes = 3
const killsPerLane = 4
const submitKills = 4
const submitItems = 10_000
const toggleKills = 3
const hookKills = 3

describe("fault suite (Postgres, real processes)", () => {
  it.scopedLive(
    "SIGKILLs at seeded random moments: every batch completes, every item once, hooks once",
    () =>
      Effect.gen(function*() {
        const seed = yield* faultSeed
        const random = prng(seed)
        const sizes = Array.from({ length: 4 }, () => between(random, 300, 800))
        const runItems = sizes.reduce((a, b) => a + b, 0)
        // kill moments of the workers: after a rising number of succeeded items, or after a cap
        const targets = Array.from({ length: lanes * killsPerLane }, () => between(random, 0, runItems))
          .sort((a, b) => a - b)
        const submitDelays = Array.from({ length: submitKills }, () => between(random, 0, 6_000))
        const toggleDelays = Array.from({ length: toggleKills }, () => between(random, 50, 800))
        const url = yield* freshDatabase
        const kills = yield* Ref.make(0)
        const killNow = (worker: WorkerProcess) =>
          Effect.suspend(() =>
            worker.exited() ? Effect.void : Effect.zipRight(worker.kill("SIGKILL"), Ref.update(kills, (n) => n + 1))
          )
        let spawned = 0
        const spawn = (role: string, env: Record<string, string>) => {
          spawned += 1
          return Effect.tap(
            spawnWorker({ url, owner: `${role}-${spawned}`, env: { ...workerEnv, ...env } }),
            (worker) => worker.waitFor((m) => m._tag === "Ready")
          )
        }

        yield* Effect.gen(function*() {
          yield* createHookTable
          const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
          const runs: Array<Ids.BatchId> = []
          for (const size of sizes) {
            runs.push((yield* orchestrator.submitEncoded(workflowName, workItems(size), config, caller)).id)
          }
          const succeeded = Effect.map(
            Effect.forEach(runs, (id) => orchestrator.get(caller, id)),
            (batches) => batches.reduce((n, b) => n + b.counts.succeeded, 0)
          )

          // mid execution and mid group commit: each lane's worker dies at its next target
          const lane = (n: number) =>
            Effect.forEach(targets.filter((_, k) => k % lanes === n), (target) =>
              Effect.gen(function*() {
                const worker = yield* spawn("runner", {})
                yield* pollUntil(`${target} items succeeded`, Effect.map(succeeded, (s) => s >= target)).pipe(
                  Effect.timeout("2 seconds"),
                  Effect.ignore
                )
                yield* killNow(worker)
              }), { discard: true })

          // mid bulk submit: the batch is stored whole or not at all
          const submits = Effect.forEach(submitDelays, (delay) =>
            Effect.gen(function*() {
              const worker = yield* spawn("submitter", {
                SUBMIT_ITEMS: String(submitItems),
                BATCH_CONFIG: JSON.stringify({ ...config, concurrency: 16 })
              })
              yield* Effect.sleep(delay)
              yield* killNow(worker)
              for (const stored of yield* storedBatches) {
                assert.strictEqual(stored.items, stored.total, `batch ${stored.id}: its rows equal its total`)
              }
            }), { discard: true })

          // mid command: pauses and resumes of the first batch, their issuer killed
          const toggles = Effect.forEach(toggleDelays, (delay) =>
            Effect.gen(function*() {
              const first = runs[0]
              if (first === undefined) return
              const worker = yield* spawn("toggler", { TOGGLE_BATCH: first })
              yield* Effect.sleep(delay)
              yield* killNow(worker)
              const recorded = yield* ledger(first)
              assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
              assert.include(["Running", "Paused", "Completed"], recorded.batch.state._tag, "a command applied or not")
              assert.strictEqual(recorded.maxSeq, recorded.events, "sequences are gapless")
            }), { discard: true })

          yield* Effect.all([
            Effect.forEach(Array.from({ length: lanes }, (_, n) => n), lane, {
              concurrency: "unbounded",
              discard: true
            }),
            submits,
            toggles
          ], { concurrency: "unbounded", discard: true })

          // between a settlement and its hook: a worker whose hook never commits, killed inside it
          const late = yield* orchestrator.submitEncoded(workflowName, workItems(40), config, caller)
          for (let k = 0; k < hookKills; k++) {
            const worker = yield* spawn("hooker", { HOOK: "hang" })
            yield* worker.waitFor((m) => m._tag === "HookStarted")
            yield* killNow(worker)
          }

          // a paused batch is resumed (the last command may have been a pause); fresh workers finish all
          const first = runs[0]
          if (first !== undefined) {
            const view = yield* orchestrator.get(caller, first)
            if (view.state._tag === "Paused") yield* orchestrator.resume(caller, first)
          }
          yield* spawn("finisher", {})
          const batches = yield* storedBatches
          assert.isTrue(batches.some((b) => b.id === late.id))
          const settledAll = Effect.map(
            Effect.forEach(batches, (b) =>
              Effect.zipWith(
                orchestrator.get(caller, b.id),
                hookState(b.id),
                (view, hook) => view.state._tag === "Completed" && hook._tag === "Some" && hook.value === "done"
              )),
            (done) => done.every(Boolean)
          )
          yield* pollUntil("every batch completes and its hook ran", settledAll, "120 seconds")
          yield* Effect.sleep("300 millis")

          let lost = 0
          let duplicated = 0
          let hooksOnce = true
          let items = 0
          for (const b of batches) {
            const id = b.id
            const recorded = yield* ledger(id)
            const found = yield* outcomes(id)
            lost += found.lost
            duplicated += found.duplicated
            items += b.total
            hooksOnce = hooksOnce && (yield* hookRuns(id)).length === 1
            assert.deepStrictEqual(recorded.batch.counts, recorded.derived, `batch ${id}: counters equal the item rows`)
            assert.strictEqual(recorded.derived.succeeded, b.total, `batch ${id}: every item row succeeded`)
            assert.strictEqual(recorded.itemSucceeded, b.total, `batch ${id}: one ItemSucceeded per item`)
            assert.strictEqual(recorded.otherOutcomes, 0)
            assert.strictEqual(recorded.minSeq, 1)
            assert.strictEqual(recorded.maxSeq, recorded.events, `batch ${id}: sequences are gapless`)
            assert.strictEqual(recorded.maxSeq, recorded.batch.lastSeq)
          }
          const killed = yield* Ref.get(kills)
          console.log(
            `fault suite: seed=${seed} kills=${killed} runs=${batches.length} items=${items} lost=${lost} ` +
              `duplicated=${duplicated} hooks-once=${hooksOnce}`
          )
          assert.strictEqual(lost, 0, "no item without an outcome")
          assert.strictEqual(duplicated, 0, "no item succeeded twice")
          assert.isTrue(hooksOnce, "every batch's hook ran once")
          assert.isAtLeast(killed, 20)
        }).pipe(Effect.provide(apiAt(url)))
      }),
    240_000
  )
})
