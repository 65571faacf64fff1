/**
 * The item-level failure policy as pure functions. The orchestrator only executes these decisions.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { BatchConfig, RetryConfig } from "./BatchConfig.js"
import type { ItemError } from "./ItemError.js"
import { isRetryable } from "./ItemError.js"

/**
 * What happens to the item whose attempt failed.
 *
 * @since 0.1.0
 */
export type ItemDecision = Data.TaggedEnum<{
  /** Try again after `delay`; a rate-limited attempt does not consume one of the item's attempts. */
  Retry: { readonly delay: Duration.Duration; readonly consumesAttempt: boolean }
  /** The item failed for this round. */
  Fail: {}
  /** The item is set aside for a person. */
  Quarantine: { readonly reason: string }
}>
/** @since 0.1.0 */
export const ItemDecision = Data.taggedEnum<ItemDecision>()

/**
 * What happens to the batch because of this failure.
 *
 * @since 0.1.0
 */
export type BatchAction = Data.TaggedEnum<{
  Continue: {}
  /** `abort-all`: stop everything and fail the batch naming this item. */
  Abort: {}
  /** The error budget is exceeded: stop dispatching and fail the batch. */
  ExceedBudget: { readonly failed: number; readonly settled: number }
  /** The circuit breaker trips: pause the batch. */
  AutoPause: { readonly consecutiveFailures: number }
}>
/** @since 0.1.0 */
export const BatchAction = Data.taggedEnum<BatchAction>()

/**
 * A decision for one failed attempt.
 *
 * @since 0.1.0
 */
export interface Decision {
  readonly item: ItemDecision
  readonly batch: BatchAction
}

/**
 * The batch's counters before this failure is recorded.
 *
 * @since 0.1.0
 */
export interface Counters {
  /** items settled so far (succeeded, failed, quarantined, skipped) */
  readonly settled: number
  /** items failed so far */
  readonly failed: number
  /** failed attempts since the last success (rate limits excluded) */
  readonly consecutiveFailures: number
}

/**
 * Everything the policy needs to decide about one failed attempt.
 *
 * @since 0.1.0
 */
export interface FailureInput {
  readonly config: BatchConfig
  /** the attempts the item has consumed, this one included (1 for a first attempt) */
  readonly attempt: number
  /** rounds in which this item already ended `Failed`, before this one */
  readonly roundsFailed: number
  readonly error: ItemError
  /** for rate-limited errors: how long the downstream asked to wait */
  readonly retryAfter: Option.Option<Duration.Duration>
  /** consecutive rate-limit answers for this item, for the adaptive backoff */
  readonly throttles: number
  readonly counters: Counters
  /** a uniform random number in [0, 1), for the jitter */
  readonly random: number
}

/**
 * The exponential backoff before attempt `attempt + 1`:
 * `min(cap, base * factor^(attempt-1))`, reduced by up to `jitter` of itself.
 *
 * @since 0.1.0
 */
export const backoff = (retry: RetryConfig, attempt: number, random: number): Duration.Duration => {
  const base = Duration.toMillis(retry.base)
  const cap = Duration.toMillis(retry.cap)
  const raw = Math.min(cap, base * Math.pow(retry.factor, Math.max(0, attempt - 1)))
  const jittered = raw * (1 - retry.jitter * Math.min(Math.max(random, 0), 1))
  return Duration.millis(Math.max(0, Math.round(jittered)))
}

/**
 * How long to hold back after a rate-limit answer: the downstream's retry-after if it gave one,
 * otherwise an exponential backoff on the number of consecutive throttles.
 *
 * @since 0.1.0
 */
export const throttleDelay = (
  retry: RetryConfig,
  retryAfter: Option.Option<Duration.Duration>,
  throttles: number,
  random: number
): Duration.Duration => Option.getOrElse(retryAfter, () => backoff(retry, throttles + 1, random))

/**
 * Whether the error budget is exceeded with these counts.
 *
 * @since 0.1.0
 */
export const budgetExceeded = (config: BatchConfig, failed: number, settled: number): boolean => {
  const budget = config.errorBudget
  if (budget === undefined) return false
  if (budget.maxFailures !== undefined && failed > budget.maxFailures) return true
  return budget.maxFailureRatio !== undefined &&
    settled >= budget.minSettled &&
    settled > 0 &&
    failed / settled > budget.maxFailureRatio
}

const itemDecision = (input: FailureInput): ItemDecision => {
  const { attempt, config, error } = input
  if (error.tag !== undefined && config.quarantine.categories.includes(error.tag)) {
    return ItemDecision.Quarantine({ reason: `error ${error.tag} is a quarantined category` })
  }
  if (isRetryable(error) && attempt < config.retry.maxAttempts) {
    return ItemDecision.Retry({ delay: backoff(config.retry, attempt, input.random), consumesAttempt: true })
  }
  const afterRounds = config.quarantine.afterRounds
  if (afterRounds !== undefined && input.roundsFailed + 1 >= afterRounds) {
    return ItemDecision.Quarantine({ reason: `failed in ${input.roundsFailed + 1} round(s)` })
  }
  return ItemDecision.Fail()
}

/**
 * Decides what a failed attempt leads to, for the item and for the batch.
 *
 * Rate-limited attempts are retried after the retry-after without consuming an attempt and never
 * trip the breaker or the budget. Otherwise: quarantined categories are set aside at once; retryable
 * errors retry with backoff while attempts remain; a final failure quarantines the item once it has
 * failed in `quarantine.afterRounds` rounds, else fails it. A failed item aborts the batch under
 * `abort-all`, or exceeds the error budget; any failed attempt may trip the circuit breaker.
 *
 * @since 0.1.0
 */
export const onFailure = (input: FailureInput): Decision => {
  const { config, counters } = input
  if (input.error.category === "rate-limited") {
    return {
      item: ItemDecision.Retry({
        delay: throttleDelay(config.retry, input.retryAfter, input.throttles, input.random),
        consumesAttempt: false
      }),
      batch: BatchAction.Continue()
    }
  }
  const item = itemDecision(input)
  const consecutive = counters.consecutiveFailures + 1
  const breaker = config.pauseAfterConsecutiveFailures !== undefined &&
    consecutive >= config.pauseAfterConsecutiveFailures
  if (item._tag === "Fail") {
    if (config.failurePolicy === "abort-all") return { item, batch: BatchAction.Abort() }
    const failed = counters.failed + 1
    const settled = counters.settled + 1
    if (budgetExceeded(config, failed, settled)) return { item, batch: BatchAction.ExceedBudget({ failed, settled }) }
  }
  return {
    item,
    batch: breaker ? BatchAction.AutoPause({ consecutiveFailures: consecutive }) : BatchAction.Continue()
  }
}

/**
 * What to do when a round ends with failed items under `retry-failed`: start round `round + 1` after the
 * cool-down, or settle.
 *
 * @since 0.1.0
 */
export const nextRound = (
  config: BatchConfig,
  round: number,
  failed: number
): Option.Option<{ readonly round: number; readonly after: Duration.Duration }> =>
  config.failurePolicy === "retry-failed" && failed > 0 && round < config.rounds.maxRounds
    ? Option.some({ round: round + 1, after: config.rounds.coolDown })
    : Option.none()

/**
 * Adaptive concurrency of a rate limiter (AIMD): halve on a throttle, add one after `limit`
 * consecutive successes, never below 1 nor above the configured maximum.
 *
 * @since 0.1.0
 */
export interface Aimd {
  readonly limit: number
  readonly successes: number
}

/** @since 0.1.0 */
export const aimdStart = (max: number): Aimd => ({ limit: max, successes: 0 })

/** @since 0.1.0 */
export const aimdOnThrottle = (state: Aimd): Aimd => ({ limit: Math.max(1, Math.floor(state.limit / 2)), successes: 0 })

/** @since 0.1.0 */
export const aimdOnSuccess = (state: Aimd, max: number): Aimd => {
  if (state.limit >= max) return { limit: max, successes: 0 }
  const successes = state.successes + 1
  return successes >= state.limit ? { limit: state.limit + 1, successes: 0 } : { limit: state.limit, successes }
}

/**
 * The batch's counters right after a group of outcomes was committed.
 *
 * @since 0.1.0
 */
export interface Committed {
  readonly failed: number
  readonly settled: number
  readonly consecutiveFailures: number
}

/**
 * What the batch does after a commit, decided on the committed (exact) counters: exceed the error
 * budget, or trip the circuit breaker, or go on. Abort-all is decided per item by `onFailure`.
 *
 * @since 0.1.0
 */
export const afterCommit = (config: BatchConfig, committed: Committed): BatchAction => {
  if (budgetExceeded(config, committed.failed, committed.settled)) {
    return BatchAction.ExceedBudget({ failed: committed.failed, settled: committed.settled })
  }
  if (
    config.pauseAfterConsecutiveFailures !== undefined &&
    committed.consecutiveFailures >= config.pauseAfterConsecutiveFailures
  ) {
    return BatchAction.AutoPause({ consecutiveFailures: committed.consecutiveFailures })
  }
  return BatchAction.Continue()
}
