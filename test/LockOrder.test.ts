import { BatchConfig, BatchState, Ids } from "@effect-batch/domain"
import { BatchRepo, EventLog, ItemRepo, Migrations, Tables, TestDatabase } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { tenant } from "./support/Harness.js"

/**
 * Every writer of a batch's items locks the batch row before any item row, so the group commits of
 * live owners and the reclaim of expired owners' leases queue behind each other instead of
 * deadlocking. Here owners on their own connections claim with leases far shorter than their work
 * often takes, while reclaimers take back what they held as soon as it expires; in the end every item
 * succeeded once and Postgres counted no deadlock.
 */

const workflow = Schema.decodeSync(Ids.WorkflowName)("lock-order")
const itemKey = Schema.decodeSync(Ids.ItemKey)
const batchCount = 2
const itemsPerBatch = 1_500
const owners = 6
const reclaimers = 2
const leaseMs = 40

const Repos = Layer.mergeAll(BatchRepo.BatchRepo.Default, ItemRepo.ItemRepo.Default, EventLog.EventLog.Default).pipe(
  Layer.provideMerge(Migrations.layer)
)

const sleep = (millis: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

const makeBatch = Effect.gen(function*() {
  const repo = yield* BatchRepo.BatchRepo
  const now = Date.now()
  const { record } = yield* repo.create({
    id: Schema.decodeSync(Ids.BatchId)(crypto.randomUUID()),
    tenant,
    workflow,
    idempotencyKey: Option.none(),
    config: BatchConfig.BatchConfig.make({ concurrency: 64 }),
    state: new BatchState.Running({ since: DateTime.unsafeMake(now), round: 1 }),
    items: Stream.fromIterable(
      Array.from({ length: itemsPerBatch }, (_, n) => ({ key: `item-${String(n).padStart(5, "0")}`, input: { n } }))
    ),
    events: () => [{ _tag: "BatchStarted", round: 1 }],
    now
  })
  return record.id
})

const succeeded = (item: ItemRepo.ClaimedItem): ItemRepo.Outcome => ({
  key: item.key,
  attempt: item.attempt,
  state: "succeeded",
  output: { n: item.ordinal },
  consumed: item.consumed + 1,
  throttles: 0,
  roundsFailed: 0,
  durationMs: 1,
  countsAsFailure: false,
  events: [{ _tag: "ItemSucceeded", itemKey: itemKey(item.key), attempt: item.attempt, durationMs: 1 }]
})

/**
 * An owner that claims a slice, works for up to 2.5 leases (often past its lease, so that a reclaimer
 * takes the slice back while it works) and commits start marks and outcomes in one group, until
 * `done`; it counts in `stats.fenced` the outcomes refused because its lease had been taken back.
 */
const owner = (
  name: string,
  batches: ReadonlyArray<Ids.BatchId>,
  done: () => boolean,
  stats: { fenced: number }
) =>
  Effect.gen(function*() {
    const items = yield* ItemRepo.ItemRepo
    let turn = 0
    while (!done()) {
      const batchId = batches[turn++ % batches.length]!
      const request = { batchId, owner: name, leaseMs, executing: 0, wanted: 16 }
      const claimed = yield* Effect.flatten(items.claim({ ...request, now: Date.now(), max: 25 }))
      if (claimed.items.length === 0) {
        yield* sleep(5)
        continue
      }
      const startedAt = Date.now()
      yield* sleep(Math.floor(Math.random() * leaseMs * 2.5))
      const committed = yield* items.commit({
        ...request,
        now: Date.now(),
        executing: claimed.items.length,
        entries: [
          ...claimed.items.map((item) => ({ _tag: "Started" as const, item, atMs: startedAt })),
          ...claimed.items.map((item) => ({ _tag: "Finished" as const, outcome: succeeded(item) }))
        ]
      })
      if (Option.isSome(committed)) stats.fenced += claimed.items.length - committed.value.applied.length
    }
  })

/** Takes back what expired owners held, lost attempts included (they go back to the queue). */
const reclaimer = (done: () => boolean) =>
  Effect.gen(function*() {
    const items = yield* ItemRepo.ItemRepo
    let reclaimed = 0
    while (!done()) {
      const taken = yield* items.reclaimExpired({ now: Date.now(), limit: 100, decide: () => Effect.succeed([]) })
      reclaimed += taken.reduce((n, r) => n + r.requeued, 0)
      yield* sleep(2)
    }
    return reclaimed
  })

const deadlocks = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`SELECT pg_stat_clear_snapshot()`
  const rows = yield* sql<{ n: number }>`SELECT deadlocks::int AS n FROM pg_stat_database
    WHERE datname = current_database()`
  return rows[0]?.n ?? -1
})

const outcomes = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    const rows = yield* sql<{ succeeded: number; events: number; keys: number; max_per_key: number }>`
      WITH ev AS (
        SELECT payload->>'itemKey' AS key, count(*)::int AS n FROM ${sql(t.events)}
        WHERE batch_id = ${batchId}::uuid AND tag = 'ItemSucceeded' GROUP BY 1
      )
      SELECT
        (SELECT count(*)::int FROM ${sql(t.items)} WHERE batch_id = ${batchId}::uuid AND state = 'succeeded')
          AS succeeded,
        (SELECT COALESCE(sum(n), 0)::int FROM ev) AS events,
        (SELECT count(*)::int FROM ev) AS keys,
        (SELECT COALESCE(max(n), 0)::int FROM ev) AS max_per_key`
    return rows[0]!
  })

describe("Lock order (Postgres only: the embedded database is a single session, so nothing there waits on a lock)", () => {
  layer(Repos.pipe(Layer.provideMerge(TestDatabase.layerPostgres)), { timeout: 60_000, excludeTestServices: true })(
    (it) => {
      it.effect(
        "group commits and reclaims of expired leases under load: no deadlock, every item one outcome",
        () =>
          Effect.gen(function*() {
            const batches = yield* Effect.all(Array.from({ length: batchCount }, () => makeBatch))
            const before = yield* deadlocks
            assert.isAtLeast(before, 0, "the test database is in pg_stat_database")
            const repo = yield* BatchRepo.BatchRepo
            let finished = false
            const done = () => finished
            const stats = { fenced: 0 }
            const reclaiming = yield* Effect.all(Array.from({ length: reclaimers }, () => reclaimer(done)), {
              concurrency: "unbounded"
            }).pipe(Effect.fork)
            yield* Effect.all(
              Array.from({ length: owners }, (_, n) =>
                owner(`owner-${n}`, n % 2 === 0 ? batches : [...batches].reverse(), done, stats)),
              { concurrency: "unbounded" }
            ).pipe(
              Effect.raceFirst(
                Effect.gen(function*() {
                  for (;;) {
                    yield* sleep(50)
                    const records = yield* Effect.all(batches.map((id) =>
                      Effect.flatten(repo.getAnyTenant(id))
                    ))
                    if (records.every((r) => r.counts.succeeded === itemsPerBatch)) return
                  }
                })
              ),
              Effect.ensuring(Effect.sync(() => {
                finished = true
              }))
            )
            const reclaimed = (yield* Fiber.join(reclaiming)).reduce((a, b) => a + b, 0)
            assert.isAbove(reclaimed, 0, "reclaims took back leased and running items while their owners worked")
            assert.isAbove(stats.fenced, 0, "late outcomes of owners whose leases were taken back were refused")

            for (const batchId of batches) {
              const o = yield* outcomes(batchId)
              assert.deepStrictEqual(o, {
                succeeded: itemsPerBatch,
                events: itemsPerBatch,
                keys: itemsPerBatch,
                max_per_key: 1
              }, "every item succeeded once, with one ItemSucceeded event")
            }
            // a backend reports its counters within a second of going idle
            yield* sleep(1_500)
            assert.strictEqual(yield* deadlocks, before, "no deadlock was detected in the test database")
          }),
        60_000
      )
    }
  )
})
