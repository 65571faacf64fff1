import { Ids, SharedLimiter } from "@effect-batch/domain"
import { BatchOrchestrator, SharedLimiters } from "@effect-batch/server"
import { LimiterRepo, Tables, TestDatabase } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { type AttemptStarted, type ChildMessage, durableWork, workItems } from "./support/Durable.js"
import { advanceUntil, caller, orchestrator } from "./support/Harness.js"
import { apiAt, freshDatabase, pollUntil, spawnWorker } from "./support/Processes.js"
import { type CallLog, limited } from "./support/Workflows.js"

/** Calls of the `limited` workflow, which runs every attempt under the limiter `api`: no batch here
 * declares it, so it is the tenant's shared limiter. */
const newCalls: Effect.Effect<CallLog> = Ref.make<ReadonlyArray<{ readonly key: string; readonly at: number }>>([])

const sharedName = limited(Ref.unsafeMake<ReadonlyArray<{ readonly key: string; readonly at: number }>>([])).name

const docs = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}-${String(i).padStart(3, "0")}`, input: { title: `${i}` } }))

/** The most calls within any window `[t, t + interval)`. */
const busiest = (times: ReadonlyArray<number>, interval: number) => {
  const sorted = [...times].sort((a, b) => a - b)
  let max = 0
  let first = 0
  for (let last = 0; last < sorted.length; last++) {
    while (sorted[last]! - sorted[first]! >= interval) first++
    max = Math.max(max, last - first + 1)
  }
  return max
}

const other = { tenant: Schema.decodeSync(Ids.TenantId)("globex"), actor: "other" }

const define = (name: string, limit: number, interval: Duration.DurationInput) =>
  Effect.flatMap(
    SharedLimiters.SharedLimiters,
    (limiters) =>
      limiters.define(caller, new SharedLimiter.Definition({ name, limit, interval: Duration.decode(interval) }))
  )

const settledBoth = (o: BatchOrchestrator.BatchOrchestrator["Type"], ids: ReadonlyArray<Ids.BatchId>) =>
  Effect.map(
    Effect.forEach(ids, (id) => o.get(caller, id)),
    (batches) => batches.every((b) => b.state._tag === "Completed")
  )

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "120 seconds" })(`shared limiters (${name})`, (it) => {
    it.effect("two batches share 10 per minute: never more in any window, used to capacity, both served", () =>
      Effect.gen(function*() {
        const calls = yield* newCalls
        yield* Effect.gen(function*() {
          const o = yield* BatchOrchestrator.BatchOrchestrator
          yield* define("api", 10, "1 minute")
          const a = yield* o.submitEncoded(sharedName, docs("a", 15), { concurrency: 5 }, caller)
          const b = yield* o.submitEncoded(sharedName, docs("b", 15), { concurrency: 5 }, caller)
          yield* advanceUntil(settledBoth(o, [a.id, b.id]), { step: 2_000, maxSteps: 500 })
          const all = yield* Ref.get(calls)
          assert.strictEqual(all.length, 30)
          const times = all.map((c) => c.at)
          assert.strictEqual(busiest(times, 60_000), 10, "at most 10 in any minute, and 10 in the busiest")
          const start = Math.min(...times)
          // 30 calls at 10 per minute: the last window opens at 2 minutes; a block counts from its
          // reservation, and the clock moves in steps of 2 s
          const span = Math.max(...times) - start
          assert.isAtLeast(span, 120_000)
          assert.isBelow(span, 120_000 + 2 * (1_000 + 2_000) + 1, "the limiter is used to capacity")
          // the first batch may take the whole first minute; from then on both wait in line
          for (const prefix of ["a-", "b-"]) {
            assert.isTrue(all.some((c) => c.key.startsWith(prefix) && c.at < start + 120_000), "each batch served")
          }
          const view = yield* Effect.flatMap(SharedLimiters.SharedLimiters, (l) => l.get(caller, "api"))
          assert.strictEqual(view.limit, 10)
          assert.isAtMost(view.permitsInWindow, 10)
        }).pipe(Effect.provide(orchestrator(limited(calls))))
      }))

    it.effect("a 429 holds the shared limiter back for every batch, consumes no attempt, and is visible", () =>
      Effect.gen(function*() {
        const calls = yield* newCalls
        yield* Effect.gen(function*() {
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const limiters = yield* SharedLimiters.SharedLimiters
          yield* define("api", 1_000, "1 second")
          const a = yield* o.submitEncoded(
            sharedName,
            [{ key: "x-429", input: { title: "x" } }],
            { concurrency: 4, retry: { maxAttempts: 1 } },
            caller
          )
          yield* advanceUntil(Effect.map(Ref.get(calls), (all) => all.length >= 1), { step: 10 })
          const throttledAt = (yield* Ref.get(calls))[0]!.at
          const b = yield* o.submitEncoded(sharedName, docs("b", 20), { concurrency: 4 }, caller)
          yield* advanceUntil(settledBoth(o, [a.id, b.id]), { step: 100 })
          const all = yield* Ref.get(calls)
          const during = all.filter((c) => c.at > throttledAt && c.at < throttledAt + 2_000)
          assert.deepStrictEqual(during, [], "nothing passes the limiter while it is held back")
          assert.strictEqual(all.length, 22)
          const item = yield* o.listItems(caller, a.id, { limit: 10 })
          assert.strictEqual(item.items[0]?.state._tag, "Succeeded", "retried although maxAttempts is 1")
          const view = yield* limiters.get(caller, "api")
          assert.strictEqual(view.throttles, 1)
          assert.isTrue(Option.isSome(view.heldBackUntil))
          const events = yield* o.events(caller, a.id, 0).pipe(
            Stream.takeUntil((e) => e._tag === "BatchCompleted"),
            Stream.runCollect
          )
          const throttled = [...events].filter((e) => e._tag === "Throttled")
          assert.strictEqual(throttled.length, 1)
          if (throttled[0]?._tag === "Throttled") {
            assert.strictEqual(throttled[0].limiter, "api")
            assert.strictEqual(throttled[0].effectiveConcurrency, 2, "the batch's concurrency halved")
          }
        }).pipe(Effect.provide(orchestrator(limited(calls))))
      }))

    it.effect("definitions: per tenant, bounded, redefined in place; an unknown limiter fails the item", () =>
      Effect.gen(function*() {
        const calls = yield* newCalls
        yield* Effect.gen(function*() {
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const limiters = yield* SharedLimiters.SharedLimiters
          yield* define("api", 5, "1 second")
          const redefined = yield* define("api", 7, "2 seconds")
          assert.strictEqual(redefined.limit, 7)
          assert.strictEqual(Duration.toMillis(redefined.interval), 2_000)
          assert.deepStrictEqual((yield* limiters.list(caller)).map((v) => v.name), ["api"])
          assert.deepStrictEqual(yield* limiters.list(other), [], "another tenant sees none")
          const lookup = yield* Effect.either(limiters.get(other, "api"))
          assert.isTrue(Either.isLeft(lookup) && lookup.left._tag === "LimiterNotFound")
          for (let i = 1; i < SharedLimiter.maxPerTenant; i++) yield* define(`l-${i}`, 1, "1 second")
          const tooMany = yield* Effect.either(define("one-more", 1, "1 second"))
          assert.isTrue(Either.isLeft(tooMany) && tooMany.left._tag === "LimitExceeded")
          assert.strictEqual((yield* limiters.list(caller)).length, SharedLimiter.maxPerTenant)
          yield* limiters.remove(caller, "api")
          const removed = yield* Effect.either(limiters.remove(caller, "api"))
          assert.isTrue(Either.isLeft(removed) && removed.left._tag === "LimiterNotFound")

          const batch = yield* o.submitEncoded(
            sharedName,
            docs("u", 2),
            { retry: { maxAttempts: 3 }, failurePolicy: "continue-on-failure" },
            caller
          )
          yield* advanceUntil(Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Completed"), { step: 100 })
          const items = yield* o.listItems(caller, batch.id, { limit: 10 })
          assert.strictEqual(items.items.length, 2)
          for (const item of items.items) {
            assert.strictEqual(item.state._tag, "Failed")
            if (item.state._tag === "Failed") {
              assert.strictEqual(item.state.attempts, 1, "fatal: not retried")
              assert.include(item.state.error.message, "no shared limiter named \"api\"")
            }
          }
          assert.strictEqual((yield* Ref.get(calls)).length, 0)
        }).pipe(Effect.provide(orchestrator(limited(calls))))
      }))

    it.effect("a block reserved by a process that died stops counting when the block expires", () =>
      Effect.gen(function*() {
        yield* Effect.gen(function*() {
          const repo = yield* LimiterRepo.LimiterRepo
          yield* define("api", 5, "10 seconds")
          const now = yield* Clock.currentTimeMillis
          const takeAt = (owner: string, at: number, want: number) =>
            Effect.map(
              repo.take({
                tenant: caller.tenant,
                name: "api",
                owner,
                now: at,
                want,
                leaseMs: 1_000,
                settle: Option.none(),
                concurrency: Option.none()
              }),
              Option.getOrThrow
            )
          assert.strictEqual((yield* takeAt("dead-process", now, 5)).granted, 5)
          const counted = (at: number) =>
            Effect.map(repo.states(caller.tenant, at, Option.some("api")), (rows) => rows[0]!.counted)
          assert.strictEqual(yield* counted(now + 10_999), 5, "counted until the lease plus the interval")
          assert.strictEqual(yield* counted(now + 11_000), 0, "and not after")
          assert.strictEqual((yield* takeAt("alive", now + 11_000, 5)).granted, 5)
          const meanwhile = yield* takeAt("third", now + 11_000, 1)
          assert.strictEqual(meanwhile.granted, 0)
          assert.strictEqual(Option.getOrThrow(meanwhile.nextFreeMs), now + 11_000 + 1_000 + 10_000)
        }).pipe(Effect.provide(orchestrator(durableWork({ itemMs: 0 }))))
      }))
  })
}

const isStart = (m: ChildMessage): m is typeof AttemptStarted.Type => m._tag === "AttemptStarted"

describe("shared limiters across processes (real processes, Postgres)", () => {
  it.scopedLive(
    "three processes, two batches, 10 per second: exact in every window, no process starves",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const o = yield* BatchOrchestrator.BatchOrchestrator
          yield* define("api", 10, "1 second")
          const env = { LIMITER: "api", LOG_STARTS: "true", ITEM_MS: "5" }
          const workers = [
            yield* spawnWorker({ url, owner: "p1", env }),
            yield* spawnWorker({ url, owner: "p2", env }),
            yield* spawnWorker({ url, owner: "p3", env })
          ]
          for (const worker of workers) yield* worker.waitFor((m) => m._tag === "Ready")
          const batches = [
            yield* o.submitEncoded(durableWork({ itemMs: 0 }).name, workItems(40), { concurrency: 8 }, caller),
            yield* o.submitEncoded(durableWork({ itemMs: 0 }).name, workItems(40), { concurrency: 8 }, caller)
          ]
          yield* pollUntil("both batches complete", settledBoth(o, batches.map((b) => b.id)), "60 seconds")
          const starts = workers.flatMap((w) => w.messages().filter(isStart))
          assert.strictEqual(starts.length, 80)
          const times = starts.map((s) => s.start)
          // the recorded time is taken just after the permit: allow the recording's own jitter
          assert.isAtMost(busiest(times, 1_000 - 5), 10, "at most 10 in any second, over three processes")
          const span = Math.max(...times) - Math.min(...times)
          assert.isAtLeast(span, 7_000 - 5)
          assert.isBelow(span, 12_000, "the limiter is used near capacity")
          for (const worker of workers) {
            const own = starts.filter((s) => s.owner === worker.owner).length
            assert.isAtLeast(own, 8, `${worker.owner} got its part`)
          }
        }).pipe(Effect.provide(apiAt(url)))
      }),
    { timeout: 120_000 }
  )

  it.scopedLive(
    "a 429 in one process holds every process back for its retry-after, and consumes no attempt",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const o = yield* BatchOrchestrator.BatchOrchestrator
          const limiters = yield* SharedLimiters.SharedLimiters
          yield* define("api", 100, "1 second")
          const env = { LIMITER: "api", LOG_STARTS: "true", ITEM_MS: "20", RETRY_AFTER_MS: "2000" }
          const workers = [
            yield* spawnWorker({ url, owner: "q1", env }),
            yield* spawnWorker({ url, owner: "q2", env }),
            yield* spawnWorker({ url, owner: "q3", env })
          ]
          for (const worker of workers) yield* worker.waitFor((m) => m._tag === "Ready")
          // the rate-limited item first: the hold comes early, and the recovery after it shows
          const items = [{ key: "x-429", input: { n: -1 } }, ...workItems(300)]
          const batch = yield* o.submitEncoded(
            durableWork({ itemMs: 0 }).name,
            items,
            { concurrency: 6, retry: { maxAttempts: 1 } },
            caller
          )
          // each process's effective concurrency through the limiter, as it reports it (a row per process)
          const sql = yield* SqlClient.SqlClient
          const t = yield* Tables.Tables
          const reported = new Map<string, Array<number>>()
          const sampler = yield* Effect.suspend(() =>
            sql<{ owner: string; effective_concurrency: number }>`SELECT owner, effective_concurrency
              FROM ${sql(t.limiterUsers)} WHERE name = 'api'`
          ).pipe(
            Effect.tap((rows) =>
              Effect.sync(() => {
                for (const row of rows) {
                  const own = reported.get(row.owner) ?? []
                  own.push(Number(row.effective_concurrency))
                  reported.set(row.owner, own)
                }
              })
            ),
            Effect.repeat(Schedule.spaced("10 millis")),
            Effect.fork
          )
          yield* pollUntil("the batch completes", settledBoth(o, [batch.id]), "60 seconds")
          yield* Fiber.interrupt(sampler)
          const starts = workers.flatMap((w) => w.messages().filter(isStart))
          const throttled = starts.find((s) => s.key === "x-429" && s.attempt === 1)
          assert.isDefined(throttled)
          const at = throttled!.start
          // the hold reaches the other processes by notification within milliseconds
          const during = starts.filter((s) => s.start > at + 100 && s.start < at + 2_000)
          assert.deepStrictEqual(during.map((s) => `${s.owner}:${s.key}@${s.start - at}`), [])
          assert.isTrue(starts.some((s) => s.start >= at + 2_000), "work went on after the hold")
          const done = yield* o.get(caller, batch.id)
          assert.strictEqual(done.counts.succeeded, 301, "the throttled item was retried despite maxAttempts 1")
          const view = yield* limiters.get(caller, "api")
          assert.strictEqual(view.throttles, 1)
          assert.strictEqual(view.processes, 3)
          // three processes of a batch of concurrency 6 report 6 each; after the hold each one reports a
          // lowered concurrency (halved to 3, then raised by successes), and 18 in all again at the end
          const changes = (values: ReadonlyArray<number>) => values.filter((v, i) => i === 0 || v !== values[i - 1])
          const shown = [...reported].map(([owner, values]) => `${owner}: ${changes(values).join(",")}`).join("; ")
          assert.strictEqual(reported.size, 3, shown)
          for (const [owner, values] of reported) {
            assert.isAtMost(Math.min(...values), 4, `lowered in ${owner}; reported ${shown}`)
          }
          assert.strictEqual(view.effectiveConcurrency, 18, `recovered; reported ${shown}`)
        }).pipe(Effect.provide(apiAt(url)))
      }),
    { timeout: 120_000 }
  )
})
