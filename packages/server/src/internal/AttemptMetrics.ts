/**
 * The attempt metrics of this process, on Effect's global metric registry: attempts started, their
 * recorded outcomes by outcome and error category, their durations, and rate-limit answers by
 * limiter. Recorded synchronously on the runner's hot path through series built once (a tagged
 * `Metric` would build its tag array and look its series up again on every update).
 */
import type { ItemError } from "@effect-batch/domain"
import type { Outcome } from "@effect-batch/tables/ItemRepo"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"

/** The prefix of every metric of effect-batch: `/metrics` exposes the registry's metrics with it. */
export const prefix = "effect_batch_"

const noTags: ReadonlyArray<MetricLabel.MetricLabel> = []

const started = Metric.counter("effect_batch_attempts_started_total", {
  description: "Attempts this process started.",
  incremental: true
}).register()

/** 1 ms to 524 s, doubling: 20 buckets and +Inf. */
const durations = Metric.histogram(
  "effect_batch_attempt_duration_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 21 }),
  "Durations of the attempts this process finished (a timed-out attempt counts up to its deadline)."
).register()

/**
 * What became of a finished attempt: the outcome recorded, or `fenced` when it was not recorded
 * because the item's lease had passed on (expired and reclaimed by another process, or the item was
 * skipped or re-queued by a command meanwhile).
 */
export type OutcomeLabel = Outcome["state"] | "fenced"

/** The error category of a failed attempt, `none` for a success. */
export type CategoryLabel = ItemError.ErrorCategory | "none"

const outcomeKey = MetricKey.counter("effect_batch_attempt_outcomes_total", {
  description: "Finished attempts of this process by recorded outcome and error category (none: succeeded).",
  incremental: true
})

const byCategory = (outcome: OutcomeLabel): Record<CategoryLabel, Metric.Metric.Counter<number>> => {
  const series = (category: CategoryLabel) => {
    const counter = Metric.fromMetricKey(
      outcomeKey.pipe(MetricKey.tagged("outcome", outcome), MetricKey.tagged("category", category))
    )
    // exposed at 0 from the start, except the combinations that cannot happen
    return outcome === "fenced" || (outcome === "succeeded") === (category === "none") ? counter.register() : counter
  }
  return {
    none: series("none"),
    retryable: series("retryable"),
    "rate-limited": series("rate-limited"),
    timeout: series("timeout"),
    fatal: series("fatal"),
    defect: series("defect"),
    "worker-lost": series("worker-lost")
  }
}

const outcomes: Record<OutcomeLabel, Record<CategoryLabel, Metric.Metric.Counter<number>>> = {
  succeeded: byCategory("succeeded"),
  retry: byCategory("retry"),
  failed: byCategory("failed"),
  quarantined: byCategory("quarantined"),
  fenced: byCategory("fenced")
}

const throttleKey = MetricKey.counter("effect_batch_throttles_total", {
  description: "Rate-limit answers to the attempts of this process, by limiter name (batch: none named).",
  incremental: true
})
/** Limiter names are the workflows' to choose: past this many, further names count as `other`. */
const maxLimiterSeries = 100
const throttleSeries = new Map<string, Metric.Metric.Counter<number>>()

const throttleCounter = (limiter: string) => {
  const known = throttleSeries.get(limiter)
  if (known !== undefined) return known
  const name = throttleSeries.size < maxLimiterSeries ? limiter : "other"
  const series = throttleSeries.get(name) ??
    Metric.fromMetricKey(throttleKey.pipe(MetricKey.tagged("limiter", name))).register()
  throttleSeries.set(name, series)
  return series
}
throttleCounter("batch")

/** An attempt started executing. */
export const attemptStarted = (): void => started.unsafeUpdate(1, noTags)

/** An attempt finished (whatever its outcome) after `durationMs`. */
export const attemptFinished = (durationMs: number): void => durations.unsafeUpdate(durationMs / 1000, noTags)

/** The outcome of an attempt was recorded (or fenced out). */
export const outcome = (label: OutcomeLabel, category: CategoryLabel): void =>
  outcomes[label][category].unsafeUpdate(1, noTags)

/** A rate-limit answer, naming its limiter or not. */
export const throttled = (limiter: Option.Option<string>): void =>
  throttleCounter(Option.isSome(limiter) ? limiter.value : "batch").unsafeUpdate(1, noTags)
