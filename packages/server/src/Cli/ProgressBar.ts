/**
 * A terminal progress bar: counts, rate and ETA, redrawn in place on a terminal, plain lines otherwise.
 *
 * @since 0.1.0
 */
import { ItemCounts } from "@effect-batch/domain"
import type { Views } from "@effect-batch/domain"

/**
 * Formats seconds as `1h02m`, `3m05s` or `42s`.
 *
 * @since 0.1.0
 */
export const formatSeconds = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds))
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${s}s`
}

/**
 * One line describing a batch's progress, e.g.
 * `[#########...........]  45% 135/300 ok 130 failed 2 quarantined 1 retrying 2 running 16 | 23.4/s ETA 7s | Running`.
 *
 * @since 0.1.0
 */
export const render = (progress: Views.Progress, width = 30): string => {
  const counts = progress.counts
  const total = ItemCounts.total(counts)
  const done = ItemCounts.settled(counts)
  const ratio = total === 0 ? 1 : done / total
  const filled = Math.round(ratio * width)
  const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`
  const percent = `${String(Math.floor(ratio * 100)).padStart(3)}%`
  const parts = [
    `ok ${counts.succeeded}`,
    `failed ${counts.failed}`,
    ...(counts.quarantined > 0 ? [`quarantined ${counts.quarantined}`] : []),
    ...(counts.skipped > 0 ? [`skipped ${counts.skipped}`] : []),
    ...(counts.retryScheduled > 0 ? [`retrying ${counts.retryScheduled}`] : []),
    `running ${counts.running}`
  ]
  const steps = progress.steps === undefined
    ? ""
    : ` | steps ${progress.steps.completed}${
      progress.steps.declared === undefined ? "" : `/${progress.steps.declared}`
    }`
  const eta = progress.etaSeconds === undefined ? "ETA --" : `ETA ${formatSeconds(progress.etaSeconds)}`
  return `${bar} ${percent} ${done}/${total} ${parts.join(" ")} | ${
    progress.itemsPerSecond.toFixed(1)
  }/s ${eta}${steps} | ${progress.state._tag}`
}

/**
 * Draws lines on a terminal (in place) or as plain lines (when output is not a terminal), at most
 * every `intervalMs` unless forced.
 *
 * @since 0.1.0
 */
export const makeDrawer = (
  output: { readonly isTTY?: boolean | undefined; write(s: string): unknown },
  intervalMs = 250
) => {
  let last = 0
  let lastLine = ""
  return {
    draw: (line: string, now: number, force = false) => {
      if (!force && (now - last < intervalMs || line === lastLine)) return
      last = now
      lastLine = line
      if (output.isTTY === true) output.write(`\r\x1b[2K${line}`)
      else output.write(`${line}\n`)
    },
    done: () => {
      if (output.isTTY === true) output.write("\n")
    }
  }
}
