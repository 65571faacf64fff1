import { BatchConfig, BatchState, Errors, Ids } from "@effect-batch/domain"
import { BatchRepo, EventLog, ItemReader, ItemRepo, Migrations, TestDatabase } from "@effect-batch/tables"
import { assert, describe, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"

const Repos = Layer.mergeAll(
  BatchRepo.BatchRepo.Default,
  ItemRepo.ItemRepo.Default,
  EventLog.EventLog.Default,
  ItemReader.ItemReader.Default,
  Migrations.layer
)

const tenant = Schema.decodeSync(Ids.TenantId)("tenant-a")
const otherTenant = Schema.decodeSync(Ids.TenantId)("tenant-b")
const workflow = Schema.decodeSync(Ids.WorkflowName)("extract")
const newId = () => Schema.decodeSync(Ids.BatchId)(crypto.randomUUID())
const t0 = 1_700_000_000_000

const makeBatch = (options: {
  readonly items: number | ReadonlyArray<string>
  readonly concurrency?: number
  readonly tenant?: Ids.TenantId
  readonly idempotencyKey?: string
}) =>
  Effect.gen(function*() {
    const repo = yield* BatchRepo.BatchRepo
    const keys = typeof options.items === "number"
      ? Array.from({ length: options.items }, (_, i) => `item-${String(i).padStart(6, "0")}`)
      : options.items
    return yield* repo.create({
      id: newId(),
      tenant: options.tenant ?? tenant,
      workflow,
      idempotencyKey: Option.map(
        Option.fromNullable(options.idempotencyKey),
        Schema.decodeSync(Ids.IdempotencyKey)
      ),
      config: BatchConfig.BatchConfig.make({ concurrency: options.concurrency ?? 16 }),
      state: new BatchState.Running({ since: DateTime.unsafeMake(t0), round: 1 }),
      items: Stream.fromIterable(keys.map((key, i) => ({ key, input: { n: i, text: key } }))),
      events: (total) => [{ _tag: "BatchStarted", round: 1 }, {
        _tag: "ProgressSnapshot",
        counts: {
          queued: total,
          running: 0,
          retryScheduled: 0,
          succeeded: 0,
          failed: 0,
          quarantined: 0,
          skipped: 0
        },
        itemsPerSecond: 0
      }],
      now: t0
    })
  })

const succeed = (key: string, attempt: number) => ({
  key,
  attempt,
  state: "succeeded" as const,
  output: { ok: key },
  consumed: 1,
  throttles: 0,
  roundsFailed: 0,
  durationMs: 1,
  countsAsFailure: false,
  events: []
})

for (const [name, db] of TestDatabase.databases) {
  layer(Repos.pipe(Layer.provideMerge(db)), { timeout: "120 seconds", excludeTestServices: true })(
    `repositories (${name})`,
    (it) => {
      it.effect("creates a batch with its items, streamed in chunks, and reads it back", () =>
        Effect.gen(function*() {
          const { created, record } = yield* makeBatch({ items: 12_345 })
          assert.isTrue(created)
          assert.strictEqual(record.total, 12_345)
          assert.strictEqual(record.counts.queued, 12_345)
          assert.strictEqual(record.seq, 2)
          const events = yield* (yield* EventLog.EventLog).readAfter(record.id, 0, 10)
          assert.deepStrictEqual(events.map((e) => [e._tag, e.seq]), [["BatchStarted", 1], ["ProgressSnapshot", 2]])
          const counts = yield* (yield* ItemRepo.ItemRepo).countFromItems(record.id)
          assert.strictEqual(counts.queued, 12_345)
        }))

      it.effect("is idempotent on the idempotency key and scoped by tenant", () =>
        Effect.gen(function*() {
          const first = yield* makeBatch({ items: 3, idempotencyKey: "same-key" })
          const second = yield* makeBatch({ items: 5, idempotencyKey: "same-key" })
          assert.isFalse(second.created)
          assert.strictEqual(second.record.id, first.record.id)
          assert.strictEqual(second.record.total, 3)
          const other = yield* makeBatch({ items: 2, idempotencyKey: "same-key", tenant: otherTenant })
          assert.isTrue(other.created)
          const repo = yield* BatchRepo.BatchRepo
          assert.isTrue(Option.isNone(yield* repo.get(otherTenant, first.record.id)))
          const missing = yield* Effect.either(repo.getOrFail(otherTenant, first.record.id))
          assert.isTrue(Either.isLeft(missing) && missing.left._tag === "BatchNotFound")
        }))

      it.effect("rejects duplicate item keys whole, naming them, and stores nothing", () =>
        Effect.gen(function*() {
          const result = yield* Effect.either(makeBatch({ items: ["a", "b", "a", "c", "b"], idempotencyKey: "dups" }))
          assert.isTrue(Either.isLeft(result))
          if (Either.isLeft(result)) {
            assert.instanceOf(result.left, Errors.InvalidItems)
            assert.deepStrictEqual(result.left.items.map((i) => [i.index, i.key]), [[2, "a"], [4, "b"]])
          }
          const page = yield* (yield* BatchRepo.BatchRepo).list(tenant, { limit: 1000 })
          assert.isFalse(page.items.some((b) => b.idempotencyKey._tag === "Some" && b.idempotencyKey.value === "dups"))
        }))

      it.effect("stores hostile strings literally: nothing is concatenated into SQL", () =>
        Effect.gen(function*() {
          const hostile = [
            "it's",
            "a;b",
            "x -- comment",
            "'); DROP TABLE effect_batch_items; --",
            "/* c */ \\ \" $1 $$ ``",
            "ünï©ødé 🚀"
          ]
          const evilTenant = Schema.decodeSync(Ids.TenantId)("t'; DELETE FROM effect_batch_batches; --")
          const { record } = yield* makeBatch({
            items: hostile,
            tenant: evilTenant,
            idempotencyKey: "k'; SELECT pg_sleep(10); --"
          })
          const reader = yield* ItemReader.ItemReader
          const results = yield* Stream.runCollect(reader.results(record.id))
          assert.deepStrictEqual(Chunk.toReadonlyArray(results).map((r) => r.key), [...hostile].sort())
          const again = yield* (yield* BatchRepo.BatchRepo).get(evilTenant, record.id)
          assert.isTrue(Option.isSome(again) && again.value.tenant === evilTenant)
          assert.strictEqual((yield* makeBatch({ items: 1 })).record.total, 1)
        }))

      it.effect("claims no more than the batch's free concurrency, and records outcomes in groups", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 20, concurrency: 5 })
          const items = yield* ItemRepo.ItemRepo
          const claimed = yield* items.claim({ batchId: record.id, owner: "w1", max: 100, now: t0, leaseMs: 30_000 })
          assert.strictEqual(claimed.length, 5)
          assert.deepStrictEqual(claimed.map((c) => c.attempt), [1, 1, 1, 1, 1])
          const none = yield* items.claim({ batchId: record.id, owner: "w2", max: 100, now: t0, leaseMs: 30_000 })
          assert.strictEqual(none.length, 0)
          const result = yield* items.complete({
            batchId: record.id,
            owner: "w1",
            now: t0 + 5,
            outcomes: claimed.slice(0, 2).map((c) =>
              ({
                ...succeed(c.key, c.attempt),
                events: [{
                  _tag: "ItemSucceeded",
                  itemKey: Schema.decodeSync(Ids.ItemKey)(c.key),
                  attempt: c.attempt,
                  durationMs: 1
                }]
              }) as const
            )
          })
          assert.strictEqual(result.applied.length, 2)
          assert.strictEqual(result.counts.succeeded, 2)
          assert.strictEqual(result.counts.running, 3)
          const more = yield* items.claim({ batchId: record.id, owner: "w2", max: 100, now: t0, leaseMs: 30_000 })
          assert.strictEqual(more.length, 2)
          const events = yield* (yield* EventLog.EventLog).readAfter(record.id, 0, 100)
          assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1))
          assert.strictEqual(events.filter((e) => e._tag === "ItemStarted").length, 7)
          assert.strictEqual(events.filter((e) => e._tag === "ItemSucceeded").length, 2)
        }))

      it.effect("rejects the outcome of a holder whose lease was reclaimed", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 1 })
          const items = yield* ItemRepo.ItemRepo
          const [first] = yield* items.claim({ batchId: record.id, owner: "old", max: 1, now: t0, leaseMs: 1_000 })
          assert.isDefined(first)
          assert.strictEqual(yield* items.reclaimExpired({ now: t0 + 2_000, limit: 100 }), 1)
          const [second] = yield* items.claim({
            batchId: record.id,
            owner: "new",
            max: 1,
            now: t0 + 2_000,
            leaseMs: 1_000
          })
          assert.strictEqual(second?.attempt, 2)
          const stale = yield* items.complete({
            batchId: record.id,
            owner: "old",
            now: t0 + 3_000,
            outcomes: [succeed(first!.key, first!.attempt)]
          })
          assert.deepStrictEqual(stale.rejected, [first!.key])
          assert.strictEqual(stale.counts.succeeded, 0)
          const fresh = yield* items.complete({
            batchId: record.id,
            owner: "new",
            now: t0 + 3_000,
            outcomes: [succeed(second!.key, second!.attempt)]
          })
          assert.deepStrictEqual(fresh.applied, [second!.key])
          const twice = yield* items.complete({
            batchId: record.id,
            owner: "new",
            now: t0 + 3_000,
            outcomes: [succeed(second!.key, second!.attempt)]
          })
          assert.deepStrictEqual(twice.rejected, [second!.key])
          assert.strictEqual(twice.counts.succeeded, 1)
        }))

      it.effect("lets exactly one of two concurrent state changes win", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 1 })
          const repo = yield* BatchRepo.BatchRepo
          const change = (note: string) =>
            repo.changeState({
              batchId: record.id,
              tenant,
              expectedVersion: record.version,
              state: new BatchState.Paused({
                since: DateTime.unsafeMake(t0),
                round: 1,
                reason: new BatchState.PausedByUser({ actor: "someone", note })
              }),
              events: [{ _tag: "BatchPaused", reason: new BatchState.PausedByUser({ actor: "someone", note }) }],
              now: t0
            })
          const results = yield* Effect.all([Effect.either(change("a")), Effect.either(change("b"))], {
            concurrency: 2
          })
          assert.strictEqual(results.filter(Either.isRight).length, 1)
          const loser = results.find(Either.isLeft)
          assert.isTrue(loser !== undefined && loser.left._tag === "VersionConflict")
          const after = yield* repo.getOrFail(tenant, record.id)
          assert.strictEqual(after.version, record.version + 1)
          assert.strictEqual(after.seq, record.seq + 1)
        }))

      it.effect("keeps event sequences gapless and unique under concurrent appends", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 1 })
          const log = yield* EventLog.EventLog
          yield* Effect.forEach(
            Array.from({ length: 10 }, (_, i) => i),
            (i) =>
              log.append(
                record.id,
                Array.from({ length: 5 }, () => ({ _tag: "BatchResumed", actor: `fiber-${i}` }) as const),
                t0
              ),
            { concurrency: 10 }
          )
          const events = yield* Stream.runCollect(log.stream(record.id, 0, 7))
          const seqs = Chunk.toReadonlyArray(events).map((e) => e.seq)
          assert.deepStrictEqual(seqs, Array.from({ length: 52 }, (_, i) => i + 1))
        }))

      it.effect("loses no counter increment when two batches finish at the same time", () =>
        Effect.gen(function*() {
          const items = yield* ItemRepo.ItemRepo
          const batches = yield* Effect.all([makeBatch({ items: 300 }), makeBatch({ items: 300 })])
          yield* Effect.forEach(batches, ({ record }) =>
            Effect.gen(function*() {
              let claimed = yield* items.claim({ batchId: record.id, owner: "w", max: 16, now: t0, leaseMs: 30_000 })
              while (claimed.length > 0) {
                yield* items.complete({
                  batchId: record.id,
                  owner: "w",
                  now: t0,
                  outcomes: claimed.map((c) => succeed(c.key, c.attempt))
                })
                claimed = yield* items.claim({ batchId: record.id, owner: "w", max: 16, now: t0, leaseMs: 30_000 })
              }
            }), { concurrency: 2 })
          const repo = yield* BatchRepo.BatchRepo
          for (const { record } of batches) {
            const after = yield* repo.getOrFail(tenant, record.id)
            assert.strictEqual(after.counts.succeeded, 300)
            assert.strictEqual(after.counts.running, 0)
            assert.deepStrictEqual(after.counts, yield* items.countFromItems(record.id))
          }
        }))

      it.effect("skips every unsettled item and re-queues failed ones", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 10, concurrency: 4 })
          const items = yield* ItemRepo.ItemRepo
          const claimed = yield* items.claim({ batchId: record.id, owner: "w", max: 4, now: t0, leaseMs: 30_000 })
          yield* items.complete({
            batchId: record.id,
            owner: "w",
            now: t0,
            outcomes: claimed.slice(0, 2).map((c) => ({
              ...succeed(c.key, c.attempt),
              state: "failed" as const,
              output: undefined,
              error: { category: "fatal", message: "boom" },
              countsAsFailure: true
            }))
          })
          const failed = yield* items.keysInState({ batchId: record.id, state: "failed", limit: 10 })
          assert.strictEqual(failed.count, 2)
          assert.strictEqual(
            yield* items.requeue({ batchId: record.id, from: "failed", round: 2, actor: "me", now: t0 }),
            2
          )
          assert.strictEqual(yield* items.skipRemaining({ batchId: record.id, reason: "cancelled", now: t0 }), 10)
          const after = yield* (yield* BatchRepo.BatchRepo).getOrFail(tenant, record.id)
          assert.deepStrictEqual(after.counts, yield* items.countFromItems(record.id))
          assert.strictEqual(after.counts.skipped, 10)
          const page = yield* (yield* ItemReader.ItemReader).list(record.id, { state: "Skipped", limit: 3 })
          assert.strictEqual(page.items.length, 3)
          assert.isDefined(page.nextCursor)
        }))
    }
  )
}

describe("claiming on Postgres under contention", () => {
  const pg = TestDatabase.databases.find(([name]) => name === "postgres")
  if (pg === undefined) throw new Error("no postgres test database")
  layer(Repos.pipe(Layer.provideMerge(pg[1])), { timeout: "180 seconds", excludeTestServices: true })(
    "postgres",
    (it) => {
      it.effect("8 concurrent claimers over 10,000 items never claim the same item", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 10_000, concurrency: 10_000 })
          const items = yield* ItemRepo.ItemRepo
          const claimedBy = yield* Effect.forEach(
            Array.from({ length: 8 }, (_, i) => `worker-${i}`),
            (owner) =>
              Effect.gen(function*() {
                const mine: Array<string> = []
                while (true) {
                  const claimed = yield* items.claim({ batchId: record.id, owner, max: 97, now: t0, leaseMs: 60_000 })
                  if (claimed.length === 0) return mine
                  mine.push(...claimed.map((c) => c.key))
                }
              }),
            { concurrency: 8 }
          )
          const all = claimedBy.flat()
          assert.strictEqual(all.length, 10_000)
          assert.strictEqual(new Set(all).size, 10_000)
          assert.isTrue(claimedBy.filter((keys) => keys.length > 0).length > 1)
        }))

      it.effect("never exceeds the batch's global concurrency across 3 claimers", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 600, concurrency: 7 })
          const items = yield* ItemRepo.ItemRepo
          const repo = yield* BatchRepo.BatchRepo
          let maxRunning = 0
          let done = 0
          yield* Effect.forEach(["a", "b", "c"], (owner) =>
            Effect.gen(function*() {
              while (done < 600) {
                const claimed = yield* items.claim({ batchId: record.id, owner, max: 5, now: t0, leaseMs: 60_000 })
                const running = (yield* items.countFromItems(record.id)).running
                maxRunning = Math.max(maxRunning, running)
                if (claimed.length === 0) {
                  yield* Effect.sleep("2 millis")
                  continue
                }
                const result = yield* items.complete({
                  batchId: record.id,
                  owner,
                  now: t0,
                  outcomes: claimed.map((c) => succeed(c.key, c.attempt))
                })
                done += result.applied.length
              }
            }), { concurrency: 3 })
          assert.isTrue(maxRunning <= 7, `saw ${maxRunning} running items`)
          assert.isTrue(maxRunning > 1)
          const after = yield* repo.getOrFail(tenant, record.id)
          assert.strictEqual(after.counts.succeeded, 600)
        }))
    }
  )
})
