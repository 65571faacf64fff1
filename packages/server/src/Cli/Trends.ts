/**
 * `effect-batch trends ID`: a batch's slowdown status and its latest sampled windows, as text.
 *
 * @since 0.5.0
 */
import { Duration, type Views } from "@effect-batch/domain"
import * as DateTime from "effect/DateTime"

const fixed = (n: number) => n.toFixed(n >= 100 ? 0 : 2)
const ms = (n: number | undefined) => (n === undefined ? "-" : `${Math.round(n)} ms`)

/**
 * The status line, then one line per window (oldest first, at most `limit`).
 *
 * @since 0.5.0
 */
export const render = (trends: Views.Trends, limit = 20): string => {
  const window = trends.window === undefined ? "" : ` window ${Duration.format(trends.window)}`
  const baseline = trends.baseline === undefined
    ? ""
    : ` | baseline ${fixed(trends.baseline.throughput)}/s p95 ${ms(trends.baseline.p95Ms ?? undefined)}` +
      ` (${trends.baseline.windows} windows, ${trends.baseline.items} items)`
  const lines = [`${trends.batchId} ${trends.status}${window}${baseline}`]
  for (const w of trends.windows.slice(-limit)) {
    lines.push(
      `${DateTime.formatIso(w.at)} completed ${w.completed} ${fixed(w.throughput)}/s p95 ${ms(w.p95Ms)}` +
        ` waiting ${w.backlog}`
    )
  }
  return lines.join("\n")
}
