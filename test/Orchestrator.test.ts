import type { BatchEvent } from "@effect-batch/domain"
import { BatchOrchestrator } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { advanceUntil, caller, orchestrator, realPause } from "./support/Harness.js"
import {
  type AttemptLog,
  type CallLog,
  extraction,
  limited,
  makeProbe,
  type Probe,
  timed
} from "./support/Workflows.js"

const docs = (behaviours: ReadonlyArray<"ok" | "fail" | "flaky" | "hang" | "slow">) =>
  behaviours.map((behaviour, i) => ({
    key: `doc-${String(i).padStart(3, "0")}`,
    input: { title: `Document ${i}`, behaviour }
  }))

const withOrchestrator = <A, E>(
  probe: Probe,
  body: (o: BatchOrchestrator.BatchOrchestrator["Type"]) => Effect.Effect<A, E>,
  options: { readonly flakyFailures?: number } = {}
) =>
  Effect.flatMap(BatchOrchestrator.BatchOrchestrator, body).pipe(
    Effect.provide(orchestrator(extraction(probe, options)))
  )

const settled = (o: BatchOrchestrator.BatchOrchestrator["Type"], id: Parameters<typeof o.get>[1]) =>
  Effect.map(
    o.get(caller, id),
    (b) => ["AwaitingReview", "Completed", "Failed", "Cancelled", "Rejected"].includes(b.state._tag)
  )

const stateIs = (o: BatchOrchestrator.BatchOrchestrator["Type"], id: Parameters<typeof o.get>[1], tag: string) =>
  Effect.map(o.get(caller, id), (b) => b.state._tag === tag)

const allEvents = (o: BatchOrchestrator.BatchOrchestrator["Type"], id: Parameters<typeof o.get>[1]) =>
  Effect.gen(function*() {
    const batch = yield* o.get(caller, id)
    return yield* o.events(caller, id, 0).pipe(
      Stream.takeWhile((e) => e.seq <= batch.lastSeq),
      Stream.take(batch.lastSeq),
      Stream.runCollect,
      Effect.map(Chunk.toReadonlyArray)
    )
  })

const itemStates = (o: BatchOrchestrator.BatchOrchestrator["Type"], id: Parameters<typeof o.get>[1]) =>
  o.results(caller, id).pipe(
    Stream.runCollect,
    Effect.map((results) => Object.fromEntries(Chunk.toReadonlyArray(results).map((r) => [r.key, r.state])))
  )

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "180 seconds" })(`orchestrator (${name})`, (it) => {
    it.effect("seed scenario: 5 documents, one fails, continue-on-failure completes with partial results", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(["ok", "ok", "fail", "ok", "ok"]),
              { concurrency: 2, failurePolicy: "continue-on-failure" },
              caller
            )
            yield* advanceUntil(settled(o, batch.id))
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.state._tag, "Completed")
            assert.deepStrictEqual([done.counts.succeeded, done.counts.failed], [4, 1])
            const events = yield* allEvents(o, batch.id)
            assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1))
            assert.deepStrictEqual(events.slice(0, 2).map((e) => e._tag), ["BatchCreated", "BatchStarted"])
            assert.strictEqual(events[events.length - 1]?._tag, "BatchCompleted")
            const failed = events.filter((e): e is Extract<BatchEvent.BatchEvent, { _tag: "ItemFailed" }> =>
              e._tag === "ItemFailed"
            )
            assert.deepStrictEqual(failed.map((e) => e.itemKey), ["doc-002"])
            assert.strictEqual(events.filter((e) => e._tag === "ItemSucceeded").length, 4)
            const states = yield* itemStates(o, batch.id)
            assert.deepStrictEqual(states, {
              "doc-000": "Succeeded",
              "doc-001": "Succeeded",
              "doc-002": "Failed",
              "doc-003": "Succeeded",
              "doc-004": "Succeeded"
            })
          }))
      }))

    it.effect("abort-all interrupts in-flight items, skips queued ones and fails the batch naming the item", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(["slow", "slow", "slow", "fail", "slow", "slow", "slow", "slow", "slow", "slow"]),
              { concurrency: 4, failurePolicy: "abort-all" },
              caller
            )
            yield* advanceUntil(settled(o, batch.id))
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.state._tag, "Failed")
            if (done.state._tag === "Failed") {
              assert.strictEqual(done.state.reason._tag, "ItemFailedFinally")
              if (done.state.reason._tag === "ItemFailedFinally") {
                assert.strictEqual(done.state.reason.itemKey, "doc-003")
              }
            }
            assert.deepStrictEqual([done.counts.failed, done.counts.skipped, done.counts.succeeded], [1, 9, 0])
            assert.strictEqual(yield* Ref.get(probe.started), 4)
            assert.strictEqual(yield* Ref.get(probe.interrupted), 3)
            const events = yield* allEvents(o, batch.id)
            assert.strictEqual(events[events.length - 1]?._tag, "BatchFailed")
            assert.strictEqual(events.filter((e) => e._tag === "ItemSkipped").length, 9)
          }))
      }))

    it.effect("retry-failed: a flaky item succeeds in round 2", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(["ok", "flaky", "ok"]),
              {
                failurePolicy: "retry-failed",
                retry: { maxAttempts: 2, base: "100 millis" },
                rounds: { maxRounds: 3, coolDown: "5 seconds" }
              },
              caller
            )
            yield* advanceUntil(settled(o, batch.id))
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.state._tag, "Completed")
            assert.strictEqual(done.counts.succeeded, 3)
            if (done.state._tag === "Completed") assert.strictEqual(done.state.round, 2)
            const events = yield* allEvents(o, batch.id)
            assert.isTrue(events.some((e) => e._tag === "BatchRedriven" && e.round === 2 && e.requeued === 1))
          }), { flakyFailures: 2 })
      }))

    it.effect("a timed-out item is retried, then failed; nothing else is touched", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(["ok", "hang", "ok", "ok"]),
              { timeout: "2 seconds", retry: { maxAttempts: 2, base: "1 second" } },
              caller
            )
            yield* advanceUntil(settled(o, batch.id))
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.state._tag, "Completed")
            assert.deepStrictEqual([done.counts.succeeded, done.counts.failed], [3, 1])
            const events = yield* allEvents(o, batch.id)
            const timedOut = events.filter((e) => e._tag === "ItemTimedOut")
            assert.strictEqual(timedOut.length, 2)
            assert.isTrue(timedOut.every((e) => e._tag === "ItemTimedOut" && e.itemKey === "doc-001"))
            assert.strictEqual(yield* Ref.get(probe.interrupted), 2)
            const states = yield* itemStates(o, batch.id)
            assert.strictEqual(states["doc-001"], "Failed")
          }))
      }))

    it.effect("every attempt, retries included, is bounded by the timeout from its own start", () =>
      Effect.gen(function*() {
        const log: AttemptLog = yield* Ref.make<ReadonlyArray<{ key: string; attempt: number; start: number }>>([])
        yield* Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              timed(log).name,
              [
                { key: "always-slow", input: { millis: [600, 500, 450] } },
                { key: "slow-then-fast", input: { millis: [700, 100] } },
                ...Array.from({ length: 6 }, (_, i) => ({ key: `queued-${i}`, input: { millis: [250] } }))
              ],
              { concurrency: 1, timeout: "300 millis", retry: { maxAttempts: 3, base: "10 millis" } },
              caller
            )
            yield* advanceUntil(settled(o, batch.id), { step: 50 })
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.state._tag, "Completed")
            assert.deepStrictEqual([done.counts.succeeded, done.counts.failed], [7, 1])
            const attempts = yield* Ref.get(log)
            // no attempt ever ran to its end past its deadline, first attempts and retries alike
            for (const a of attempts) {
              if (a.end !== undefined) assert.isAtMost(a.end - a.start, 300, `${a.key} attempt ${a.attempt}`)
            }
            assert.deepStrictEqual(attempts.filter((a) => a.key === "always-slow").map((a) => a.end), [
              undefined,
              undefined,
              undefined
            ])
            // items leased ahead wait their turn: their deadline counts from their start, not the lease
            assert.isTrue(attempts.filter((a) => a.key.startsWith("queued-")).every((a) => a.end !== undefined))
            const events = yield* allEvents(o, batch.id)
            const timedOut = events.flatMap((e) => e._tag === "ItemTimedOut" ? [String(e.itemKey)] : [])
            assert.deepStrictEqual(timedOut.sort(), ["always-slow", "always-slow", "always-slow", "slow-then-fast"])
          })).pipe(Effect.provide(orchestrator(timed(log))))
      }))

    it.effect("the error budget fails the batch and keeps the results so far", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(["ok", "ok", "fail", "ok", "fail", "ok", "fail", "ok", "ok", "ok", "ok", "ok"]),
              { concurrency: 1, errorBudget: { maxFailures: 2 } },
              caller
            )
            yield* advanceUntil(settled(o, batch.id))
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.state._tag, "Failed")
            if (done.state._tag === "Failed") assert.strictEqual(done.state.reason._tag, "ErrorBudgetExceeded")
            assert.deepStrictEqual([done.counts.succeeded, done.counts.failed, done.counts.skipped], [4, 3, 5])
            const results = yield* o.results(caller, batch.id).pipe(Stream.runCollect)
            const succeeded = Chunk.toReadonlyArray(results).filter((r) => r.state === "Succeeded")
            assert.deepStrictEqual(succeeded.map((r) => r.output), [
              { title: "Document 0", words: 10 },
              { title: "Document 1", words: 10 },
              { title: "Document 3", words: 10 },
              { title: "Document 5", words: 10 }
            ])
          }))
      }))

    it.effect("quarantines an item after its rounds, and a released item runs again", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(["ok", "flaky"]),
              { retry: { maxAttempts: 1 }, quarantine: { afterRounds: 1 } },
              caller
            )
            yield* advanceUntil(settled(o, batch.id))
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.state._tag, "Completed")
            assert.deepStrictEqual([done.counts.succeeded, done.counts.quarantined], [1, 1])
            const released = yield* o.releaseQuarantined(caller, batch.id)
            assert.strictEqual(released.released, 1)
            yield* advanceUntil(
              Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Completed" && b.counts.succeeded === 2)
            )
            const events = yield* allEvents(o, batch.id)
            assert.isTrue(events.some((e) => e._tag === "ItemQuarantined" && e.itemKey === "doc-001"))
            assert.isTrue(events.some((e) => e._tag === "ItemReleased" && e.itemKey === "doc-001"))
          }))
      }))

    it.effect("the circuit breaker pauses after N consecutive failures; resume finishes the batch", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(["fail", "fail", "fail", "ok", "ok", "ok"]),
              { concurrency: 1, pauseAfterConsecutiveFailures: 3 },
              caller
            )
            yield* advanceUntil(stateIs(o, batch.id, "Paused"))
            const paused = yield* o.get(caller, batch.id)
            if (paused.state._tag === "Paused") assert.strictEqual(paused.state.reason._tag, "CircuitBreakerOpen")
            assert.strictEqual(paused.counts.failed, 3)
            yield* o.resume(caller, batch.id)
            yield* advanceUntil(settled(o, batch.id))
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.state._tag, "Completed")
            assert.deepStrictEqual([done.counts.succeeded, done.counts.failed], [3, 3])
          }))
      }))

    it.effect("pause stops new starts, resume continues, cancel stops the work", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              extraction(probe).name,
              docs(Array.from({ length: 12 }, () => "slow" as const)),
              { concurrency: 2 },
              caller
            )
            yield* advanceUntil(Effect.map(Ref.get(probe.started), (n) => n >= 2))
            yield* o.pause(caller, batch.id, "lunch")
            yield* advanceUntil(Effect.map(o.get(caller, batch.id), (b) => b.counts.running === 0), { step: 1_000 })
            const startedWhilePaused = yield* Ref.get(probe.started)
            for (let i = 0; i < 20; i++) {
              yield* realPause()
              yield* TestClock.adjust("1 second")
            }
            assert.strictEqual(yield* Ref.get(probe.started), startedWhilePaused)
            const paused = yield* o.get(caller, batch.id)
            assert.strictEqual(paused.state._tag, "Paused")
            assert.strictEqual(paused.counts.succeeded, 2)
            yield* o.resume(caller, batch.id)
            yield* advanceUntil(Effect.map(Ref.get(probe.started), (n) => n >= 4))
            const cancelled = yield* o.cancel(caller, batch.id, "enough")
            assert.strictEqual(cancelled.state._tag, "Cancelled")
            yield* advanceUntil(Effect.map(Ref.get(probe.interrupted), (n) => n >= 2))
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.counts.skipped, 12 - done.counts.succeeded)
            const again = yield* Effect.either(o.resume(caller, batch.id))
            assert.isTrue(Either.isLeft(again) && again.left._tag === "InvalidTransition")
          }))
      }))

    it.effect("review gate: approve completes, reject rejects; redrive dry-run reports what a redrive re-queues", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const first = yield* o.submitEncoded(extraction(probe).name, docs(["ok", "fail", "ok", "fail"]), {
              review: true
            }, caller)
            const second = yield* o.submitEncoded(extraction(probe).name, docs(["ok"]), { review: true }, {
              ...caller,
              idempotencyKey: "second"
            })
            yield* advanceUntil(stateIs(o, first.id, "AwaitingReview"))
            yield* advanceUntil(stateIs(o, second.id, "AwaitingReview"))
            const early = yield* Effect.either(o.retryFailed(caller, first.id, { dryRun: true }))
            assert.isTrue(Either.isLeft(early) && early.left._tag === "InvalidTransition")
            const rejected = yield* o.reject(caller, first.id, "two documents failed")
            assert.strictEqual(rejected.state._tag, "Rejected")
            const approved = yield* o.approve(caller, second.id, "fine")
            assert.strictEqual(approved.state._tag, "Completed")
            const plan = yield* o.retryFailed(caller, first.id, { dryRun: true })
            assert.deepStrictEqual(plan.items.map(String), ["doc-001", "doc-003"])
            const unchanged = yield* o.get(caller, first.id)
            assert.strictEqual(unchanged.state._tag, "Rejected")
            const redrive = yield* o.retryFailed(caller, first.id, { dryRun: false })
            assert.deepStrictEqual(redrive.items, plan.items)
            const after = yield* o.get(caller, first.id)
            assert.strictEqual(after.state._tag, "Running")
            assert.strictEqual(after.counts.queued, 2)
            const events = yield* allEvents(o, first.id)
            assert.isTrue(events.some((e) => e._tag === "BatchRedriven" && e.requeued === 2))
          }))
      }))

    it.effect("a rate-limited answer holds the limiter back for retry-after and consumes no attempt", () =>
      Effect.gen(function*() {
        const calls: CallLog = yield* Ref.make<ReadonlyArray<{ readonly key: string; readonly at: number }>>([])
        yield* Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              limited(calls).name,
              [{ key: "a-429", input: { title: "A" } }, ...docs(["ok", "ok", "ok"])],
              { concurrency: 1, retry: { maxAttempts: 1 }, rateLimits: { api: { limit: 100, interval: "1 second" } } },
              caller
            )
            yield* advanceUntil(settled(o, batch.id))
            const done = yield* o.get(caller, batch.id)
            assert.strictEqual(done.state._tag, "Completed")
            assert.strictEqual(done.counts.succeeded, 4)
            const log = yield* Ref.get(calls)
            const throttledAt = log.find((c) => c.key === "a-429")?.at ?? -1
            const during = log.filter((c) => c.at > throttledAt && c.at < throttledAt + 2_000)
            assert.deepStrictEqual(during, [])
            assert.strictEqual(log.filter((c) => c.key === "a-429").length, 2)
            const events = yield* allEvents(o, batch.id)
            const throttled = events.filter((e) => e._tag === "Throttled")
            assert.strictEqual(throttled.length, 1)
            if (throttled[0]?._tag === "Throttled") {
              assert.strictEqual(throttled[0].limiter, "api")
              assert.strictEqual(Duration.toMillis(throttled[0].retryAfter), 2_000)
            }
          })).pipe(Effect.provide(orchestrator(limited(calls))))
      }))

    it.effect("an interval cap of 10 per minute is never exceeded", () =>
      Effect.gen(function*() {
        const calls: CallLog = yield* Ref.make<ReadonlyArray<{ readonly key: string; readonly at: number }>>([])
        yield* Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (o) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(
              limited(calls).name,
              docs(Array.from({ length: 25 }, () => "ok" as const)),
              { concurrency: 5, rateLimits: { api: { limit: 10, interval: "1 minute" } } },
              caller
            )
            yield* advanceUntil(settled(o, batch.id), { step: 5_000 })
            assert.strictEqual((yield* o.get(caller, batch.id)).counts.succeeded, 25)
            const times = (yield* Ref.get(calls)).map((c) => c.at).sort((a, b) => a - b)
            const busiest = Math.max(...times.map((t) => times.filter((u) => u >= t && u < t + 60_000).length))
            assert.strictEqual(busiest, 10)
            assert.isTrue(times[times.length - 1]! - times[0]! >= 120_000)
          })).pipe(Effect.provide(orchestrator(limited(calls))))
      }))

    it.effect("rejects a batch with invalid items whole, naming each, storing nothing", () =>
      Effect.gen(function*() {
        const probe = yield* makeProbe
        yield* withOrchestrator(probe, (o) =>
          Effect.gen(function*() {
            const result = yield* Effect.either(o.submitEncoded(
              extraction(probe).name,
              [
                { key: "good", input: { title: "fine" } },
                { key: "bad-1", input: { title: 42 } },
                { key: "", input: { title: "no key" } },
                { key: "bad-2", input: { title: "x", behaviour: "explode" } }
              ],
              {},
              { ...caller, idempotencyKey: "invalid-batch" }
            ))
            assert.isTrue(Either.isLeft(result))
            if (Either.isLeft(result) && result.left._tag === "InvalidItems") {
              assert.deepStrictEqual(result.left.items.map((i) => i.index), [1, 2, 3])
              assert.strictEqual(result.left.items[0]?.key, "bad-1")
            } else {
              assert.fail("expected InvalidItems")
            }
            const page = yield* o.list(caller, { limit: 500 })
            assert.isFalse(page.items.some((b) => b.counts.queued === 4))
            const badConfig = yield* Effect.either(o.submitEncoded(extraction(probe).name, docs(["ok"]), {
              concurrency: -1
            }, caller))
            assert.isTrue(Either.isLeft(badConfig) && badConfig.left._tag === "InvalidBatchConfig")
          }))
      }))
  })
}
