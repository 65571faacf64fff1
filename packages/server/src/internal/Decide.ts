import { Policy } from "@effect-batch/domain"
import type { BatchConfig, BatchEvent, Ids, ItemError } from "@effect-batch/domain"
import { ItemError as ItemErrorSchema } from "@effect-batch/domain/ItemError"
import type { ClaimedItem, Outcome } from "@effect-batch/tables/ItemRepo"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { AttemptFailure } from "../Workflow.js"

const encodeError = Schema.encodeSync(ItemErrorSchema)

// built once: a tagged-enum constructor is looked up through a proxy on every call
const continueBatch = Policy.BatchAction.Continue()
const none = Option.none<never>()

/**
 * What the runner does with a finished attempt: the outcome to record, and what it means for the
 * batch and its limiters.
 */
export interface Decided {
  readonly outcome: Outcome
  readonly action: Policy.BatchAction
  readonly throttle: Option.Option<{ readonly limiter: string; readonly untilMs: number }>
  readonly failure: Option.Option<ItemError.ItemError>
}

/** Decides the outcome of one attempt with the pure policy. */
export const decide = (options: {
  readonly config: BatchConfig.BatchConfig
  readonly item: ClaimedItem
  readonly key: Ids.ItemKey
  readonly result: Either.Either<unknown, AttemptFailure>
  readonly durationMs: number
  readonly now: number
  readonly random: number
  readonly counters: Policy.Counters
  readonly timeout: Duration.Duration
  /** the batch's effective concurrency once this attempt's throttle, if any, is applied */
  readonly effectiveConcurrency: number
}): Decided => {
  const { item, key, now } = options
  if (Either.isRight(options.result)) {
    return {
      outcome: {
        key: item.key,
        attempt: item.attempt,
        state: "succeeded",
        output: options.result.right,
        error: undefined,
        dueAtMs: undefined,
        consumed: item.consumed + 1,
        throttles: 0,
        roundsFailed: item.rounds_failed,
        durationMs: options.durationMs,
        reason: undefined,
        countsAsFailure: false,
        events: [{ _tag: "ItemSucceeded", itemKey: key, attempt: item.attempt, durationMs: options.durationMs }]
      },
      action: continueBatch,
      throttle: none,
      failure: none
    }
  }
  const failure = options.result.left
  const rateLimited = failure.error.category === "rate-limited"
  const consumed = rateLimited ? item.consumed : item.consumed + 1
  const throttles = rateLimited ? item.throttles + 1 : 0
  const decision = Policy.onFailure({
    config: options.config,
    attempt: consumed,
    roundsFailed: item.rounds_failed,
    error: failure.error,
    retryAfter: failure.retryAfter,
    throttles: item.throttles,
    counters: options.counters,
    random: options.random
  })
  const timedOut: ReadonlyArray<BatchEvent.Draft> = failure.error.category === "timeout"
    ? [{ _tag: "ItemTimedOut", itemKey: key, attempt: item.attempt, timeout: options.timeout }]
    : []
  const error = encodeError(failure.error)
  // every outcome is built with the same fields: a spread of a fresh object is slow in V8
  const failed = (
    state: Outcome["state"],
    events: ReadonlyArray<BatchEvent.Draft>,
    more: { readonly dueAtMs?: number; readonly reason?: string }
  ): Outcome => ({
    key: item.key,
    attempt: item.attempt,
    state,
    output: undefined,
    error,
    dueAtMs: more.dueAtMs,
    consumed,
    throttles,
    roundsFailed: item.rounds_failed,
    durationMs: options.durationMs,
    reason: more.reason,
    countsAsFailure: !rateLimited,
    events
  })
  const item_ = decision.item
  switch (item_._tag) {
    case "Retry": {
      const dueAtMs = now + Duration.toMillis(item_.delay)
      const limiter = Option.getOrElse(failure.limiter, () => "*")
      const throttled: ReadonlyArray<BatchEvent.Draft> = rateLimited
        ? [{
          _tag: "Throttled",
          limiter: limiter === "*" ? "batch" : limiter,
          retryAfter: item_.delay,
          effectiveConcurrency: options.effectiveConcurrency
        }]
        : []
      return {
        outcome: failed("retry", [...timedOut, ...throttled, {
          _tag: "ItemRetryScheduled",
          itemKey: key,
          attempt: item.attempt,
          nextAttemptAt: DateTime.unsafeMake(dueAtMs),
          error: failure.error
        }], { dueAtMs }),
        action: decision.batch,
        throttle: rateLimited ? Option.some({ limiter, untilMs: dueAtMs }) : Option.none(),
        failure: Option.some(failure.error)
      }
    }
    case "Fail":
      return {
        outcome: failed(
          "failed",
          [...timedOut, { _tag: "ItemFailed", itemKey: key, attempt: item.attempt, error: failure.error }],
          {}
        ),
        action: decision.batch,
        throttle: Option.none(),
        failure: Option.some(failure.error)
      }
    case "Quarantine":
      return {
        outcome: failed("quarantined", [...timedOut, { _tag: "ItemQuarantined", itemKey: key, reason: item_.reason }], {
          reason: item_.reason
        }),
        action: decision.batch,
        throttle: Option.none(),
        failure: Option.some(failure.error)
      }
  }
}
