/**
 * Campaign overhead: the same no-op items as one batch, or as a campaign of smaller batches run a few
 * at a time (each batch with the same config), submit → settled with every outcome committed; checks
 * that every item ran and was recorded exactly once, and where a campaign's time goes between batches.
 */
import type { Ids } from "@effect-batch/domain"
import { BatchOrchestrator, CampaignOrchestrator } from "@effect-batch/server"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { performance } from "node:perf_hooks"
import { freshDatabase, median, processCpuMs, report, type Sizing, tenant } from "./Harness.js"
import { items, noop, orchestrator } from "./Workloads.js"

/** When each child batch started and settled, and when its first item started and its last finished. */
interface Timeline {
  readonly index: number
  readonly started: number
  readonly firstItem: number
  readonly lastItem: number
  readonly settled: number
}

const round1 = (n: number) => Math.round(n * 10) / 10

/** The batches' timelines and the exactly-once check, read from the database after the run. */
const inspect = (batchIds: ReadonlyArray<Ids.BatchId>, count: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const ids = [...batchIds]
    const timelines = yield* sql<Timeline>`
      SELECT coalesce(b.campaign_index, 0)::int AS "index",
        (SELECT min(at_ms) FROM effect_batch_events e WHERE e.batch_id = b.id AND e.tag = 'BatchStarted')::float8
          AS "started",
        (SELECT min(at_ms) FROM effect_batch_events e WHERE e.batch_id = b.id AND e.tag = 'BatchCompleted')::float8
          AS "settled",
        (SELECT min(started_at_ms) FROM effect_batch_items i WHERE i.batch_id = b.id)::float8 AS "firstItem",
        (SELECT max(finished_at_ms) FROM effect_batch_items i WHERE i.batch_id = b.id)::float8 AS "lastItem"
      FROM effect_batch_batches b WHERE b.id = ANY(${ids}::uuid[]) ORDER BY 1`
    const [check] = yield* sql<{ total: number; succeeded: number; rerun: number }>`
      SELECT count(*)::int AS total, (count(*) FILTER (WHERE state = 'succeeded'))::int AS succeeded,
        (count(*) FILTER (WHERE attempt <> 1))::int AS rerun
      FROM effect_batch_items WHERE batch_id = ANY(${ids}::uuid[])`
    const [events] = yield* sql<{ n: number; keys: number }>`
      SELECT count(*)::int AS n, count(DISTINCT batch_id::text || ':' || (payload->>'itemKey'))::int AS keys
      FROM effect_batch_events WHERE batch_id = ANY(${ids}::uuid[]) AND tag = 'ItemSucceeded'`
    const exactlyOnce = check !== undefined && events !== undefined && check.total === count &&
      check.succeeded === count && check.rerun === 0 && events.n === count && events.keys === count
    return { timelines, exactlyOnce }
  })

/**
 * Where the time between the first start and the last settlement goes: a batch's start until its
 * first item runs, its last outcome until it settles, and (for a campaign) a settlement until the
 * start it makes room for.
 */
const breakdown = (timelines: ReadonlyArray<Timeline>, concurrency: number) => {
  const starts = [...timelines].sort((a, b) => a.started - b.started)
  const settles = timelines.map((t) => t.settled).sort((a, b) => a - b)
  // the k-th start after the first wave takes the slot freed by the k-th settlement
  const handoffs = starts.slice(concurrency).map((t, k) => t.started - (settles[k] ?? t.started))
  const first = Math.min(...timelines.map((t) => t.started))
  const last = Math.max(...settles)
  const busy = timelines.reduce((sum, t) => sum + (t.settled - t.started), 0)
  return {
    batchStartToFirstItemMs: round1(median(timelines.map((t) => t.firstItem - t.started))),
    batchLastItemToSettledMs: round1(median(timelines.map((t) => t.settled - t.lastItem))),
    batchRunMs: round1(median(timelines.map((t) => t.settled - t.started))),
    settledToNextStartMs: round1(median(handoffs)),
    settledToNextStartMaxMs: round1(handoffs.length === 0 ? 0 : Math.max(...handoffs)),
    // how many of the allowed batches were running on average, from the first start to the last settlement
    occupancy: last > first ? round1(busy / (last - first) / concurrency * 100) / 100 : 1,
    firstStartMs: first,
    lastSettledMs: last
  }
}

/**
 * `items` no-op items as one batch (`batchSize` 0) or as a campaign of batches of `batchSize`,
 * `campaignConcurrency` at a time; every batch runs `concurrency` items at a time.
 */
export const campaignOverhead = (
  options: Sizing & {
    readonly batchSize: number
    readonly campaignConcurrency: number
  }
) =>
  Effect.gen(function*() {
    const { layer, serverCpu, url } = yield* freshDatabase(options.db)
    const database = yield* Layer.build(layer)
    const context = Context.merge(database, yield* Layer.build(orchestrator(Layer.succeedContext(database))))
    const asCampaign = options.batchSize > 0
    const input = items(options.items)
    const run = Effect.gen(function*() {
      const server0 = yield* serverCpu
      const cpu0 = processCpuMs()
      const wall0 = Date.now()
      const t0 = performance.now()
      if (!asCampaign) {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        const batch = yield* o.submitEncoded(noop.name, input, { concurrency: options.concurrency }, { tenant })
        const submitMs = performance.now() - t0
        const done = yield* o.await({ tenant }, batch.id)
        if (done.state._tag !== "Completed") return yield* Effect.dieMessage(`batch ended ${done.state._tag}`)
        return {
          batchIds: [batch.id],
          submitMs,
          awaitedMs: performance.now() - t0,
          settledAt: undefined,
          cpu0,
          server0,
          wall0
        }
      }
      const c = yield* CampaignOrchestrator.CampaignOrchestrator
      const campaign = yield* c.submitEncoded(noop.name, input, {
        batchSize: options.batchSize,
        concurrency: options.campaignConcurrency,
        batchConfig: { concurrency: options.concurrency }
      }, { tenant })
      const submitMs = performance.now() - t0
      const done = yield* c.await({ tenant }, campaign.id)
      const awaitedMs = performance.now() - t0
      if (done.state._tag !== "Completed") return yield* Effect.dieMessage(`campaign ended ${done.state._tag}`)
      const merge = yield* c.mergeCheck({ tenant }, campaign.id)
      if (!merge.ok) return yield* Effect.dieMessage(`merge check failed: ${JSON.stringify(merge)}`)
      const page = yield* c.batches({ tenant }, campaign.id, { after: -1, limit: 100_000 })
      const sql = yield* SqlClient.SqlClient
      const [completed] = yield* sql<{ at: number }>`
        SELECT at_ms::float8 AS "at" FROM effect_batch_campaign_events
        WHERE campaign_id = ${campaign.id} AND tag = 'CampaignCompleted'`
      return {
        batchIds: page.items.map((b) => b.batch.id),
        submitMs,
        awaitedMs,
        settledAt: completed?.at,
        cpu0,
        server0,
        wall0
      }
    })
    const result = yield* Effect.provide(run, context)
    const cpuUs = (processCpuMs() - result.cpu0) * 1000 / options.items
    const serverUs = ((yield* serverCpu) - result.server0) * 1000 / options.items
    const { exactlyOnce, timelines } = yield* Effect.provide(inspect(result.batchIds, options.items), context)
    const parts = breakdown(timelines, asCampaign ? options.campaignConcurrency : 1)
    // end to end: from the submission to the settlement as stored (the batch's, or the campaign's)
    const settledAt = result.settledAt ?? parts.lastSettledMs
    const totalMs = settledAt - result.wall0
    yield* report({
      bench: "campaign",
      db: options.db,
      variant: asCampaign
        ? `campaign: ${
          options.items / options.batchSize
        } batches of ${options.batchSize}, ${options.campaignConcurrency} at a time`
        : "one batch",
      items: options.items,
      ms: totalMs,
      extra: {
        itemsPerSecond: Math.round(options.items / totalMs * 1000),
        awaitedItemsPerSecond: Math.round(options.items / result.awaitedMs * 1000),
        submitMs: Math.round(result.submitMs),
        submitToFirstStartMs: Math.round(parts.firstStartMs - result.wall0),
        lastBatchToSettledMs: Math.round(settledAt - parts.lastSettledMs),
        batchStartToFirstItemMs: parts.batchStartToFirstItemMs,
        batchLastItemToSettledMs: parts.batchLastItemToSettledMs,
        batchRunMs: parts.batchRunMs,
        settledToNextStartMs: parts.settledToNextStartMs,
        settledToNextStartMaxMs: parts.settledToNextStartMaxMs,
        occupancy: parts.occupancy,
        nodeCpuUsPerItem: Math.round(cpuUs),
        ...(url === undefined ? {} : { serverCpuUsPerItem: Math.round(serverUs) }),
        exactlyOnce
      }
    })
  }).pipe(Effect.scoped)
