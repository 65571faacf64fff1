/**
 * Claim + complete of N items at a concurrency, with group commit: through `ItemRepo` and, for the
 * database's own limit, the same statement (`<prefix>cycle`) driven directly with no runtime.
 *
 * Work is instant, so each round records the previous round's outcomes and claims up to the free
 * capacity: `cycle` does both in one statement; `claim-complete` sends `complete` then `claim`.
 */
import { BatchConfig, BatchState } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import { BatchRepo, ItemRepo, PgliteClient } from "@effect-batch/tables"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { performance } from "node:perf_hooks"
import type pg from "pg"
import {
  type DbKind,
  freshPostgres,
  itemKey,
  migratedEmbedded,
  migratedPostgres,
  newBatchId,
  noopName,
  pidCpuMs,
  processCpuMs,
  report,
  serverCpuMs,
  since,
  tenant,
  withPg
} from "./Harness.js"

export type ClaimVariant = "repo-cycle" | "repo-claim-complete" | "direct-cycle"

const owner = "bench-worker"
const leaseMs = 60_000
const decodeKey = Schema.decodeSync(ItemKey)

/** Stores a batch of `items` queued items at `concurrency` (not measured). */
export const seedBatch = (items: number, concurrency: number) =>
  Effect.gen(function*() {
    const repo = yield* BatchRepo.BatchRepo
    const now = Date.now()
    const { record } = yield* repo.create({
      id: newBatchId(),
      tenant,
      workflow: noopName,
      idempotencyKey: Option.none(),
      config: BatchConfig.BatchConfig.make({ concurrency }),
      state: new BatchState.Running({ since: DateTime.unsafeMake(now), round: 1 }),
      items: Stream.range(0, items - 1).pipe(Stream.map((i) => ({ key: itemKey(i), input: { n: i } }))),
      events: () => [{ _tag: "BatchStarted", round: 1 }],
      now
    })
    return record.id
  })

/** The outcome the runner records for a no-op success. */
const success = (claimed: ItemRepo.ClaimedItem): ItemRepo.Outcome => ({
  key: claimed.key,
  attempt: claimed.attempt,
  state: "succeeded",
  output: null,
  consumed: claimed.consumed + 1,
  throttles: 0,
  roundsFailed: claimed.rounds_failed,
  durationMs: 0,
  countsAsFailure: false,
  events: [{ _tag: "ItemSucceeded", itemKey: decodeKey(claimed.key), attempt: claimed.attempt, durationMs: 0 }]
})

/** Drives `ItemRepo`: rounds of (record the finished, claim the free capacity). Returns the rounds. */
const viaRepo = (batchId: ReturnType<typeof newBatchId>, concurrency: number, combined: boolean) =>
  Effect.gen(function*() {
    const items = yield* ItemRepo.ItemRepo
    let finished: ReadonlyArray<ItemRepo.ClaimedItem> = []
    let statements = 0
    while (true) {
      const now = Date.now()
      let claimed: ReadonlyArray<ItemRepo.ClaimedItem>
      if (combined) {
        const result = yield* items.cycle({
          batchId,
          owner,
          now,
          leaseMs,
          max: concurrency,
          outcomes: finished.map(success)
        })
        statements++
        claimed = Option.match(result, { onNone: () => [], onSome: (r) => r.claimed })
      } else {
        if (finished.length > 0) {
          yield* items.complete({ batchId, owner, now, outcomes: finished.map(success) })
          statements++
        }
        claimed = yield* items.claim({ batchId, owner, max: concurrency, now, leaseMs })
        statements++
      }
      if (claimed.length === 0 && finished.length === 0) return statements
      finished = claimed
    }
  })

/** The same rounds as `cycle`, with the statement's text and parameters built by hand. */
export const driveCycleDirect = async (
  query: (text: string, params: Array<unknown>) => Promise<{ rows: Array<Record<string, unknown>> }>,
  batchId: string,
  concurrency: number
) => {
  const text = `SELECT effect_batch_cycle($1::uuid, $2::text, $3::bigint, $4::bigint, $5::int, $6::int,
    $7::text::jsonb, $8::text::jsonb) AS r`
  let finished: Array<{ key: string; attempt: number; consumed: number; rounds_failed: number }> = []
  let statements = 0
  while (true) {
    const outcomes = finished.map((c, idx) => ({
      idx,
      key: c.key,
      attempt: c.attempt,
      state: "succeeded",
      output: null,
      error: null,
      due_at_ms: null,
      consumed: c.consumed + 1,
      throttles: 0,
      rounds_failed: c.rounds_failed,
      duration_ms: 0,
      reason: null,
      fail: false
    }))
    const events = finished.map((c, idx) => ({
      idx,
      ord: idx,
      tag: "ItemSucceeded",
      payload: { itemKey: c.key, attempt: c.attempt, durationMs: 0 }
    }))
    const now = Date.now()
    const result = await query(text, [
      batchId,
      owner,
      now,
      now + leaseMs,
      concurrency,
      0,
      JSON.stringify(outcomes),
      JSON.stringify(events)
    ])
    statements++
    const row = result.rows[0]?.["r"]
    const claimed = typeof row === "object" && row !== null && "claimed" in row && Array.isArray(row.claimed)
      ? row.claimed
      : []
    if (claimed.length === 0 && finished.length === 0) return statements
    finished = claimed
  }
}

/** Runs one claim + complete benchmark on a fresh database. */
export const claimComplete = (options: {
  readonly db: DbKind
  readonly variant: ClaimVariant
  readonly items: number
  readonly concurrency: number
  readonly bench?: string | undefined
}) =>
  Effect.gen(function*() {
    const layer = options.db === "postgres"
      ? Layer.unwrapScoped(
        Effect.map(freshPostgres, ({ url }) => Layer.merge(migratedPostgres(url), Layer.succeed(Url, url)))
      )
      : Layer.merge(migratedEmbedded, Layer.succeed(Url, ""))
    const context = yield* Layer.build(
      Layer.mergeAll(BatchRepo.BatchRepo.Default, ItemRepo.ItemRepo.Default).pipe(Layer.provideMerge(layer))
    )
    const batchId = yield* Effect.provide(seedBatch(options.items, options.concurrency), context)
    let run: Effect.Effect<number, unknown>
    let directServerMs: number | undefined
    if (options.variant !== "direct-cycle") {
      run = Effect.provide(viaRepo(batchId, options.concurrency, options.variant === "repo-cycle"), context)
    } else if (options.db === "postgres") {
      run = withPg(Context.get(context, Url), async (client: pg.Client) => {
        const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")
        const pid = rows[0]?.pid ?? 0
        const before = pidCpuMs(pid)
        const statements = await driveCycleDirect(
          (text, params) => client.query(text, params),
          batchId,
          options.concurrency
        )
        directServerMs = pidCpuMs(pid) - before
        return statements
      })
    } else {
      run = Context.get(context, PgliteClient.PgliteClient).withSession((db) =>
        driveCycleDirect((text, params) => db.query(text, params), batchId, options.concurrency)
      )
    }
    const url = Context.get(context, Url)
    const serverCpu = url === "" ? Effect.succeed(0) : serverCpuMs(url)
    const server0 = yield* serverCpu
    const cpu0 = processCpuMs()
    const elu0 = performance.eventLoopUtilization()
    const start = performance.now()
    const statements = yield* run
    const ms = since(start)
    const busy = performance.eventLoopUtilization(elu0).utilization
    const nodeUs = (processCpuMs() - cpu0) * 1000 / options.items
    const serverUs = (directServerMs ?? (yield* serverCpu) - server0) * 1000 / options.items
    yield* report({
      bench: options.bench ?? "claim",
      db: options.db,
      variant: options.variant,
      items: options.items,
      ms,
      extra: {
        itemsPerSecond: Math.round(options.items / ms * 1000),
        statements,
        nodeCpuUsPerItem: Math.round(nodeUs),
        mainThreadUsPerItem: Math.round(busy * ms * 1000 / options.items),
        ...(url === "" ? {} : { serverCpuUsPerItem: Math.round(serverUs) })
      }
    })
  }).pipe(Effect.scoped)

class Url extends Context.Tag("bench/Url")<Url, string>() {}
