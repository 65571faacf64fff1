/**
 * A batch's slowdown trends as clients see them.
 */
import { BatchConfig, Views } from "@effect-batch/domain"
import { Slowdown } from "@effect-batch/domain"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import type { StoredTrends } from "@effect-batch/tables/TrendRepo"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/** How many of the latest windows `GetTrends` returns. */
export const windowsShown = 500

/** The view of a batch's stored trends under its current config. */
export const toTrends = (record: BatchRecord, stored: StoredTrends): Views.Trends => {
  const config = BatchConfig.slowdownOf(record.config)
  const status = config === undefined
    ? "off"
    : stored.slow
    ? "slow"
    : Option.isSome(stored.baseline)
    ? "normal"
    : "learning"
  return Views.Trends.make({
    batchId: record.id,
    status,
    ...(config === undefined ? {} : { window: Duration.decode(config.window) }),
    ...(Option.isSome(stored.baseline) ? { baseline: stored.baseline.value } : {}),
    windows: stored.windows.map((w) =>
      Views.TrendWindow.make({
        at: DateTime.unsafeMake(w.atMs),
        spanMs: w.spanMs,
        completed: w.completed,
        throughput: Slowdown.throughputOf(w),
        ...(w.p95Ms === null ? {} : { p95Ms: w.p95Ms }),
        backlog: w.backlog
      })
    )
  })
}
