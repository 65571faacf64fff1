import { ItemCounts, Views } from "@effect-batch/domain"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import * as Option from "effect/Option"

/** The window over which throughput is measured. */
export const windowMs = 60_000

/** Builds a progress snapshot from a batch and its item statistics. */
export const progressOf = (record: BatchRecord, stats: {
  readonly recentlyFinished: number
  readonly p50Ms: Option.Option<number>
  readonly p95Ms: Option.Option<number>
  readonly latestErrors: ReadonlyArray<Views.RecentError>
  readonly steps?: Views.Progress["steps"] | undefined
}, now: number): Views.Progress => {
  const elapsed = Math.max(1, Math.min(windowMs, now - record.createdAtMs))
  const itemsPerSecond = stats.recentlyFinished / (elapsed / 1000)
  const left = ItemCounts.pending(record.counts)
  return Views.Progress.make({
    batchId: record.id,
    state: record.state,
    counts: record.counts,
    itemsPerSecond,
    ...(left === 0 ? { etaSeconds: 0 } : itemsPerSecond > 0 ? { etaSeconds: left / itemsPerSecond } : {}),
    ...Option.match(stats.p50Ms, { onNone: () => ({}), onSome: (p50Ms) => ({ p50Ms }) }),
    ...Option.match(stats.p95Ms, { onNone: () => ({}), onSome: (p95Ms) => ({ p95Ms }) }),
    latestErrors: stats.latestErrors,
    ...(stats.steps === undefined ? {} : { steps: stats.steps })
  })
}
