/**
 * The item failure policy, on pure inputs: the random number of the jitter is an input, so no clock
 * and no randomness are involved.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import { BatchConfig, FailurePolicy, ItemError, Policy } from "../src/index.js"

const { AutoPause, Abort, Continue, ExceedBudget } = Policy.BatchAction
const { Fail, Quarantine, Retry } = Policy.ItemDecision

const error = (category: ItemError.ErrorCategory, tag?: string): ItemError.ItemError =>
  ItemError.ItemError.make({ category, message: `a ${category} error`, ...(tag !== undefined ? { tag } : {}) })

const config = (fields: ConstructorParameters<typeof BatchConfig.BatchConfig>[0] = {}) =>
  BatchConfig.BatchConfig.make(fields)

/** A first failed attempt of a retryable error, in a fresh batch with the default config. */
const input = (overrides: Partial<Policy.FailureInput> = {}): Policy.FailureInput => ({
  config: config(),
  attempt: 1,
  roundsFailed: 0,
  error: error("retryable"),
  retryAfter: Option.none(),
  throttles: 0,
  counters: { settled: 0, failed: 0, consecutiveFailures: 0 },
  random: 0,
  ...overrides
})

const retry = (millis: number) => Retry({ delay: Duration.millis(millis), consumesAttempt: true })

describe("backoff", () => {
  const defaults = BatchConfig.RetryConfig.make({})

  it("doubles from the base with no jitter drawn (random = 0), up to the cap", () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 50].map((attempt) =>
      Duration.toMillis(Policy.backoff(defaults, attempt, 0))
    )
    assert.deepStrictEqual(delays, [200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000, 30_000])
  })

  it("follows the configured base, factor and cap", () => {
    const custom = BatchConfig.RetryConfig.make({
      base: Duration.millis(250),
      factor: 3,
      cap: Duration.seconds(5),
      jitter: 0
    })
    const delays = [1, 2, 3, 4, 5].map((attempt) => Duration.toMillis(Policy.backoff(custom, attempt, 0.99)))
    assert.deepStrictEqual(delays, [250, 750, 2_250, 5_000, 5_000])
  })

  it("jitter takes off up to its fraction of the delay", () => {
    assert.strictEqual(Duration.toMillis(Policy.backoff(defaults, 1, 0.5)), 180)
    assert.strictEqual(Duration.toMillis(Policy.backoff(defaults, 2, 1)), 320)
    // a random number out of range is clamped
    assert.strictEqual(Duration.toMillis(Policy.backoff(defaults, 1, 7)), 160)
    assert.strictEqual(Duration.toMillis(Policy.backoff(defaults, 1, -1)), 200)
    // the cap applies before the jitter
    assert.strictEqual(Duration.toMillis(Policy.backoff(defaults, 20, 1)), 24_000)
  })

  it.prop(
    "the delay stays within [(1 - jitter) × d, d] where d = min(cap, base × factor^(attempt - 1))",
    {
      attempt: FastCheck.integer({ min: 1, max: 40 }),
      random: FastCheck.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      base: FastCheck.integer({ min: 0, max: 5_000 }),
      factor: FastCheck.double({ min: 1, max: 10, noNaN: true }),
      cap: FastCheck.integer({ min: 0, max: 600_000 }),
      jitter: FastCheck.double({ min: 0, max: 1, noNaN: true })
    },
    ({ attempt, base, cap, factor, jitter, random }) => {
      const retryConfig = BatchConfig.RetryConfig.make({
        base: Duration.millis(base),
        factor,
        cap: Duration.millis(cap),
        jitter
      })
      const full = Math.min(cap, base * Math.pow(factor, attempt - 1))
      const delay = Duration.toMillis(Policy.backoff(retryConfig, attempt, random))
      assert.isAtMost(delay, Math.round(full))
      assert.isAtLeast(delay, Math.round(full * (1 - jitter)))
      assert.isAtMost(delay, cap)
      assert.strictEqual(Duration.toMillis(Policy.backoff(retryConfig, attempt, 0)), Math.round(full))
    }
  )
})

describe("onFailure", () => {
  for (const failurePolicy of FailurePolicy.FailurePolicy.literals) {
    describe(failurePolicy, () => {
      const policyConfig = config({ failurePolicy })
      const finalFailure = failurePolicy === "abort-all" ? Abort() : Continue()

      it("a retryable error with attempts left retries after the backoff", () => {
        assert.deepStrictEqual(Policy.onFailure(input({ config: policyConfig })), {
          item: retry(200),
          batch: Continue()
        })
        assert.deepStrictEqual(Policy.onFailure(input({ config: policyConfig, attempt: 2 })), {
          item: retry(400),
          batch: Continue()
        })
        assert.deepStrictEqual(Policy.onFailure(input({ config: policyConfig, attempt: 2, random: 0.5 })), {
          item: retry(360),
          batch: Continue()
        })
      })

      it("the last attempt fails the item", () => {
        assert.deepStrictEqual(Policy.onFailure(input({ config: policyConfig, attempt: 3 })), {
          item: Fail(),
          batch: finalFailure
        })
      })

      it("a fatal error or a defect fails the item at once", () => {
        const notRetryable: ReadonlyArray<ItemError.ErrorCategory> = ["fatal", "defect"]
        for (const category of notRetryable) {
          assert.deepStrictEqual(Policy.onFailure(input({ config: policyConfig, error: error(category) })), {
            item: Fail(),
            batch: finalFailure
          })
        }
      })

      it("a timeout is retryable", () => {
        assert.deepStrictEqual(Policy.onFailure(input({ config: policyConfig, error: error("timeout") })), {
          item: retry(200),
          batch: Continue()
        })
        assert.deepStrictEqual(
          Policy.onFailure(input({ config: policyConfig, error: error("timeout"), attempt: 3 })),
          { item: Fail(), batch: finalFailure }
        )
      })

      it("a lost attempt (its process died) is retried while attempts remain, then fails the item", () => {
        assert.deepStrictEqual(Policy.onFailure(input({ config: policyConfig, error: error("worker-lost") })), {
          item: retry(200),
          batch: Continue()
        })
        assert.deepStrictEqual(
          Policy.onFailure(input({ config: policyConfig, error: error("worker-lost", "WorkerLost"), attempt: 3 })),
          { item: Fail(), batch: finalFailure }
        )
      })

      it("a rate-limited attempt retries without consuming an attempt, after the retry-after", () => {
        const decision = Policy.onFailure(input({
          config: policyConfig,
          error: error("rate-limited"),
          attempt: 3,
          retryAfter: Option.some(Duration.seconds(7))
        }))
        assert.deepStrictEqual(decision, {
          item: Retry({ delay: Duration.seconds(7), consumesAttempt: false }),
          batch: Continue()
        })
      })
    })
  }

  describe("rate limits", () => {
    const limited = (overrides: Partial<Policy.FailureInput>) =>
      Policy.onFailure(input({ error: error("rate-limited"), ...overrides }))
    const wait = (millis: number) => Retry({ delay: Duration.millis(millis), consumesAttempt: false })

    it("without a retry-after, backs off on the number of consecutive throttles", () => {
      assert.deepStrictEqual(limited({ throttles: 0 }).item, wait(200))
      assert.deepStrictEqual(limited({ throttles: 1 }).item, wait(400))
      assert.deepStrictEqual(limited({ throttles: 2 }).item, wait(800))
      assert.deepStrictEqual(limited({ throttles: 2, random: 0.5 }).item, wait(720))
      assert.deepStrictEqual(limited({ throttles: 30 }).item, wait(30_000))
    })

    it("never trips the circuit breaker nor the error budget", () => {
      const strict = config({
        pauseAfterConsecutiveFailures: 1,
        errorBudget: BatchConfig.ErrorBudget.make({ maxFailures: 0, maxFailureRatio: 0, minSettled: 0 }),
        failurePolicy: "abort-all"
      })
      const decision = limited({
        config: strict,
        attempt: 3,
        counters: { settled: 100, failed: 100, consecutiveFailures: 100 }
      })
      assert.deepStrictEqual(decision, { item: wait(200), batch: Continue() })
    })
  })

  describe("error budget", () => {
    const budgeted = (
      budget: ConstructorParameters<typeof BatchConfig.ErrorBudget>[0],
      failurePolicy?: FailurePolicy.FailurePolicy
    ) => config({ errorBudget: BatchConfig.ErrorBudget.make(budget), ...(failurePolicy ? { failurePolicy } : {}) })
    const finalAttempt = (c: BatchConfig.BatchConfig, counters: Policy.Counters) =>
      Policy.onFailure(input({ config: c, attempt: 3, counters }))

    it("maxFailures: the failure past the maximum exceeds the budget", () => {
      const c = budgeted({ maxFailures: 2 })
      assert.deepStrictEqual(finalAttempt(c, { settled: 5, failed: 1, consecutiveFailures: 0 }).batch, Continue())
      assert.deepStrictEqual(
        finalAttempt(c, { settled: 5, failed: 2, consecutiveFailures: 0 }).batch,
        ExceedBudget({ failed: 3, settled: 6 })
      )
    })

    it("maxFailureRatio: checked only once minSettled items have settled", () => {
      const c = budgeted({ maxFailureRatio: 0.5, minSettled: 10 })
      // 9 of 9 failed, but fewer than 10 settled
      assert.deepStrictEqual(finalAttempt(c, { settled: 8, failed: 8, consecutiveFailures: 0 }).batch, Continue())
      // 5 of 10: at the ratio, not above it
      assert.deepStrictEqual(finalAttempt(c, { settled: 9, failed: 4, consecutiveFailures: 0 }).batch, Continue())
      // 6 of 10
      assert.deepStrictEqual(
        finalAttempt(c, { settled: 9, failed: 5, consecutiveFailures: 0 }).batch,
        ExceedBudget({ failed: 6, settled: 10 })
      )
    })

    it("applies under retry-failed too", () => {
      const c = budgeted({ maxFailures: 0 }, "retry-failed")
      assert.deepStrictEqual(
        finalAttempt(c, { settled: 0, failed: 0, consecutiveFailures: 0 }),
        { item: Fail(), batch: ExceedBudget({ failed: 1, settled: 1 }) }
      )
    })

    it("abort-all aborts before the budget is considered", () => {
      const c = budgeted({ maxFailures: 0 }, "abort-all")
      assert.deepStrictEqual(finalAttempt(c, { settled: 0, failed: 0, consecutiveFailures: 0 }).batch, Abort())
    })

    it("an attempt that will be retried does not count", () => {
      const c = budgeted({ maxFailures: 0 })
      const decision = Policy.onFailure(
        input({ config: c, counters: { settled: 50, failed: 50, consecutiveFailures: 0 } })
      )
      assert.deepStrictEqual(decision, { item: retry(200), batch: Continue() })
    })

    it("budgetExceeded", () => {
      assert.isFalse(Policy.budgetExceeded(config(), 1_000, 1_000))
      const ratio = budgeted({ maxFailureRatio: 0.1, minSettled: 0 })
      assert.isFalse(Policy.budgetExceeded(ratio, 0, 0))
      assert.isFalse(Policy.budgetExceeded(ratio, 1, 10))
      assert.isTrue(Policy.budgetExceeded(ratio, 2, 10))
      const max = budgeted({ maxFailures: 3 })
      assert.isFalse(Policy.budgetExceeded(max, 3, 3))
      assert.isTrue(Policy.budgetExceeded(max, 4, 4))
    })
  })

  describe("quarantine", () => {
    it("an error of a listed category is quarantined at once, even with attempts left", () => {
      for (const failurePolicy of FailurePolicy.FailurePolicy.literals) {
        const c = config({ failurePolicy, quarantine: BatchConfig.QuarantineConfig.make({ categories: ["BadScan"] }) })
        assert.deepStrictEqual(Policy.onFailure(input({ config: c, error: error("retryable", "BadScan") })), {
          item: Quarantine({ reason: "error BadScan is a quarantined category" }),
          batch: Continue()
        })
        // other errors are not
        assert.deepStrictEqual(
          Policy.onFailure(input({ config: c, error: error("retryable", "Other") })).item,
          retry(200)
        )
      }
    })

    it("an item that failed in quarantine.afterRounds rounds is quarantined instead of failed", () => {
      const c = config({
        failurePolicy: "retry-failed",
        quarantine: BatchConfig.QuarantineConfig.make({ afterRounds: 2 })
      })
      assert.deepStrictEqual(Policy.onFailure(input({ config: c, attempt: 3, roundsFailed: 0 })).item, Fail())
      assert.deepStrictEqual(
        Policy.onFailure(input({ config: c, attempt: 3, roundsFailed: 1 })),
        { item: Quarantine({ reason: "failed in 2 round(s)" }), batch: Continue() }
      )
      assert.deepStrictEqual(
        Policy.onFailure(input({ config: c, error: error("fatal"), roundsFailed: 4 })).item,
        Quarantine({ reason: "failed in 5 round(s)" })
      )
      // while attempts are left it still retries
      assert.deepStrictEqual(Policy.onFailure(input({ config: c, attempt: 1, roundsFailed: 1 })).item, retry(200))
    })
  })

  describe("circuit breaker", () => {
    const c = config({ pauseAfterConsecutiveFailures: 3 })

    it("auto-pauses at exactly N consecutive failures", () => {
      const at = (consecutiveFailures: number) =>
        Policy.onFailure(input({ config: c, counters: { settled: 0, failed: 0, consecutiveFailures } })).batch
      assert.deepStrictEqual(at(0), Continue())
      assert.deepStrictEqual(at(1), Continue())
      assert.deepStrictEqual(at(2), AutoPause({ consecutiveFailures: 3 }))
      assert.deepStrictEqual(at(5), AutoPause({ consecutiveFailures: 6 }))
    })

    it("a failed item trips it too, unless the batch aborts or exceeds its budget", () => {
      const counters = { settled: 0, failed: 0, consecutiveFailures: 2 }
      assert.deepStrictEqual(Policy.onFailure(input({ config: c, attempt: 3, counters })), {
        item: Fail(),
        batch: AutoPause({ consecutiveFailures: 3 })
      })
      const aborting = config({ pauseAfterConsecutiveFailures: 3, failurePolicy: "abort-all" })
      assert.deepStrictEqual(Policy.onFailure(input({ config: aborting, attempt: 3, counters })).batch, Abort())
      const budgeted = config({
        pauseAfterConsecutiveFailures: 3,
        errorBudget: BatchConfig.ErrorBudget.make({ maxFailures: 0 })
      })
      assert.deepStrictEqual(
        Policy.onFailure(input({ config: budgeted, attempt: 3, counters })).batch,
        ExceedBudget({ failed: 1, settled: 1 })
      )
    })

    it("is off without pauseAfterConsecutiveFailures", () => {
      const decision = Policy.onFailure(input({ counters: { settled: 0, failed: 0, consecutiveFailures: 1_000 } }))
      assert.deepStrictEqual(decision.batch, Continue())
    })

    it.prop(
      "trips exactly when the failures since the last success reach N",
      { n: FastCheck.integer({ min: 1, max: 50 }), before: FastCheck.nat({ max: 100 }) },
      ({ before, n }) => {
        const decision = Policy.onFailure(input({
          config: config({ pauseAfterConsecutiveFailures: n }),
          counters: { settled: 0, failed: 0, consecutiveFailures: before }
        }))
        assert.deepStrictEqual(
          decision.batch,
          before + 1 >= n ? AutoPause({ consecutiveFailures: before + 1 }) : Continue()
        )
      }
    )
  })
})

describe("afterCommit", () => {
  const c = config({
    pauseAfterConsecutiveFailures: 3,
    errorBudget: BatchConfig.ErrorBudget.make({ maxFailures: 5 })
  })

  it("goes on within the budget and below the breaker threshold", () => {
    assert.deepStrictEqual(Policy.afterCommit(c, { failed: 5, settled: 20, consecutiveFailures: 2 }), Continue())
    assert.deepStrictEqual(
      Policy.afterCommit(config(), { failed: 1_000, settled: 1_000, consecutiveFailures: 1_000 }),
      Continue()
    )
  })

  it("trips the breaker at exactly N consecutive failures", () => {
    assert.deepStrictEqual(
      Policy.afterCommit(c, { failed: 3, settled: 20, consecutiveFailures: 3 }),
      AutoPause({ consecutiveFailures: 3 })
    )
  })

  it("an exceeded budget comes before the breaker", () => {
    assert.deepStrictEqual(
      Policy.afterCommit(c, { failed: 6, settled: 20, consecutiveFailures: 6 }),
      ExceedBudget({ failed: 6, settled: 20 })
    )
  })
})

describe("nextRound", () => {
  const retryFailed = config({
    failurePolicy: "retry-failed",
    rounds: BatchConfig.RoundsConfig.make({ maxRounds: 3, coolDown: Duration.seconds(10) })
  })

  it("under retry-failed, starts the next round after the cool-down while rounds are left", () => {
    assert.deepStrictEqual(Policy.nextRound(retryFailed, 1, 4), Option.some({ round: 2, after: Duration.seconds(10) }))
    assert.deepStrictEqual(Policy.nextRound(retryFailed, 2, 1), Option.some({ round: 3, after: Duration.seconds(10) }))
  })

  it("settles at maxRounds", () => {
    assert.deepStrictEqual(Policy.nextRound(retryFailed, 3, 4), Option.none())
    assert.deepStrictEqual(Policy.nextRound(retryFailed, 4, 4), Option.none())
  })

  it("settles when nothing failed", () => {
    assert.deepStrictEqual(Policy.nextRound(retryFailed, 1, 0), Option.none())
  })

  it("never starts another round under the other policies", () => {
    const others: ReadonlyArray<FailurePolicy.FailurePolicy> = ["continue-on-failure", "abort-all"]
    for (const failurePolicy of others) {
      assert.deepStrictEqual(Policy.nextRound(config({ failurePolicy }), 1, 10), Option.none())
    }
  })
})

describe("AIMD", () => {
  it("starts at the maximum and halves on each throttle, never below 1", () => {
    const limits: Array<number> = []
    let state = Policy.aimdStart(9)
    limits.push(state.limit)
    for (let i = 0; i < 5; i++) {
      state = Policy.aimdOnThrottle(state)
      limits.push(state.limit)
    }
    assert.deepStrictEqual(limits, [9, 4, 2, 1, 1, 1])
  })

  it("grows back by one after `limit` successes, up to the maximum", () => {
    const max = 8
    let state = Policy.aimdOnThrottle(Policy.aimdOnThrottle(Policy.aimdOnThrottle(Policy.aimdStart(max))))
    assert.strictEqual(state.limit, 1)
    const growth: Array<number> = []
    let successes = 0
    while (state.limit < max) {
      state = Policy.aimdOnSuccess(state, max)
      successes += 1
      if (growth[growth.length - 1] !== state.limit) growth.push(state.limit)
    }
    assert.deepStrictEqual(growth, [2, 3, 4, 5, 6, 7, 8])
    // 1 + 2 + ... + 7 successes
    assert.strictEqual(successes, 28)
    assert.deepStrictEqual(Policy.aimdOnSuccess(state, max), { limit: max, successes: 0 })
  })

  it("a throttle forgets the successes counted so far", () => {
    const state = Policy.aimdOnSuccess(Policy.aimdOnSuccess({ limit: 4, successes: 0 }, 8), 8)
    assert.deepStrictEqual(state, { limit: 4, successes: 2 })
    assert.deepStrictEqual(Policy.aimdOnThrottle(state), { limit: 2, successes: 0 })
  })

  it.prop(
    "the limit stays between 1 and the maximum",
    { max: FastCheck.integer({ min: 1, max: 64 }), events: FastCheck.array(FastCheck.boolean(), { maxLength: 300 }) },
    ({ events, max }) => {
      let state = Policy.aimdStart(max)
      for (const throttled of events) {
        state = throttled ? Policy.aimdOnThrottle(state) : Policy.aimdOnSuccess(state, max)
        assert.isAtLeast(state.limit, 1)
        assert.isAtMost(state.limit, max)
      }
    }
  )
})
