/**
 * Slowdown trends of a batch: sampled windows, the batch's own baseline, and the pure judgement of
 * whether the latest windows make the batch slow (or bring it back within bounds).
 *
 * @since 0.5.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { SlowdownConfig } from "./BatchConfig.js"
import type { Tag } from "./BatchEvent.js"
import { DurationString } from "./Duration.js"

// a JSON number: JSON cannot carry Infinity or NaN (`JSON.stringify` writes them as null)
const Measure = Schema.JsonNumber.pipe(Schema.nonNegative())

/**
 * The figures of a slowdown or a recovery: the latest window against the baseline.
 *
 * @since 0.5.0
 */
export const figureFields = {
  /** the configured window length */
  window: DurationString,
  /** outcomes per second in the latest window */
  throughput: Measure,
  baselineThroughput: Measure,
  /** the p95 of successful item durations in the latest window, when any succeeded */
  p95Ms: Schema.optionalWith(Measure, { exact: true }),
  baselineP95Ms: Schema.optionalWith(Measure, { exact: true }),
  /** how many windows in a row breached (or were within bounds) */
  windows: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
}

/**
 * The figures as a value.
 *
 * @since 0.5.0
 */
export const Figures = Schema.Struct(figureFields)
/** @since 0.5.0 */
export type Figures = typeof Figures.Type

/**
 * The events whose item finished an attempt: one each per outcome counted in a window.
 *
 * @since 0.5.0
 */
export const outcomeTags: ReadonlyArray<Tag> = ["ItemSucceeded", "ItemFailed", "ItemRetryScheduled", "ItemQuarantined"]

/**
 * One sampled window: the outcomes recorded between the previous sample and `atMs`.
 *
 * @since 0.5.0
 */
export interface Window {
  /** when the window ended */
  readonly atMs: number
  readonly spanMs: number
  /** outcomes recorded in the window */
  readonly completed: number
  /** the p95 of the durations of the items that succeeded in the window; null when none did */
  readonly p95Ms: number | null
  /** items waiting to be claimed when the window ended */
  readonly backlog: number
}

/**
 * The batch's own baseline, from its first windows.
 *
 * @since 0.5.0
 */
export const Baseline = Schema.Struct({
  throughput: Measure,
  p95Ms: Schema.NullOr(Measure),
  windows: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  items: Schema.NonNegativeInt,
  /** the end of its last window: later windows are judged against it */
  untilMs: Schema.NonNegativeInt
})
/** @since 0.5.0 */
export type Baseline = typeof Baseline.Type

/**
 * Outcomes per second of a window.
 *
 * @since 0.5.0
 */
export const throughputOf = (window: Window): number =>
  window.spanMs > 0 ? (window.completed * 1000) / window.spanMs : 0

const median = (values: ReadonlyArray<number>): number | null => {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * The baseline from the batch's first windows, in order: the shortest prefix with at least
 * `baselineWindows` windows and `minItems` outcomes (its throughput over the prefix's span, the
 * median of its windows' p95), or none while the first windows are too few.
 *
 * @since 0.5.0
 */
export const baselineOf = (config: SlowdownConfig, windows: ReadonlyArray<Window>): Option.Option<Baseline> => {
  let items = 0
  let spanMs = 0
  for (let i = 0; i < windows.length; i++) {
    const window = windows[i]!
    items += window.completed
    spanMs += window.spanMs
    if (i + 1 >= config.baselineWindows && items >= config.minItems && spanMs > 0) {
      const prefix = windows.slice(0, i + 1)
      return Option.some({
        throughput: (items * 1000) / spanMs,
        p95Ms: median(prefix.flatMap((w) => (w.p95Ms === null ? [] : [w.p95Ms]))),
        windows: i + 1,
        items,
        untilMs: window.atMs
      })
    }
  }
  return Option.none()
}

/**
 * Whether a window is out of bounds: its throughput below the fraction of the baseline's while items
 * wait to be claimed, or its p95 above the multiple of the baseline's.
 *
 * @since 0.5.0
 */
export const breaches = (config: SlowdownConfig, baseline: Baseline, window: Window): boolean =>
  (window.backlog > 0 && throughputOf(window) < config.throughputBelow * baseline.throughput) ||
  (window.p95Ms !== null && baseline.p95Ms !== null && window.p95Ms > config.p95Above * baseline.p95Ms)

/**
 * A change of the batch's slowdown status.
 *
 * @since 0.5.0
 */
export type Change =
  | { readonly _tag: "SlowdownDetected"; readonly figures: Figures }
  | { readonly _tag: "SlowdownRecovered"; readonly figures: Figures }

const figuresOf = (config: SlowdownConfig, baseline: Baseline, latest: Window): Figures => ({
  window: Duration.decode(config.window),
  throughput: throughputOf(latest),
  baselineThroughput: baseline.throughput,
  ...(latest.p95Ms === null ? {} : { p95Ms: latest.p95Ms }),
  ...(baseline.p95Ms === null ? {} : { baselineP95Ms: baseline.p95Ms }),
  windows: config.consecutive
})

/**
 * Judges the windows sampled after the baseline (oldest first): a batch that is not slow becomes
 * slow when its last `consecutive` windows all breach; a slow one recovers when they are all within
 * bounds.
 *
 * @since 0.5.0
 */
export const judge = (
  config: SlowdownConfig,
  baseline: Baseline,
  windows: ReadonlyArray<Window>,
  slow: boolean
): Option.Option<Change> => {
  if (windows.length < config.consecutive) return Option.none()
  const recent = windows.slice(windows.length - config.consecutive)
  const latest = recent[recent.length - 1]!
  if (!slow && recent.every((w) => breaches(config, baseline, w))) {
    return Option.some({ _tag: "SlowdownDetected", figures: figuresOf(config, baseline, latest) })
  }
  if (slow && recent.every((w) => !breaches(config, baseline, w))) {
    return Option.some({ _tag: "SlowdownRecovered", figures: figuresOf(config, baseline, latest) })
  }
  return Option.none()
}
