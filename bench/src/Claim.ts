/**
 * Claim + commit of N no-op items, leased 500 at a time and recorded in one group commit per
 * chunk (start marks, outcomes and their events): through `ItemRepo`, and, for the database's own
 * limit, the same statements (`<prefix>claim`, `<prefix>commit`) driven directly with no runtime.
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

export type ClaimVariant = "repo" | "direct"

const owner = "bench-worker"
const leaseMs = 60_000
const decodeKey = Schema.decodeSync(ItemKey)

/** How many items one claim leases (the runner's lease-ahead for no-op items). */
const claimSize = 500

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

/**
 * Drives `ItemRepo` the way the runner's claimer and committer do, in series: lease a chunk, then
 * record each item's start mark and outcome in one group commit. Returns the statements sent.
 */
const viaRepo = (batchId: ReturnType<typeof newBatchId>, concurrency: number) =>
  Effect.gen(function*() {
    const items = yield* ItemRepo.ItemRepo
    let statements = 0
    while (true) {
      const now = Date.now()
      const share = { batchId, owner, now, leaseMs, executing: 0, wanted: concurrency }
      const claimed = yield* items.claim({ ...share, max: claimSize })
      statements++
      const leased = Option.match(claimed, { onNone: () => [], onSome: (r) => r.items })
      if (leased.length === 0) return statements
      const entries: Array<ItemRepo.Entry> = []
      for (const item of leased) {
        entries.push({ _tag: "Started", item, atMs: now }, { _tag: "Finished", outcome: success(item) })
      }
      yield* items.commit({ ...share, entries })
      statements++
    }
  })

/** The same statements as `viaRepo`, with their text and parameters built by hand. */
export const driveDirect = async (
  query: (text: string, params: Array<unknown>) => Promise<{ rows: Array<Record<string, unknown>> }>,
  batchId: string,
  concurrency: number
) => {
  const claimText = `SELECT effect_batch_claim($1::uuid, $2::text, $3::bigint, $4::bigint, $5::int, $6::int,
    $7::int) AS r`
  const commitText = `SELECT effect_batch_commit($1::uuid, $2::text, $3::bigint, $4::bigint, $5::int, $6::int,
    $7::text::jsonb, $8::text::jsonb, $9::text::jsonb) AS r`
  let statements = 0
  while (true) {
    const now = Date.now()
    const result = await query(claimText, [batchId, owner, now, now + leaseMs, claimSize, 0, concurrency])
    statements++
    const row = result.rows[0]?.["r"]
    const leased: Array<Array<unknown>> = typeof row === "object" && row !== null && "items" in row &&
        Array.isArray(row.items)
      ? row.items
      : []
    if (leased.length === 0) return statements
    const started: Array<unknown> = []
    const outcomes: Array<unknown> = []
    const events: Array<unknown> = []
    leased.forEach((item, idx) => {
      const [key, , , attempt, consumed, , round, roundsFailed] = item
      started.push({ idx, key, attempt, at_ms: now })
      outcomes.push({
        idx,
        key,
        attempt,
        state: "succeeded",
        output: null,
        error: null,
        due_at_ms: null,
        consumed: Number(consumed) + 1,
        throttles: 0,
        rounds_failed: roundsFailed,
        duration_ms: 0,
        reason: null,
        fail: false,
        sidx: idx,
        at_ms: now
      })
      events.push(
        { kind: "s", idx, ord: events.length, tag: "ItemStarted", payload: { itemKey: key, attempt, round } },
        {
          kind: "o",
          idx,
          ord: events.length + 1,
          tag: "ItemSucceeded",
          payload: { itemKey: key, attempt, durationMs: 0 }
        }
      )
    })
    await query(commitText, [
      batchId,
      owner,
      now,
      now + leaseMs,
      0,
      concurrency,
      JSON.stringify(started),
      JSON.stringify(outcomes),
      JSON.stringify(events)
    ])
    statements++
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
    if (options.variant === "repo") {
      run = Effect.provide(viaRepo(batchId, options.concurrency), context)
    } else if (options.db === "postgres") {
      run = withPg(Context.get(context, Url), async (client: pg.Client) => {
        const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")
        const pid = rows[0]?.pid ?? 0
        const before = pidCpuMs(pid)
        const statements = await driveDirect(
          (text, params) => client.query(text, params),
          batchId,
          options.concurrency
        )
        directServerMs = pidCpuMs(pid) - before
        return statements
      })
    } else {
      run = Context.get(context, PgliteClient.PgliteClient).withSession((db) =>
        driveDirect((text, params) => db.query(text, params), batchId, options.concurrency)
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
