import { BatchConfig, BatchState, Errors, Ids, ItemCounts, ItemError } from "@effect-batch/domain"
import type { BatchEvent } from "@effect-batch/domain"
import { BatchRepo, EventLog, ItemReader, ItemRepo, Migrations, Tables, TestDatabase } from "@effect-batch/tables"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { encodeDraftFast, encodeDraftSync } from "../src/internal/Rows.js"

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
const itemKey = Schema.decodeSync(Ids.ItemKey)
const t0 = 1_700_000_000_000
const leaseMs = 30_000

const keyOf = (i: number) => `item-${String(i).padStart(6, "0")}`

const makeBatch = (options: {
  readonly items: number | ReadonlyArray<string>
  readonly concurrency?: number
  readonly tenant?: Ids.TenantId
  readonly idempotencyKey?: string
}) =>
  Effect.gen(function*() {
    const repo = yield* BatchRepo.BatchRepo
    const keys = typeof options.items === "number"
      ? Array.from({ length: options.items }, (_, i) => keyOf(i))
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
      events: () => [{ _tag: "BatchStarted", round: 1 }, { _tag: "ConfigChanged", patch: { concurrency: 16 } }],
      now: t0
    })
  })

const succeed = (key: string, attempt: number): ItemRepo.Outcome => ({
  key,
  attempt,
  state: "succeeded",
  output: { ok: key },
  consumed: 1,
  throttles: 0,
  roundsFailed: 0,
  durationMs: 1,
  countsAsFailure: false,
  events: []
})

/** A success with its `ItemSucceeded` event. */
const succeedWithEvent = (item: ItemRepo.ClaimedItem, durationMs = 1.5): ItemRepo.Outcome => ({
  ...succeed(item.key, item.attempt),
  durationMs,
  events: [{ _tag: "ItemSucceeded", itemKey: itemKey(item.key), attempt: item.attempt, durationMs }]
})

const started = (items: ReadonlyArray<ItemRepo.ClaimedItem>, atMs: number): Array<ItemRepo.Entry> =>
  items.map((item) => ({ _tag: "Started", item, atMs }))

const finished = (outcomes: ReadonlyArray<ItemRepo.Outcome>): Array<ItemRepo.Entry> =>
  outcomes.map((outcome) => ({ _tag: "Finished", outcome }))

/** The indexes of the recorded entries, in order (the statement does not promise one). */
const sorted = (indexes: ReadonlyArray<number>) => [...indexes].sort((x, y) => x - y)

/** A share request with the defaults of these tests. */
const request = (
  batchId: Ids.BatchId,
  owner: string,
  now: number,
  options: { readonly executing?: number; readonly wanted?: number; readonly leaseMs?: number } = {}
): ItemRepo.ShareRequest => ({
  batchId,
  owner,
  now,
  leaseMs: options.leaseMs ?? leaseMs,
  executing: options.executing ?? 0,
  wanted: options.wanted ?? 16
})

/** The hot statements return `None` only for a batch that does not exist: none of these tests. */
const some = <A, E, R>(self: Effect.Effect<Option.Option<A>, E, R>) =>
  Effect.flatMap(self, Option.match({ onNone: () => Effect.dieMessage("batch not found"), onSome: Effect.succeed }))

const claim = (options: ItemRepo.ShareRequest & { readonly max: number }) =>
  Effect.flatMap(ItemRepo.ItemRepo, (items) => some(items.claim(options)))

const commit = (options: ItemRepo.ShareRequest & { readonly entries: ReadonlyArray<ItemRepo.Entry> }) =>
  Effect.flatMap(ItemRepo.ItemRepo, (items) => some(items.commit(options)))

/** Records no outcome for lost attempts: they go back to the queue like everything else the owner held. */
const requeueLost = (): Effect.Effect<ReadonlyArray<ItemRepo.Outcome>> => Effect.succeed([])

/**
 * Takes back what owners whose lease expired by `now` held; `decide` gives the outcomes of their lost
 * attempts. Returns how many items each batch got back or had recorded.
 */
const reclaimAt = (
  now: number,
  decide: (
    batchId: Ids.BatchId,
    lost: ReadonlyArray<ItemRepo.LostAttempt>
  ) => Effect.Effect<ReadonlyArray<ItemRepo.Outcome>> = requeueLost
) =>
  Effect.flatMap(ItemRepo.ItemRepo, (items) => items.reclaimExpired({ now, limit: 10_000, decide })).pipe(
    Effect.map((reclaimed) => {
      const perBatch = new Map<Ids.BatchId, number>()
      for (const r of reclaimed) {
        perBatch.set(r.batchId, (perBatch.get(r.batchId) ?? 0) + r.requeued + r.recorded.length)
      }
      return perBatch
    })
  )

const encodeError = Schema.encodeSync(ItemError.ItemError)

/**
 * The outcomes of lost attempts under a policy with `maxAttempts`: a retry due at once while attempts
 * remain, else a final `worker-lost` failure.
 */
const lostOutcomes = (maxAttempts: number, now: number) =>
(
  _: Ids.BatchId,
  lost: ReadonlyArray<ItemRepo.LostAttempt>
): Effect.Effect<ReadonlyArray<ItemRepo.Outcome>> =>
  Effect.succeed(lost.map(({ item, startedAtMs }): ItemRepo.Outcome => {
    const consumed = item.consumed + 1
    const error = ItemError.ItemError.make({
      category: "worker-lost",
      tag: "WorkerLost",
      message: `attempt ${consumed} was lost`
    })
    const key = itemKey(item.key)
    const final = consumed >= maxAttempts
    return {
      key: item.key,
      attempt: item.attempt,
      state: final ? "failed" : "retry",
      error: encodeError(error),
      dueAtMs: final ? undefined : now,
      consumed,
      throttles: 0,
      roundsFailed: item.rounds_failed,
      durationMs: now - startedAtMs,
      countsAsFailure: true,
      events: [
        final
          ? { _tag: "ItemFailed", itemKey: key, attempt: item.attempt, error }
          : {
            _tag: "ItemRetryScheduled",
            itemKey: key,
            attempt: item.attempt,
            nextAttemptAt: DateTime.unsafeMake(now),
            error
          }
      ]
    }
  }))

const renew = (options: ItemRepo.ShareRequest) =>
  Effect.flatMap(ItemRepo.ItemRepo, (items) => some(items.renew(options)))

interface ShareRow {
  readonly owner: string
  readonly slots: number
  readonly wanted: number
  readonly executing: number
  readonly expires_at_ms: number
}

/** The share rows of a batch, straight from the table. */
const sharesOf = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    const rows = yield* sql<ShareRow>`SELECT owner, slots, wanted, executing, expires_at_ms::float8 AS expires_at_ms
      FROM ${sql(t.shares)} WHERE batch_id = ${batchId}::uuid ORDER BY owner`
    return rows.map((r) => ({ ...r, expires_at_ms: Number(r.expires_at_ms) }))
  })

/** The sum of the stored slots of the live share rows of a batch at `now`. */
const liveSlots = (batchId: Ids.BatchId, now: number) =>
  Effect.map(sharesOf(batchId), (rows) => rows.filter((r) => r.expires_at_ms >= now).reduce((n, r) => n + r.slots, 0))

interface ItemRow {
  readonly key: string
  readonly state: string
  readonly attempt: number
  readonly lease_owner: string | null
}

/** Every item row of a batch, by key. */
const itemRows = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    const rows = yield* sql<ItemRow>`SELECT key, state, attempt, lease_owner FROM ${sql(t.items)}
      WHERE batch_id = ${batchId}::uuid ORDER BY ordinal`
    return new Map(rows.map((r) => [r.key, r]))
  })

/** The batch row's counters agree with the item rows. */
const assertCountersAgree = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const record = yield* (yield* BatchRepo.BatchRepo).getOrFail(tenant, batchId)
    assert.deepStrictEqual(record.counts, yield* (yield* ItemRepo.ItemRepo).countFromItems(batchId))
    return record
  })

/** The events of a batch are numbered 1, 2, … with no gap. */
const assertGapless = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const events = yield* (yield* EventLog.EventLog).readAfter(batchId, 0, 100_000)
    assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1))
    return events
  })

/** Runs `effect` against tables with another prefix (with repositories of their own). */
const withPrefix = (prefix: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provide(Layer.mergeAll(BatchRepo.BatchRepo.Default, ItemRepo.ItemRepo.Default, EventLog.EventLog.Default)),
    Effect.provideService(Tables.Tables, Tables.names(prefix))
  )

/** A small deterministic PRNG (mulberry32), for reproducible interleavings. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}

/** One simulated process holding a share of a batch. */
interface Owner {
  readonly owner: string
  readonly leased: Array<ItemRepo.ClaimedItem>
  readonly running: Array<ItemRepo.ClaimedItem>
  grant: number
}

const newOwner = (owner: string): Owner => ({ owner, leased: [], running: [], grant: 0 })

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
          assert.deepStrictEqual(events.map((e) => [e._tag, e.seq]), [["BatchStarted", 1], ["ConfigChanged", 2]])
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

      it.effect("grants no more slots than the batch's free concurrency, and records starts and outcomes in groups", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 20, concurrency: 5 })
          const w1 = yield* claim({ ...request(record.id, "w1", t0, { wanted: 5 }), max: 8 })
          assert.strictEqual(w1.items.length, 8)
          assert.deepStrictEqual(w1.items.map((c) => c.attempt), [1, 1, 1, 1, 1, 1, 1, 1])
          assert.strictEqual(w1.slots, 5)
          assert.isTrue(w1.more)
          // leasing ahead is not limited by the concurrency, the grant is: w1 holds every slot
          const w2 = yield* claim({ ...request(record.id, "w2", t0, { wanted: 5 }), max: 100 })
          assert.strictEqual(w2.items.length, 12)
          assert.strictEqual(w2.slots, 0)
          assert.isFalse(w2.more)
          assert.isAtMost(yield* liveSlots(record.id, t0), 5)
          const result = yield* commit({
            ...request(record.id, "w1", t0 + 5, { executing: 3, wanted: 5 }),
            entries: [
              ...started(w1.items.slice(0, 5), t0 + 1),
              ...finished(w1.items.slice(0, 2).map((c) => succeedWithEvent(c)))
            ]
          })
          assert.deepStrictEqual(sorted(result.started), [0, 1, 2, 3, 4])
          assert.deepStrictEqual(sorted(result.applied), [0, 1])
          assert.strictEqual(result.counts.succeeded, 2)
          assert.strictEqual(result.counts.running, 3)
          assert.strictEqual(result.counts.queued, 15)
          assert.isAtMost(result.slots, 5)
          // w1 executes 3: w2 is granted what is left
          const more = yield* renew(request(record.id, "w2", t0 + 5, { wanted: 5 }))
          assert.strictEqual(more.slots, 2)
          assert.isAtMost(yield* liveSlots(record.id, t0 + 5), 5)
          const w2Start = yield* commit({
            ...request(record.id, "w2", t0 + 6, { executing: 2, wanted: 5 }),
            entries: started(w2.items.slice(0, 2), t0 + 6)
          })
          assert.deepStrictEqual(sorted(w2Start.started), [0, 1])
          assert.strictEqual(w2Start.counts.running, 5)
          assert.isAtMost(w2Start.slots, 2)
          assert.isAtMost(yield* liveSlots(record.id, t0 + 6), 5)
          const events = yield* assertGapless(record.id)
          assert.strictEqual(events.filter((e) => e._tag === "ItemStarted").length, 7)
          assert.strictEqual(events.filter((e) => e._tag === "ItemSucceeded").length, 2)
          yield* assertCountersAgree(record.id)
        }))

      it.effect("rejects the start mark and outcome of a holder whose lease was reclaimed", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 1 })
          const old = yield* claim({ ...request(record.id, "old", t0, { leaseMs: 1_000 }), max: 1 })
          const first = old.items[0]!
          assert.isDefined(first)
          const start = yield* commit({
            ...request(record.id, "old", t0, { leaseMs: 1_000, executing: 1 }),
            entries: started([first], t0)
          })
          assert.deepStrictEqual(sorted(start.started), [0])
          const reclaimed = yield* reclaimAt(t0 + 2_000)
          assert.strictEqual(reclaimed.get(record.id), 1)
          assert.isFalse((yield* sharesOf(record.id)).some((r) => r.owner === "old"))
          assert.strictEqual((yield* assertCountersAgree(record.id)).counts.queued, 1)
          const fresh = yield* claim({ ...request(record.id, "new", t0 + 2_000, { leaseMs: 1_000 }), max: 1 })
          const second = fresh.items[0]!
          assert.strictEqual(second.attempt, 2)
          const stale = yield* commit({
            ...request(record.id, "old", t0 + 3_000),
            entries: [...started([first], t0 + 3_000), ...finished([succeed(first.key, first.attempt)])]
          })
          assert.deepStrictEqual(sorted(stale.started), [])
          assert.deepStrictEqual(sorted(stale.applied), [])
          assert.strictEqual(stale.counts.succeeded, 0)
          const done = yield* commit({
            ...request(record.id, "new", t0 + 3_000),
            entries: [...started([second], t0 + 2_500), ...finished([succeed(second.key, second.attempt)])]
          })
          assert.deepStrictEqual(sorted(done.started), [0])
          assert.deepStrictEqual(sorted(done.applied), [0])
          const twice = yield* commit({
            ...request(record.id, "new", t0 + 3_000),
            entries: finished([succeed(second.key, second.attempt)])
          })
          assert.deepStrictEqual(sorted(twice.applied), [])
          assert.strictEqual(twice.counts.succeeded, 1)
          assert.strictEqual(twice.counts.running, 0)
          yield* assertCountersAgree(record.id)
        }))

      it.effect("a started attempt whose lease is lost uses an attempt; items leased ahead and released do not", () =>
        Effect.gen(function*() {
          const maxAttempts = 3
          const lease = 1_000
          const { record } = yield* makeBatch({ items: ["poison", "a", "b"], concurrency: 1 })
          const items = yield* ItemRepo.ItemRepo
          let now = t0
          for (let n = 1; n <= maxAttempts; n++) {
            const owner = `dies-${n}`
            const leased = yield* claim({ ...request(record.id, owner, now, { leaseMs: lease, wanted: 1 }), max: 10 })
            assert.deepStrictEqual(leased.items.map((c) => c.key), ["poison", "a", "b"])
            const poison = leased.items[0]!
            assert.deepStrictEqual([poison.consumed, poison.lost_leases], [n - 1, n - 1])
            const start = yield* commit({
              ...request(record.id, owner, now, { leaseMs: lease, executing: 1, wanted: 1 }),
              entries: started([poison], now)
            })
            assert.deepStrictEqual(start.started, [0])
            // the attempt takes its process down: its lease expires, and another process takes back what it held
            now += lease + 1
            const reclaimed = yield* items.reclaimExpired({ now, limit: 100, decide: lostOutcomes(maxAttempts, now) })
            assert.deepStrictEqual(
              reclaimed.map((r) => [r.owner, r.requeued, r.recorded.map((o) => [o.key, o.state])]),
              [[owner, 2, [["poison", n < maxAttempts ? "retry" : "failed"]]]]
            )
            const after = yield* assertCountersAgree(record.id)
            assert.deepStrictEqual(
              [after.counts.queued, after.counts.running, after.counts.retryScheduled, after.counts.failed],
              n < maxAttempts ? [2, 0, 1, 0] : [2, 0, 0, 1]
            )
            assert.isFalse((yield* sharesOf(record.id)).some((r) => r.owner === owner))
            // the process that hung wakes up: what it reports of the lost attempt is fenced out
            const late = yield* commit({
              ...request(record.id, owner, now),
              entries: finished([succeedWithEvent(poison)])
            })
            assert.deepStrictEqual(late.applied, [])
            yield* assertGapless(record.id)
            now += 1
          }
          const poison = yield* (yield* ItemReader.ItemReader).get(record.id, "poison")
          assert.isTrue(Option.isSome(poison))
          if (Option.isSome(poison)) {
            const state = poison.value.state
            assert.strictEqual(state._tag, "Failed")
            if (state._tag === "Failed") {
              assert.strictEqual(state.attempts, maxAttempts)
              assert.deepStrictEqual([state.error.category, state.error.tag], ["worker-lost", "WorkerLost"])
            }
          }

          // leased ahead and given back (or lost with their dead holders) many times: no attempt used
          for (let n = 0; n < 5; n++) {
            const ahead = yield* claim({ ...request(record.id, "prefetch", now), max: 10 })
            assert.deepStrictEqual(ahead.items.map((c) => c.key), ["a", "b"])
            yield* items.release({ batchId: record.id, owner: "prefetch", items: ahead.items, dropShare: true })
            now += 1
          }
          const last = yield* claim({ ...request(record.id, "last", now), max: 10 })
          assert.deepStrictEqual(last.items.map((c) => [c.key, c.consumed, c.lost_leases]), [["a", 0, 3], ["b", 0, 3]])
          // the fencing token counts every lease
          assert.deepStrictEqual(last.items.map((c) => c.attempt), [9, 9])
          yield* commit({
            ...request(record.id, "last", now),
            entries: [...started(last.items, now), ...finished(last.items.map((c) => succeedWithEvent(c)))]
          })
          const settled = yield* assertCountersAgree(record.id)
          assert.strictEqual(ItemCounts.pending(settled.counts), 0)
          assert.deepStrictEqual([settled.counts.succeeded, settled.counts.failed], [2, 1])
          assert.strictEqual(settled.consecutiveFailures, 0)
          const events = yield* assertGapless(record.id)
          assert.deepStrictEqual(
            events.filter((e) => "itemKey" in e && e.itemKey === "poison").map((e) => e._tag),
            [
              "ItemStarted",
              "ItemRetryScheduled",
              "ItemStarted",
              "ItemRetryScheduled",
              "ItemStarted",
              "ItemFailed"
            ]
          )
        }))

      it.effect("leases ahead without starting; start marks and outcomes are fenced by owner and attempt", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 60, concurrency: 4 })
          const w = yield* claim({ ...request(record.id, "w", t0, { wanted: 4 }), max: 50 })
          assert.strictEqual(w.items.length, 50)
          assert.deepStrictEqual(w.items.map((c) => c.key), Array.from({ length: 50 }, (_, i) => keyOf(i)))
          assert.strictEqual(w.slots, 4)
          assert.isTrue(w.more)
          const leased = yield* assertCountersAgree(record.id)
          assert.strictEqual(leased.counts.running, 0)
          assert.strictEqual(leased.counts.queued, 60)
          const rows = yield* itemRows(record.id)
          assert.strictEqual([...rows.values()].filter((r) => r.state === "leased" && r.lease_owner === "w").length, 50)
          assert.strictEqual((yield* assertGapless(record.id)).length, 2)

          // start the first 4 (the grant); the first one's outcome arrives in the same group
          const [a, b, c, d] = w.items
          const first = yield* commit({
            ...request(record.id, "w", t0 + 1, { executing: 3, wanted: 4 }),
            entries: [...started([a!, b!, c!, d!], t0 + 1), ...finished([succeedWithEvent(a!, 0.25)])]
          })
          assert.deepStrictEqual(sorted(first.started), [0, 1, 2, 3])
          assert.deepStrictEqual(sorted(first.applied), [0])
          assert.strictEqual(first.counts.running, 3)
          assert.strictEqual(first.counts.succeeded, 1)
          assert.strictEqual(first.counts.queued, 56)

          // fenced out: an outcome of an attempt that never started, of another owner, of another attempt;
          // a start mark of a started attempt, of another owner
          const notStarted = w.items[10]!
          const fenced = yield* commit({
            ...request(record.id, "w", t0 + 2, { executing: 3, wanted: 4 }),
            entries: [
              ...finished([succeedWithEvent(notStarted), succeed(c!.key, c!.attempt + 1)]),
              ...started([b!], t0 + 2)
            ]
          })
          assert.deepStrictEqual(sorted(fenced.started), [])
          assert.deepStrictEqual(sorted(fenced.applied), [])
          const intruder = yield* commit({
            ...request(record.id, "intruder", t0 + 2),
            entries: [...started([w.items[11]!], t0 + 2), ...finished([succeedWithEvent(b!)])]
          })
          assert.deepStrictEqual(sorted(intruder.started), [])
          assert.deepStrictEqual(sorted(intruder.applied), [])
          assert.strictEqual(intruder.counts.succeeded, 1)
          assert.strictEqual(intruder.counts.running, 3)

          // a second outcome of the same attempt is not recorded twice
          const once = yield* commit({
            ...request(record.id, "w", t0 + 3, { executing: 2, wanted: 4 }),
            entries: finished([succeedWithEvent(b!, 12.5)])
          })
          assert.deepStrictEqual(sorted(once.applied), [0])
          const again = yield* commit({
            ...request(record.id, "w", t0 + 4, { executing: 2, wanted: 4 }),
            entries: finished([succeedWithEvent(b!, 12.5), succeedWithEvent(c!, 3)])
          })
          assert.deepStrictEqual(sorted(again.applied), [1])
          assert.strictEqual(again.counts.succeeded, 3)
          assert.strictEqual(again.counts.running, 1)

          // a stale owner after a reclaim: its start mark and its outcome are rejected
          const reclaimed = yield* reclaimAt(t0 + 4 + leaseMs + 1)
          assert.strictEqual(reclaimed.get(record.id), 47)
          const stale = yield* commit({
            ...request(record.id, "w", t0 + 5 + leaseMs),
            entries: [...started([w.items[4]!], t0 + 5 + leaseMs), ...finished([succeedWithEvent(d!)])]
          })
          assert.deepStrictEqual(sorted(stale.started), [])
          assert.deepStrictEqual(sorted(stale.applied), [])
          const after = yield* assertCountersAgree(record.id)
          assert.strictEqual(after.counts.queued, 57)
          assert.strictEqual(after.counts.running, 0)
          assert.strictEqual(after.counts.succeeded, 3)

          // events: gapless, one ItemStarted per recorded start, each before its item's outcome
          const events = yield* assertGapless(record.id)
          const startedAt = new Map<string, number>()
          const outcomes: Array<[string, number]> = []
          for (const e of events) {
            if (e._tag === "ItemStarted") {
              assert.isFalse(startedAt.has(`${e.itemKey}#${e.attempt}`))
              startedAt.set(`${e.itemKey}#${e.attempt}`, e.seq)
            }
            if (e._tag === "ItemSucceeded") outcomes.push([`${e.itemKey}#${e.attempt}`, e.seq])
          }
          assert.deepStrictEqual([...startedAt.keys()], [a!, b!, c!, d!].map((x) => `${x.key}#1`))
          assert.deepStrictEqual(outcomes.map(([k]) => k), [a!, b!, c!].map((x) => `${x.key}#1`))
          for (const [k, seq] of outcomes) assert.isBelow(startedAt.get(k)!, seq)
          const durations = events.flatMap((e) => e._tag === "ItemSucceeded" ? [e.durationMs] : [])
          assert.deepStrictEqual(durations, [0.25, 12.5, 3])
        }))

      it.effect("shares the concurrency among owners: never more than it, a fair split, expired rows drop out", () =>
        Effect.gen(function*() {
          const concurrency = 10
          const { record } = yield* makeBatch({ items: 2_000, concurrency })
          const batchId = record.id
          const owners = [newOwner("a"), newOwner("b"), newOwner("c")]
          const [a, b, c] = owners as [Owner, Owner, Owner]
          const wanted = 10
          const req = (o: Owner, now: number, executing = o.running.length) =>
            request(batchId, o.owner, now, { executing, wanted })

          /** The live rows hold at most the concurrency, and their owners execute no more than it. */
          const check = (now: number) =>
            Effect.gen(function*() {
              const rows = yield* sharesOf(batchId)
              const live = rows.filter((r) => r.expires_at_ms >= now)
              const sum = live.reduce((n, r) => n + r.slots, 0)
              assert.isAtMost(sum, concurrency, `live slots ${JSON.stringify(live)}`)
              for (const r of rows) assert.isAtLeast(r.slots, r.executing)
              const sql = yield* SqlClient.SqlClient
              const t = yield* Tables.Tables
              const [running] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(t.items)} i
                JOIN ${sql(t.shares)} s ON s.batch_id = i.batch_id AND s.owner = i.lease_owner
                WHERE i.batch_id = ${batchId}::uuid AND i.state = 'running' AND s.expires_at_ms >= ${now}`
              assert.isAtMost(running!.n, concurrency)
            })
          const doClaim = (o: Owner, now: number) =>
            Effect.gen(function*() {
              const r = yield* claim({ ...req(o, now), max: Math.max(0, 12 - o.leased.length) })
              o.grant = r.slots
              o.leased.push(...r.items)
            })
          const doRenew = (o: Owner, now: number) =>
            Effect.map(renew(req(o, now)), (r) => {
              o.grant = r.slots
            })
          /** Finishes `finish` running attempts, then starts attempts up to the grant. */
          const doCommit = (o: Owner, now: number, finish: number) =>
            Effect.gen(function*() {
              const done = o.running.splice(0, finish)
              const start = o.leased.splice(0, Math.max(0, o.grant - o.running.length))
              const r = yield* commit({
                ...req(o, now, o.running.length + start.length),
                entries: [...finished(done.map((x) => succeedWithEvent(x))), ...started(start, now)]
              })
              assert.strictEqual(r.applied.length, done.length)
              assert.strictEqual(r.started.length, start.length)
              o.running.push(...start)
              o.grant = r.slots
            })
          /** A round of a well-behaved process: renew, then finish what is above the grant and start up to it. */
          const settle = (o: Owner, now: number) =>
            Effect.gen(function*() {
              yield* doRenew(o, now)
              if (o.leased.length < o.grant) yield* doClaim(o, now)
              yield* doCommit(o, now, Math.max(0, o.running.length - o.grant))
            })

          // `a` comes first: it starts an item, whose attempt fails for now, and leases it again as a due
          // retry that it keeps aside (leased, never started)
          let now = t0
          yield* doClaim(a, now)
          assert.strictEqual(a.grant, concurrency)
          const x = a.leased.shift()!
          yield* commit({ ...req(a, now, 1), entries: started([x], now) })
          const toRetry = yield* commit({
            ...req(a, now),
            entries: finished([{
              ...succeed(x.key, x.attempt),
              state: "retry",
              output: undefined,
              error: { category: "transient", message: "again" },
              dueAtMs: now,
              countsAsFailure: true
            }])
          })
          assert.deepStrictEqual(sorted(toRetry.applied), [0])
          yield* doClaim(a, now)
          const retried = a.leased.splice(a.leased.findIndex((y) => y.key === x.key), 1)[0]!
          assert.strictEqual(retried.key, x.key)
          assert.strictEqual(retried.attempt, x.attempt + 1)
          yield* check(now)

          // any interleaving of claims, renewals and commits
          const random = prng(42)
          for (let step = 0; step < 90; step++) {
            now += 1
            const o = owners[Math.floor(random() * owners.length)]!
            const op = random()
            if (op < 0.3) yield* doClaim(o, now)
            else if (op < 0.55) yield* doRenew(o, now)
            else yield* doCommit(o, now, Math.floor(random() * (o.running.length + 1)))
            yield* check(now)
          }

          // well-behaved rounds: the grants converge to a fair split
          for (let round = 0; round < 6; round++) {
            for (const o of owners) {
              now += 1
              yield* settle(o, now)
              yield* check(now)
            }
          }
          for (const o of owners) {
            now += 1
            yield* doRenew(o, now)
          }
          const grants = owners.map((o) => o.grant)
          assert.strictEqual(grants.reduce((n, g) => n + g, 0), concurrency, `grants ${grants}`)
          assert.isTrue(grants.every((g) => g >= 3), `grants ${grants}`)
          assert.isAtMost(Math.max(...grants) - Math.min(...grants), 1, `grants ${grants}`)
          assert.deepStrictEqual(owners.map((o) => o.running.length), grants)

          // `a` stops renewing: far later, its row no longer counts and the others split everything
          const later = now + 1_000_000
          now = later
          for (let round = 0; round < 4; round++) {
            for (const o of [b, c]) {
              now += 1
              yield* settle(o, now)
              yield* check(now)
            }
          }
          for (const o of [b, c]) {
            now += 1
            yield* doRenew(o, now)
          }
          assert.deepStrictEqual([b.grant, c.grant], [5, 5])
          assert.strictEqual(yield* liveSlots(batchId, now), 10)
          const aRow = (yield* sharesOf(batchId)).find((r) => r.owner === "a")
          assert.isTrue(aRow !== undefined && aRow.expires_at_ms < now)

          // reclaiming takes back what `a` held, and deletes its row
          const held = a.leased.length + a.running.length + 1
          assert.isAbove(held, 0)
          const reclaimed = yield* reclaimAt(now)
          assert.strictEqual(reclaimed.get(batchId), held)
          assert.deepStrictEqual((yield* sharesOf(batchId)).map((r) => r.owner), ["b", "c"])
          const rows = yield* itemRows(batchId)
          assert.isFalse([...rows.values()].some((r) => r.lease_owner === "a"))
          for (const y of [...a.leased, ...a.running]) assert.strictEqual(rows.get(y.key)?.state, "queued")
          assert.strictEqual(rows.get(retried.key)?.state, "retry")
          const after = yield* assertCountersAgree(batchId)
          assert.strictEqual(after.counts.retryScheduled, 1)
          assert.strictEqual(after.counts.running, b.running.length + c.running.length)
          // the others carry on
          for (const o of [b, c]) {
            now += 1
            yield* doCommit(o, now, o.running.length)
          }
          yield* check(now)
          yield* assertCountersAgree(batchId)
          yield* assertGapless(batchId)
        }))

      it.effect("releases leased items (and stopped attempts) back to the queue, lowering the claim cursor", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 30, concurrency: 4 })
          const items = yield* ItemRepo.ItemRepo
          const first = yield* claim({ ...request(record.id, "w", t0, { wanted: 4 }), max: 10 })
          const [i0, i1] = first.items
          yield* commit({
            ...request(record.id, "w", t0, { executing: 2, wanted: 4 }),
            entries: started([i0!, i1!], t0)
          })
          // item 0 fails for now, with a retry due at t0 + 100
          yield* commit({
            ...request(record.id, "w", t0 + 1, { executing: 1, wanted: 4 }),
            entries: finished([{
              ...succeed(i0!.key, i0!.attempt),
              state: "retry",
              output: undefined,
              dueAtMs: t0 + 100,
              countsAsFailure: true
            }])
          })
          // the due retry is leased first, then fresh items 10..13
          const second = yield* claim({ ...request(record.id, "w", t0 + 200, { executing: 1, wanted: 4 }), max: 5 })
          assert.deepStrictEqual(second.items.map((c) => c.key), [0, 10, 11, 12, 13].map(keyOf))
          const retry0 = second.items[0]!
          assert.strictEqual(retry0.attempt, 2)
          const before = yield* assertCountersAgree(record.id)
          assert.strictEqual(before.counts.running, 1)
          assert.strictEqual(before.counts.retryScheduled, 0)

          // release items 5..9 (leased), the leased retry, the stopped attempt of item 1, and a stale entry
          const released = yield* items.release({
            batchId: record.id,
            owner: "w",
            items: [...first.items.slice(5, 10), retry0, i1!, { ...first.items[2]!, attempt: 7 }],
            dropShare: false
          })
          assert.strictEqual(released, 7)
          const rows = yield* itemRows(record.id)
          for (const i of [1, 5, 6, 7, 8, 9]) assert.strictEqual(rows.get(keyOf(i))?.state, "queued")
          assert.strictEqual(rows.get(keyOf(0))?.state, "retry")
          for (const i of [2, 3, 4, 10, 11, 12, 13]) assert.strictEqual(rows.get(keyOf(i))?.state, "leased")
          const after = yield* assertCountersAgree(record.id)
          assert.strictEqual(after.counts.running, 0)
          assert.strictEqual(after.counts.retryScheduled, 1)
          assert.strictEqual(after.counts.queued, 29)
          // the outcome of the stopped attempt is fenced out
          const late = yield* commit({
            ...request(record.id, "w", t0 + 201, { wanted: 4 }),
            entries: finished([succeed(i1!.key, i1!.attempt)])
          })
          assert.deepStrictEqual(sorted(late.applied), [])

          // another owner claims them again: the retry first, then in ordinal order from the lowered cursor
          const other = yield* claim({ ...request(record.id, "w2", t0 + 300, { wanted: 4 }), max: 100 })
          assert.deepStrictEqual(
            other.items.map((c) => c.key),
            [0, 1, 5, 6, 7, 8, 9, ...Array.from({ length: 16 }, (_, i) => 14 + i)].map(keyOf)
          )
          assert.strictEqual(other.items[0]!.attempt, 3)
          assert.strictEqual(other.items[1]!.attempt, 2)
          assert.isFalse(other.more)

          // giving everything back with the share row
          assert.deepStrictEqual((yield* sharesOf(record.id)).map((r) => r.owner), ["w", "w2"])
          const rest = [...first.items.slice(2, 5), ...second.items.slice(1)]
          assert.strictEqual(
            yield* items.release({ batchId: record.id, owner: "w", items: rest, dropShare: true }),
            7
          )
          assert.deepStrictEqual((yield* sharesOf(record.id)).map((r) => r.owner), ["w2"])
          assert.strictEqual(
            yield* items.release({ batchId: record.id, owner: "w2", items: other.items, dropShare: true }),
            23
          )
          assert.deepStrictEqual(yield* sharesOf(record.id), [])
          assert.strictEqual(
            yield* items.release({ batchId: record.id, owner: "w2", items: [], dropShare: true }),
            0
          )
          const last = yield* assertCountersAgree(record.id)
          assert.strictEqual(last.counts.queued, 29)
          assert.strictEqual(last.counts.retryScheduled, 1)
          const again = yield* claim({ ...request(record.id, "w3", t0 + 400), max: 100 })
          assert.deepStrictEqual(again.items.map((c) => c.key), Array.from({ length: 30 }, (_, i) => keyOf(i)))
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
              let claimed = yield* claim({ ...request(record.id, "w", t0), max: 16 })
              while (claimed.items.length > 0) {
                yield* commit({
                  ...request(record.id, "w", t0),
                  entries: [
                    ...started(claimed.items, t0),
                    ...finished(claimed.items.map((c) => succeed(c.key, c.attempt)))
                  ]
                })
                claimed = yield* claim({ ...request(record.id, "w", t0), max: 16 })
              }
            }), { concurrency: 2 })
          const repo = yield* BatchRepo.BatchRepo
          for (const { record } of batches) {
            const after = yield* repo.getOrFail(tenant, record.id)
            assert.strictEqual(after.counts.succeeded, 300)
            assert.strictEqual(after.counts.running, 0)
            assert.strictEqual(after.counts.queued, 0)
            assert.deepStrictEqual(after.counts, yield* items.countFromItems(record.id))
          }
        }))

      it.effect("skips every unsettled item and re-queues failed ones", () =>
        Effect.gen(function*() {
          const { record } = yield* makeBatch({ items: 10, concurrency: 4 })
          const items = yield* ItemRepo.ItemRepo
          // 6 leased, 4 of them started, 2 of those fail
          const claimed = yield* claim({ ...request(record.id, "w", t0, { wanted: 4 }), max: 6 })
          yield* commit({
            ...request(record.id, "w", t0, { executing: 2, wanted: 4 }),
            entries: [
              ...started(claimed.items.slice(0, 4), t0),
              ...finished(
                claimed.items.slice(0, 2).map((c) => ({
                  ...succeed(c.key, c.attempt),
                  state: "failed" as const,
                  output: undefined,
                  error: { category: "fatal", message: "boom" },
                  countsAsFailure: true
                }))
              )
            ]
          })
          const failed = yield* items.keysInState({ batchId: record.id, state: "failed", limit: 10 })
          assert.strictEqual(failed.count, 2)
          assert.strictEqual(
            yield* items.requeue({ batchId: record.id, from: "failed", round: 2, actor: "me", now: t0 }),
            2
          )
          assert.strictEqual(yield* items.skipRemaining({ batchId: record.id, reason: "cancelled", now: t0 }), 10)
          const after = yield* assertCountersAgree(record.id)
          assert.strictEqual(after.counts.skipped, 10)
          const page = yield* (yield* ItemReader.ItemReader).list(record.id, { state: "Skipped", limit: 3 })
          assert.strictEqual(page.items.length, 3)
          assert.isDefined(page.nextCursor)
        }))

      it.effect("upgrades a database made by the previous version (migrations 1 and 2)", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const t = yield* Tables.Tables
          assert.strictEqual(t.prefix, "upgrade_test_")
          const all = Migrations.migrations(t)
          const v2 = yield* Migrator.make({})({
            loader: Migrator.fromRecord({ "1_schema": all["1_schema"]!, "2_cycle": all["2_cycle"]! }),
            table: t.migrations
          })
          assert.deepStrictEqual(v2.map(([id]) => id), [1, 2])

          // a running batch as the previous version left it
          const batchId = newId()
          const state = Schema.encodeSync(BatchState.BatchState)(
            new BatchState.Running({ since: DateTime.unsafeMake(t0), round: 1 })
          )
          const config = Schema.encodeSync(BatchConfig.BatchConfig)(BatchConfig.BatchConfig.make({ concurrency: 4 }))
          yield* sql`INSERT INTO ${sql(t.batches)} (id, tenant, workflow, state_tag, state, config, concurrency,
              round, version, seq, total, queued, running, retry_scheduled, succeeded, claim_cursor, wanted_by,
              wanted_at_ms, created_at_ms, updated_at_ms)
            VALUES (${batchId}::uuid, ${tenant}, ${workflow}, 'Running', ${JSON.stringify(state)}::text::jsonb,
              ${JSON.stringify(config)}::text::jsonb, 4, 1, 0, 0, 12, 7, 4, 1, 0, 4, 'old-a', ${t0 - 500}, ${t0},
              ${t0})`
          const v2Item = (
            i: number,
            row: { state: string; attempt?: number; owner?: string; leaseUntil?: number; due?: number }
          ) => ({
            batch_id: batchId,
            key: keyOf(i),
            ordinal: i,
            input: JSON.stringify({ n: i }),
            state: row.state,
            attempt: row.attempt ?? 0,
            lease_owner: row.owner ?? null,
            lease_expires_at_ms: row.leaseUntil ?? null,
            due_at_ms: row.due ?? null
          })
          const v2Items = [
            v2Item(0, { state: "running", attempt: 1, owner: "old-a", leaseUntil: t0 - 5_000 }),
            v2Item(1, { state: "running", attempt: 1, owner: "old-a", leaseUntil: t0 - 6_000 }),
            // a retry claimed by the previous version kept its due time
            v2Item(2, { state: "running", attempt: 2, owner: "old-b", leaseUntil: t0 - 1_000, due: t0 - 20_000 }),
            v2Item(3, { state: "retry", attempt: 1, due: t0 - 100 }),
            // a live holder
            v2Item(4, { state: "running", attempt: 1, owner: "old-c", leaseUntil: t0 + 60_000 }),
            ...Array.from({ length: 7 }, (_, k) => v2Item(5 + k, { state: "queued" }))
          ]
          yield* sql`INSERT INTO ${sql(t.items)} (batch_id, key, ordinal, input, state, attempt, lease_owner,
              lease_expires_at_ms, due_at_ms)
            SELECT x.batch_id::uuid, x.key, x.ordinal, x.input::jsonb, x.state, x.attempt, x.lease_owner,
              x.lease_expires_at_ms, x.due_at_ms
            FROM jsonb_to_recordset(${JSON.stringify(v2Items)}::text::jsonb) AS x(batch_id text, key text,
              ordinal int, input text, state text, attempt int, lease_owner text, lease_expires_at_ms bigint,
              due_at_ms bigint)`

          // the new version starts
          const applied = yield* Migrations.run
          assert.deepStrictEqual(applied.map(([id, name]) => [id, name]), [
            [3, "shares"],
            [4, "steps"],
            [5, "limiters"],
            [6, "campaigns"],
            [7, "lost_leases"],
            [8, "step_counts"],
            [9, "trends"]
          ])
          const functions = yield* sql<{ proname: string }>`SELECT proname FROM pg_proc
            WHERE proname LIKE ${`${t.prefix}%`} ORDER BY proname`
          assert.deepStrictEqual(
            functions.map((f) => f.proname),
            [
              "append_events",
              "claim",
              "commit",
              "limiter_take",
              "lost_attempts",
              "reclaim",
              "release",
              "renew",
              "share"
            ].map((f) => t.prefix + f)
          )
          const columns = yield* sql<{ column_name: string }>`SELECT column_name FROM information_schema.columns
            WHERE table_name = ${t.items} AND column_name = 'lease_expires_at_ms'`
          assert.strictEqual(columns.length, 0)
          // the running items' leases became their owners' share rows
          const shares = yield* sharesOf(batchId)
          assert.deepStrictEqual(shares.map((r) => [r.owner, r.executing, r.expires_at_ms]), [
            ["old-a", 2, t0 - 5_000],
            ["old-b", 1, t0 - 1_000],
            ["old-c", 1, t0 + 60_000]
          ])
          for (const r of shares) assert.isAtLeast(r.slots, r.executing)
          const upgraded = yield* assertCountersAgree(batchId)
          assert.deepStrictEqual(
            [upgraded.counts.queued, upgraded.counts.running, upgraded.counts.retryScheduled],
            [7, 4, 1]
          )

          // the dead holders' items go back to the queue; the live one keeps its item
          const reclaimed = yield* reclaimAt(t0)
          assert.strictEqual(reclaimed.get(batchId), 3)
          assert.deepStrictEqual((yield* sharesOf(batchId)).map((r) => r.owner), ["old-c"])
          const afterReclaim = yield* assertCountersAgree(batchId)
          assert.deepStrictEqual(
            [afterReclaim.counts.queued, afterReclaim.counts.running, afterReclaim.counts.retryScheduled],
            [10, 1, 1]
          )

          // a new process claims: within what the live holder leaves, everything that is due, in order
          const fresh = yield* claim({ ...request(batchId, "new", t0, { wanted: 4 }), max: 20 })
          assert.strictEqual(fresh.slots, 3)
          assert.deepStrictEqual(fresh.items.map((c) => c.key), [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11].map(keyOf))
          assert.deepStrictEqual(fresh.items.map((c) => c.attempt), [2, 2, 3, 2, 1, 1, 1, 1, 1, 1, 1])
          assert.isFalse(fresh.more)
          const done = yield* commit({
            ...request(batchId, "new", t0 + 1, { wanted: 4 }),
            entries: [
              ...started(fresh.items.slice(0, 3), t0 + 1),
              ...finished(fresh.items.slice(0, 3).map((c) => succeedWithEvent(c)))
            ]
          })
          assert.deepStrictEqual(sorted(done.started), [0, 1, 2])
          assert.deepStrictEqual(sorted(done.applied), [0, 1, 2])
          // the live holder of the previous version's lease can still record its outcome
          const old = yield* commit({
            ...request(batchId, "old-c", t0 + 2, { wanted: 0 }),
            entries: finished([succeed(keyOf(4), 1)])
          })
          assert.deepStrictEqual(sorted(old.applied), [0])
          const last = yield* assertCountersAgree(batchId)
          assert.strictEqual(last.counts.succeeded, 4)
          assert.strictEqual(last.counts.running, 0)
          const events = yield* assertGapless(batchId)
          assert.deepStrictEqual(events.map((e) => e._tag), [
            "ItemStarted",
            "ItemStarted",
            "ItemStarted",
            "ItemSucceeded",
            "ItemSucceeded",
            "ItemSucceeded"
          ])
        }).pipe(withPrefix("upgrade_test_")))
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
          const claimedBy = yield* Effect.forEach(
            Array.from({ length: 8 }, (_, i) => `worker-${i}`),
            (owner) =>
              Effect.gen(function*() {
                const mine: Array<string> = []
                while (true) {
                  const claimed = yield* claim({
                    ...request(record.id, owner, t0, { leaseMs: 60_000, wanted: 97 }),
                    max: 97
                  })
                  if (claimed.items.length === 0) return mine
                  mine.push(...claimed.items.map((c) => c.key))
                }
              }),
            { concurrency: 8 }
          )
          const all = claimedBy.flat()
          assert.strictEqual(all.length, 10_000)
          assert.strictEqual(new Set(all).size, 10_000)
          assert.isTrue(claimedBy.filter((keys) => keys.length > 0).length > 1)
          const after = yield* assertCountersAgree(record.id)
          assert.strictEqual(after.counts.queued, 10_000)
          assert.strictEqual(after.counts.running, 0)
        }))

      it.effect("never exceeds the batch's global concurrency across 3 claimers", () =>
        Effect.gen(function*() {
          const concurrency = 7
          const { record } = yield* makeBatch({ items: 600, concurrency })
          const items = yield* ItemRepo.ItemRepo
          const repo = yield* BatchRepo.BatchRepo
          let maxRunning = 0
          let maxSlots = 0
          let done = 0
          yield* Effect.forEach(["a", "b", "c"], (owner) =>
            Effect.gen(function*() {
              const leased: Array<ItemRepo.ClaimedItem> = []
              let more = true
              while (done < 600) {
                const claimed: ItemRepo.ClaimResult = yield* claim({
                  ...request(record.id, owner, t0, {
                    leaseMs: 60_000,
                    wanted: Math.min(concurrency, leased.length + (more ? concurrency : 0))
                  }),
                  max: Math.max(0, 5 - leased.length)
                })
                more = claimed.more
                leased.push(...claimed.items)
                // start up to the grant
                const start = leased.splice(0, claimed.slots)
                if (start.length === 0) {
                  yield* Effect.sleep("2 millis")
                  continue
                }
                const marks = yield* commit({
                  ...request(record.id, owner, t0, { leaseMs: 60_000, executing: start.length, wanted: concurrency }),
                  entries: started(start, t0)
                })
                assert.strictEqual(marks.started.length, start.length)
                maxRunning = Math.max(maxRunning, (yield* items.countFromItems(record.id)).running)
                maxSlots = Math.max(maxSlots, yield* liveSlots(record.id, t0))
                const result = yield* commit({
                  ...request(record.id, owner, t0, {
                    leaseMs: 60_000,
                    wanted: Math.min(concurrency, leased.length + (more ? concurrency : 0))
                  }),
                  entries: finished(start.map((c) => succeed(c.key, c.attempt)))
                })
                done += result.applied.length
              }
            }), { concurrency: 3 })
          assert.isTrue(maxRunning <= concurrency, `saw ${maxRunning} running items`)
          assert.isTrue(maxSlots <= concurrency, `saw ${maxSlots} slots held`)
          assert.isTrue(maxRunning > 1)
          const after = yield* repo.getOrFail(tenant, record.id)
          assert.strictEqual(after.counts.succeeded, 600)
          assert.deepStrictEqual(after.counts, yield* items.countFromItems(record.id))
        }))

      it.effect("claims, start marks and outcomes are mostly HOT updates of the item rows", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const t = yield* Tables.Tables
          yield* Migrations.run
          const stats = sql<{ upd: number; hot: number }>`SELECT n_tup_upd::float8 AS upd, n_tup_hot_upd::float8 AS hot
            FROM pg_stat_user_tables WHERE relname = ${t.items}`.pipe(
            Effect.map((rows) => ({ upd: Number(rows[0]?.upd ?? 0), hot: Number(rows[0]?.hot ?? 0) }))
          )
          const flushed = Effect.zipRight(sql`SELECT pg_stat_force_next_flush()`, stats)
          const before = yield* flushed
          const total = 2_000
          const group = 50
          const { record } = yield* makeBatch({ items: total, concurrency: group })
          let now = t0
          while (true) {
            now += 1
            const claimed = yield* claim({ ...request(record.id, "w", now, { wanted: group }), max: group })
            if (claimed.items.length === 0) break
            const marks = yield* commit({
              ...request(record.id, "w", now, { executing: claimed.items.length, wanted: group }),
              entries: started(claimed.items, now)
            })
            assert.strictEqual(marks.started.length, claimed.items.length)
            const outcomes = yield* commit({
              ...request(record.id, "w", now, { wanted: group }),
              entries: finished(claimed.items.map((c) => succeedWithEvent(c)))
            })
            assert.strictEqual(outcomes.applied.length, claimed.items.length)
          }
          assert.strictEqual((yield* assertCountersAgree(record.id)).counts.succeeded, total)
          // other backends of the pool flush their statistics when idle (within about 10 s)
          let after = yield* flushed
          for (let i = 0; i < 150 && after.upd - before.upd < 3 * total; i++) {
            yield* Effect.sleep("100 millis")
            after = yield* flushed
          }
          const upd = after.upd - before.upd
          const hot = after.hot - before.hot
          const ratio = hot / upd
          yield* Effect.logInfo(`HOT updates of ${t.items}: ${hot} of ${upd} (${(100 * ratio).toFixed(1)}%)`)
          assert.isAtLeast(upd, 3 * total)
          assert.isAtLeast(ratio, 0.5, `only ${hot} of ${upd} updates were HOT`)
        }).pipe(withPrefix("hot_test_")))
    }
  )
})

describe("encodeDraftFast", () => {
  it.effect("encodes ItemStarted and ItemSucceeded drafts like the schema encoder", () =>
    Effect.sync(() => {
      const drafts: ReadonlyArray<BatchEvent.Draft> = [
        { _tag: "ItemStarted", itemKey: itemKey("item-000001"), attempt: 1, round: 1 },
        { _tag: "ItemStarted", itemKey: itemKey("ünï©ødé 🚀 it's \"x\""), attempt: 17, round: 3 },
        { _tag: "ItemSucceeded", itemKey: itemKey("item-000001"), attempt: 1, durationMs: 12.345 },
        { _tag: "ItemSucceeded", itemKey: itemKey("k"), attempt: 2, durationMs: 0 },
        { _tag: "ItemSucceeded", itemKey: itemKey("k"), attempt: 3, durationMs: 0.000123 },
        { _tag: "ItemSucceeded", itemKey: itemKey("k"), attempt: 4, durationMs: 98_765.4321 },
        { _tag: "ItemSkipped", itemKey: itemKey("k"), reason: "cancelled" }
      ]
      for (const draft of drafts) {
        const fast = encodeDraftFast(draft)
        const slow = encodeDraftSync(draft)
        assert.deepStrictEqual(fast, slow)
        assert.strictEqual(JSON.stringify(fast.payload), JSON.stringify(slow.payload))
      }
    }))
})
