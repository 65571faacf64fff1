/**
 * The configuration of a batch, with defaults and validated ranges.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { DurationString } from "./Duration.js"
import { FailurePolicy } from "./FailurePolicy.js"

const intBetween = (name: string, min: number, max: number) =>
  Schema.Int.pipe(
    Schema.between(min, max, { message: () => `${name} must be an integer between ${min} and ${max}` })
  )

const numberBetween = (name: string, min: number, max: number) =>
  Schema.Number.pipe(
    Schema.between(min, max, { message: () => `${name} must be a number between ${min} and ${max}` })
  )

const withDefault = <S extends Schema.Schema.Any>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: value, exact: true })

/**
 * Exponential backoff between attempts: `min(cap, base * factor^(attempt-1))`, reduced by up to
 * `jitter` (a fraction) at random.
 *
 * @since 0.1.0
 */
export class RetryConfig extends Schema.Class<RetryConfig>("RetryConfig")({
  maxAttempts: withDefault(intBetween("retry.maxAttempts", 1, 100), () => 3),
  base: withDefault(DurationString, () => Duration.millis(200)),
  factor: withDefault(numberBetween("retry.factor", 1, 10), () => 2),
  cap: withDefault(DurationString, () => Duration.seconds(30)),
  jitter: withDefault(numberBetween("retry.jitter", 0, 1), () => 0.2)
}) {}

/**
 * Rounds of the `retry-failed` policy: how many passes, and the pause between them.
 *
 * @since 0.1.0
 */
export class RoundsConfig extends Schema.Class<RoundsConfig>("RoundsConfig")({
  maxRounds: withDefault(intBetween("rounds.maxRounds", 1, 100), () => 3),
  coolDown: withDefault(DurationString, () => Duration.seconds(30))
}) {}

/**
 * The error budget of a batch. Exceeding it fails the batch with `ErrorBudgetExceeded`.
 * The ratio is only checked once `minSettled` items have settled.
 *
 * @since 0.1.0
 */
export class ErrorBudget extends Schema.Class<ErrorBudget>("ErrorBudget")({
  maxFailures: Schema.optionalWith(intBetween("errorBudget.maxFailures", 0, 10_000_000), { exact: true }),
  maxFailureRatio: Schema.optionalWith(numberBetween("errorBudget.maxFailureRatio", 0, 1), { exact: true }),
  minSettled: withDefault(intBetween("errorBudget.minSettled", 0, 10_000_000), () => 10)
}) {}

/**
 * When an item is set aside for a person instead of failing again.
 *
 * @since 0.1.0
 */
export class QuarantineConfig extends Schema.Class<QuarantineConfig>("QuarantineConfig")({
  afterRounds: Schema.optionalWith(intBetween("quarantine.afterRounds", 1, 100), { exact: true }),
  categories: withDefault(
    Schema.Array(Schema.String.pipe(Schema.nonEmptyString(), Schema.maxLength(128))).pipe(Schema.maxItems(64)),
    () => []
  )
}) {}

/**
 * A named rate limiter: at most `limit` acquisitions per `interval`.
 *
 * @since 0.1.0
 */
export class RateLimit extends Schema.Class<RateLimit>("RateLimit")({
  limit: intBetween("rateLimits.limit", 1, 1_000_000),
  interval: DurationString
}) {}

/**
 * Slowdown detection: the batch's throughput (outcomes per second) and p95 item duration are sampled
 * in windows of `window`; the first windows, at least `baselineWindows` of them and holding at least
 * `minItems` outcomes, are the batch's baseline. A window breaches when its throughput is below
 * `throughputBelow` times the baseline's (judged only while items wait to be claimed: a draining
 * batch is not slow) or its p95 is above `p95Above` times the baseline's; `consecutive` breaching
 * windows in a row make the batch slow, as many windows within bounds make it recover.
 *
 * @since 0.5.0
 */
export class SlowdownConfig extends Schema.Class<SlowdownConfig>("SlowdownConfig")({
  window: withDefault(
    DurationString.pipe(
      Schema.filter((d) => Duration.toMillis(d) >= 1000 || "slowdown.window must be at least 1 second")
    ),
    () => Duration.minutes(1)
  ),
  baselineWindows: withDefault(intBetween("slowdown.baselineWindows", 1, 1000), () => 5),
  minItems: withDefault(intBetween("slowdown.minItems", 1, 10_000_000), () => 100),
  throughputBelow: withDefault(
    Schema.Number.pipe(
      Schema.greaterThan(0, { message: () => "slowdown.throughputBelow must be a fraction above 0 and below 1" }),
      Schema.lessThan(1, { message: () => "slowdown.throughputBelow must be a fraction above 0 and below 1" })
    ),
    () => 0.5
  ),
  p95Above: withDefault(
    Schema.Number.pipe(
      Schema.greaterThan(1, { message: () => "slowdown.p95Above must be a multiple above 1 and at most 1000" }),
      Schema.lessThanOrEqualTo(1000, {
        message: () => "slowdown.p95Above must be a multiple above 1 and at most 1000"
      })
    ),
    () => 2
  ),
  consecutive: withDefault(intBetween("slowdown.consecutive", 1, 100), () => 3)
}) {}

/** Names that would collide with a JavaScript object's own properties. */
const reservedNames: ReadonlyArray<string> = ["__proto__", "constructor", "prototype", "hasOwnProperty", "toString"]

/**
 * The name of a rate limiter.
 *
 * @since 0.1.0
 */
export const LimiterName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_.:-]{1,64}$/, { message: () => "a limiter name is 1-64 letters, digits or _ . : -" }),
  Schema.filter((name) => !reservedNames.includes(name) || `${name} is a reserved name`)
)

/**
 * Named rate limiters.
 *
 * @since 0.1.0
 */
export const RateLimits = Schema.Record({ key: LimiterName, value: RateLimit }).pipe(
  Schema.filter((r) => Object.keys(r).length <= 32 || "at most 32 rate limiters")
)

/**
 * The configuration of one batch. Every field has a default: `BatchConfig.make({})` or decoding `{}`
 * gives a usable config.
 *
 * @since 0.1.0
 */
export class BatchConfig extends Schema.Class<BatchConfig>("BatchConfig")({
  concurrency: withDefault(intBetween("concurrency", 1, 10_000), () => 16),
  failurePolicy: withDefault(FailurePolicy, () => "continue-on-failure" as const),
  retry: withDefault(RetryConfig, () => RetryConfig.make({})),
  timeout: withDefault(
    DurationString.pipe(Schema.filter((d) => Duration.toMillis(d) > 0 || "timeout must be longer than 0")),
    () => Duration.minutes(5)
  ),
  rounds: withDefault(RoundsConfig, () => RoundsConfig.make({})),
  errorBudget: Schema.optionalWith(ErrorBudget, { exact: true }),
  quarantine: withDefault(QuarantineConfig, () => QuarantineConfig.make({})),
  pauseAfterConsecutiveFailures: Schema.optionalWith(
    intBetween("pauseAfterConsecutiveFailures", 1, 1_000_000),
    { exact: true }
  ),
  review: withDefault(Schema.Boolean, () => false),
  rateLimits: withDefault(RateLimits, () => ({})),
  leaseDuration: withDefault(
    DurationString.pipe(
      Schema.filter((d) => Duration.toMillis(d) >= 1000 || "leaseDuration must be at least 1 second")
    ),
    () => Duration.seconds(30)
  ),
  slowdown: Schema.optionalWith(SlowdownConfig, { exact: true }),
  pauseOnSlowdown: withDefault(Schema.Boolean, () => false)
}) {}

/**
 * The slowdown detection a batch runs: its `slowdown` setting, or the defaults when only
 * `pauseOnSlowdown` asks for it; none when neither is set.
 *
 * @since 0.5.0
 */
export const slowdownOf = (config: BatchConfig): SlowdownConfig | undefined =>
  config.slowdown ?? (config.pauseOnSlowdown ? SlowdownConfig.make({}) : undefined)

/**
 * The fields that can change while a batch runs.
 *
 * @since 0.1.0
 */
export class ConfigPatch extends Schema.Class<ConfigPatch>("ConfigPatch")({
  concurrency: Schema.optionalWith(intBetween("concurrency", 1, 10_000), { exact: true }),
  rateLimits: Schema.optionalWith(RateLimits, { exact: true }),
  errorBudget: Schema.optionalWith(ErrorBudget, { exact: true }),
  pauseAfterConsecutiveFailures: Schema.optionalWith(
    intBetween("pauseAfterConsecutiveFailures", 1, 1_000_000),
    { exact: true }
  )
}) {}

/**
 * Applies a patch to a config.
 *
 * @since 0.1.0
 */
export const applyPatch = (config: BatchConfig, patch: ConfigPatch): BatchConfig =>
  BatchConfig.make({
    ...config,
    ...(patch.concurrency !== undefined ? { concurrency: patch.concurrency } : {}),
    ...(patch.rateLimits !== undefined ? { rateLimits: patch.rateLimits } : {}),
    ...(patch.errorBudget !== undefined ? { errorBudget: patch.errorBudget } : {}),
    ...(patch.pauseAfterConsecutiveFailures !== undefined
      ? { pauseAfterConsecutiveFailures: patch.pauseAfterConsecutiveFailures }
      : {})
  })

/**
 * Decodes a config from JSON (applying defaults), failing with a `ParseError` naming the field.
 *
 * @since 0.1.0
 */
export const decode = Schema.decodeUnknown(BatchConfig, { errors: "all", onExcessProperty: "error" })

/**
 * Encodes a config to JSON.
 *
 * @since 0.1.0
 */
export const encode = Schema.encode(BatchConfig)
