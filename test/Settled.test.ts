import { BatchOrchestrator, EffectBatch, Worker, WorkflowRegistry } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import type * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import { createHookTable, durableWork, hookRuns, hookState, recordingHook, workItems } from "./support/Durable.js"
import { caller } from "./support/Harness.js"
import { apiAt, freshDatabase, pollUntil, spawnWorker } from "./support/Processes.js"
import { extraction, makeProbe, type Probe } from "./support/Workflows.js"

const docs = (behaviours: ReadonlyArray<"ok" | "flaky">) =>
  behaviours.map((behaviour, i) => ({ key: `doc-${i}`, input: { title: `Document ${i}`, behaviour } }))

/** The hook as a test sees it: its committed runs, as `[state, succeeded, failed]`. */
const runsOf = (batchId: string) =>
  Effect.map(hookRuns(batchId), (runs) => runs.map((r) => [r.state_tag, r.succeeded, r.failed] as const))

const hookDone = (batchId: string) => Effect.map(hookState(batchId), (s) => Option.getOrNull(s) === "done")

/** A few of the worker's ticks, during which a second run of the hook would have shown. */
const quietPeriod = Effect.sleep("600 millis")

/** The orchestrator of this process with a recording settlement hook, its worker polling every 100 ms. */
const withHookedOrchestrator = <A, E, R>(
  probe: Probe,
  hook: Layer.Layer<never, never, SqlClient.SqlClient>,
  body: (o: BatchOrchestrator.BatchOrchestrator["Type"]) => Effect.Effect<A, E, R>,
  pollInterval: Duration.Duration = Duration.millis(100)
) =>
  Effect.zipRight(
    createHookTable,
    Effect.flatMap(BatchOrchestrator.BatchOrchestrator, body).pipe(
      Effect.provide(
        EffectBatch.layer.pipe(
          Layer.provide(Layer.mergeAll(
            WorkflowRegistry.layer(extraction(probe, { flakyFailures: 1 })),
            Worker.layerConfig({ pollInterval }),
            hook
          ))
        )
      )
    )
  )

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "120 seconds", excludeTestServices: true })(`onSettled (${name})`, (it) => {
    it.effect("runs once per settlement: a redrive and a second settlement run it once more", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withHookedOrchestrator(probe, recordingHook({ owner: "in-process" }), (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(["ok", "flaky", "ok"]),
              { retry: { maxAttempts: 1 } },
              caller
            )
            const first = yield* o.await(caller, batch.id)
            assert.strictEqual(first.state._tag, "Completed")
            yield* pollUntil("the first hook ran", hookDone(batch.id))
            yield* quietPeriod
            assert.deepStrictEqual(yield* runsOf(batch.id), [["Completed", 2, 1]])

            yield* o.retryFailed(caller, batch.id, { dryRun: false })
            yield* pollUntil(
              "the redriven batch settles again",
              Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Completed" && b.counts.succeeded === 3)
            )
            yield* pollUntil("the second hook ran", hookDone(batch.id))
            yield* quietPeriod
            assert.deepStrictEqual(yield* runsOf(batch.id), [["Completed", 2, 1], ["Completed", 3, 0]])
          }))
      }))

    it.effect("a redrive right after a settlement, before the hook ran, loses no run of it", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        // The worker loop looks for pending hooks only every 2 seconds: the redrive comes first.
        yield* withHookedOrchestrator(probe, recordingHook({ owner: "in-process" }), (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(["ok", "flaky"]),
              { retry: { maxAttempts: 1 } },
              caller
            )
            const first = yield* o.await(caller, batch.id)
            assert.strictEqual(first.state._tag, "Completed")
            assert.deepStrictEqual(yield* hookState(batch.id), Option.some("pending"), "the hook has not run yet")
            yield* o.retryFailed(caller, batch.id, { dryRun: false })
            assert.deepStrictEqual(yield* runsOf(batch.id), [["Completed", 1, 1]], "the redrive ran it first")
            yield* pollUntil(
              "the redriven batch settles again",
              Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Completed" && b.counts.succeeded === 2)
            )
            yield* pollUntil("the second hook ran", hookDone(batch.id))
            yield* Effect.sleep("2500 millis")
            assert.deepStrictEqual(yield* runsOf(batch.id), [["Completed", 1, 1], ["Completed", 2, 0]])
          }), Duration.seconds(2))
      }))

    it.effect("a failed hook rolls back its writes and runs again: its effect is recorded once", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        const calls = yield* Ref.make(0)
        const failingOnce = recordingHook({
          owner: "in-process",
          after: () =>
            Effect.flatMap(
              Ref.updateAndGet(calls, (n) => n + 1),
              (n) => n === 1 ? Effect.fail("the first run fails after its write") : Effect.void
            )
        })
        yield* withHookedOrchestrator(probe, failingOnce, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(extraction(probe).name, docs(["ok", "ok"]), {}, caller)
            yield* o.await(caller, batch.id)
            yield* pollUntil("the hook succeeded", hookDone(batch.id))
            yield* quietPeriod
            assert.strictEqual(yield* Ref.get(calls), 2)
            assert.deepStrictEqual(yield* runsOf(batch.id), [["Completed", 2, 0]])
          }))
      }))
  })
}

describe("onSettled across processes (Postgres, real processes)", () => {
  it.scopedLive(
    "a process killed inside its hook leaves it pending; another process runs it exactly once",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          yield* createHookTable
          const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
          const total = 20
          const batch = yield* orchestrator.submitEncoded(
            durableWork({ itemMs: 0 }).name,
            workItems(total),
            { concurrency: 4 },
            caller
          )
          const alpha = yield* spawnWorker({ url, owner: "alpha", env: { HOOK: "hang", ITEM_MS: "5" } })
          yield* alpha.waitFor((m) => m._tag === "HookStarted")
          const settled = yield* orchestrator.get(caller, batch.id)
          assert.strictEqual(settled.state._tag, "Completed")
          assert.deepStrictEqual(yield* hookRuns(batch.id), [], "the hanging hook has not committed")
          assert.deepStrictEqual(yield* hookState(batch.id), Option.some("pending"))

          const beta = yield* spawnWorker({ url, owner: "beta", env: { HOOK: "record" } })
          yield* beta.waitFor((m) => m._tag === "Ready")
          yield* Effect.sleep("1 second")
          assert.deepStrictEqual(yield* hookRuns(batch.id), [], "beta skips the hook alpha holds")
          assert.deepStrictEqual(yield* hookState(batch.id), Option.some("pending"))

          yield* alpha.kill("SIGKILL")
          yield* pollUntil("beta ran the hook", hookDone(batch.id))
          yield* Effect.sleep("1 second")
          const runs = yield* hookRuns(batch.id)
          assert.deepStrictEqual(
            runs.map((r) => [r.owner, r.state_tag, r.succeeded, r.failed]),
            [["beta", "Completed", total, 0]]
          )
        }).pipe(Effect.provide(apiAt(url)))
      }),
    60_000
  )

  it.scopedLive(
    "a process killed between the settlement and its hook: another process runs the hook exactly once",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          yield* createHookTable
          const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
          const total = 20
          const batch = yield* orchestrator.submitEncoded(
            durableWork({ itemMs: 0 }).name,
            workItems(total),
            { concurrency: 4 },
            caller
          )
          // Its loop looks for pending hooks once a minute: it settles the batch and dies before.
          const alpha = yield* spawnWorker({ url, owner: "alpha", env: { HOOK: "record", POLL_MS: "60000" } })
          yield* pollUntil(
            "alpha settles the batch",
            Effect.map(orchestrator.get(caller, batch.id), (b) => b.state._tag === "Completed")
          )
          yield* alpha.kill("SIGKILL")
          assert.deepStrictEqual(yield* hookState(batch.id), Option.some("pending"))
          assert.deepStrictEqual(yield* hookRuns(batch.id), [])

          yield* spawnWorker({ url, owner: "beta", env: { HOOK: "record" } })
          yield* pollUntil("beta ran the hook", hookDone(batch.id))
          yield* Effect.sleep("1 second")
          const runs = yield* hookRuns(batch.id)
          assert.deepStrictEqual(
            runs.map((r) => [r.owner, r.state_tag, r.succeeded, r.failed]),
            [["beta", "Completed", total, 0]]
          )
        }).pipe(Effect.provide(apiAt(url)))
      }),
    60_000
  )
})
