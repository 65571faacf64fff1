/**
 * Everything stored or sent to a client survives JSON: encode, stringify, parse, decode gives back the
 * original value.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Record from "effect/Record"
import * as Schema from "effect/Schema"
import { BatchConfig, BatchEvent, BatchState, ItemError, ItemState, Views } from "../src/index.js"
import * as Samples from "./Samples.js"

/** The JSON text of a value, as the store and the clients see it. */
const toJson = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  Effect.map(Schema.encode(schema)(value), (encoded) => JSON.stringify(encoded))

/** The encoded value, as parsed from its JSON text. */
const encodedJson = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  Effect.map(toJson(schema, value), (json): unknown => JSON.parse(json))

/** encode → stringify → parse → decode gives back the original. */
const assertRoundTrip = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  Effect.gen(function*() {
    const json = yield* toJson(schema, value)
    const decoded = yield* Schema.decodeUnknown(schema)(JSON.parse(json))
    assert.deepStrictEqual(decoded, value, json)
  })

// The opaque payloads (an item's output, an error's details) are stored as JSON: only JSON values
// can come back, so the generated values are restricted to those.
const isJson = (u: unknown): boolean => {
  if (u === null || typeof u === "string" || typeof u === "boolean") return true
  if (typeof u === "number") return Number.isFinite(u) && !Object.is(u, -0)
  if (Array.isArray(u)) return Array.from(u).every(isJson)
  if (typeof u === "object" && Object.getPrototypeOf(u) === Object.prototype) {
    return Object.entries(u).every(([key, value]) => key !== "__proto__" && isJson(value))
  }
  return false
}

const payloadsAreJson = (u: unknown): boolean => {
  if (u instanceof ItemError.ItemError) return !("details" in u) || isJson(u.details)
  if (u instanceof ItemState.Succeeded) return isJson(u.output)
  if (u instanceof Views.ItemResult) {
    return (!("output" in u) || isJson(u.output)) && (u.error === undefined || payloadsAreJson(u.error))
  }
  if (typeof u === "object" && u !== null) return Object.values(u).every(payloadsAreJson)
  return true
}

const arbitrary = <S extends Schema.Schema.AnyNoContext>(schema: S): FastCheck.Arbitrary<Schema.Schema.Type<S>> =>
  Arbitrary.make(schema).filter(payloadsAreJson)

describe("BatchState", () => {
  for (const state of Samples.allStates) {
    it.effect(state._tag, () => assertRoundTrip(BatchState.BatchState, state))
  }

  it.effect("times are ISO strings", () =>
    Effect.gen(function*() {
      yield* assertRoundTrip(BatchState.BatchState, Samples.states.Running)
      const encoded = yield* encodedJson(BatchState.BatchState, Samples.states.Running)
      assert.deepStrictEqual(encoded, { _tag: "Running", since: "1970-01-01T00:00:00.000Z", round: 1 })
    }))

  it.effect.prop(
    "any state",
    [arbitrary(BatchState.BatchState)],
    ([state]) => assertRoundTrip(BatchState.BatchState, state)
  )
})

describe("BatchEvent", () => {
  const schemas: {
    readonly [T in BatchEvent.Tag]: Schema.Schema<
      Extract<BatchEvent.BatchEvent, { readonly _tag: T }>,
      Extract<BatchEvent.Encoded, { readonly _tag: T }>
    >
  } = {
    BatchCreated: BatchEvent.BatchCreated,
    BatchStarted: BatchEvent.BatchStarted,
    BatchPaused: BatchEvent.BatchPaused,
    BatchResumed: BatchEvent.BatchResumed,
    ReviewRequested: BatchEvent.ReviewRequested,
    BatchApproved: BatchEvent.BatchApproved,
    BatchRejected: BatchEvent.BatchRejected,
    BatchCompleted: BatchEvent.BatchCompleted,
    BatchFailed: BatchEvent.BatchFailed,
    BatchCancelled: BatchEvent.BatchCancelled,
    BatchRedriven: BatchEvent.BatchRedriven,
    ConfigChanged: BatchEvent.ConfigChanged,
    ItemStarted: BatchEvent.ItemStarted,
    ItemSucceeded: BatchEvent.ItemSucceeded,
    ItemFailed: BatchEvent.ItemFailed,
    ItemRetryScheduled: BatchEvent.ItemRetryScheduled,
    ItemTimedOut: BatchEvent.ItemTimedOut,
    StepCompleted: BatchEvent.StepCompleted,
    StepsDiscarded: BatchEvent.StepsDiscarded,
    ItemQuarantined: BatchEvent.ItemQuarantined,
    ItemReleased: BatchEvent.ItemReleased,
    ItemSkipped: BatchEvent.ItemSkipped,
    Throttled: BatchEvent.Throttled,
    SlowdownDetected: BatchEvent.SlowdownDetected,
    SlowdownRecovered: BatchEvent.SlowdownRecovered
  }

  it("covers all 25 event tags, and the exported list of tags is the union's", () => {
    assert.strictEqual(BatchEvent.BatchEvent.members.length, 25)
    assert.strictEqual(Record.keys(schemas).length, 25)
    assert.deepStrictEqual([...BatchEvent.tags].sort(), Record.keys(schemas).sort())
    assert.deepStrictEqual(Record.keys(Samples.events), Record.keys(schemas))
  })

  for (const tag of Record.keys(schemas)) {
    it.effect(`${tag} (sample)`, () => assertRoundTrip(BatchEvent.BatchEvent, Samples.events[tag]))

    it.effect.prop(`${tag} (generated)`, [arbitrary(schemas[tag])], ([event]) =>
      Effect.gen(function*() {
        assert.strictEqual(event._tag, tag)
        yield* assertRoundTrip(BatchEvent.BatchEvent, event)
      }), { fastCheck: { numRuns: 50 } })
  }

  it.effect("durations are readable strings", () =>
    Effect.gen(function*() {
      const timedOut = yield* encodedJson(BatchEvent.BatchEvent, Samples.events.ItemTimedOut)
      assert.deepInclude(timedOut, { _tag: "ItemTimedOut", timeout: "90 seconds" })
      const throttled = yield* encodedJson(BatchEvent.BatchEvent, Samples.events.Throttled)
      assert.deepInclude(throttled, { _tag: "Throttled", retryAfter: "20 seconds" })
    }))
})

describe("BatchConfig", () => {
  it.effect("the default config", () =>
    Effect.gen(function*() {
      const defaults = BatchConfig.BatchConfig.make({})
      assert.deepStrictEqual(yield* BatchConfig.decode({}), defaults)
      yield* assertRoundTrip(BatchConfig.BatchConfig, defaults)
      const encoded = yield* encodedJson(BatchConfig.BatchConfig, defaults)
      assert.deepStrictEqual(encoded, {
        concurrency: 16,
        failurePolicy: "continue-on-failure",
        retry: { maxAttempts: 3, base: "200 millis", factor: 2, cap: "30 seconds", jitter: 0.2 },
        timeout: "5 minutes",
        rounds: { maxRounds: 3, coolDown: "30 seconds" },
        quarantine: { categories: [] },
        review: false,
        rateLimits: {},
        leaseDuration: "30 seconds",
        pauseOnSlowdown: false
      })
    }))

  it.effect("a fully specified config", () =>
    Effect.gen(function*() {
      yield* assertRoundTrip(BatchConfig.BatchConfig, Samples.fullConfig)
      const encoded = yield* encodedJson(BatchConfig.BatchConfig, Samples.fullConfig)
      assert.deepStrictEqual(encoded, {
        concurrency: 4,
        failurePolicy: "retry-failed",
        retry: { maxAttempts: 5, base: "250 millis", factor: 3, cap: "2 minutes", jitter: 0.5 },
        timeout: "90 seconds",
        rounds: { maxRounds: 4, coolDown: "10 seconds" },
        errorBudget: { maxFailures: 20, maxFailureRatio: 0.25, minSettled: 40 },
        quarantine: { afterRounds: 2, categories: ["InvalidDocument"] },
        pauseAfterConsecutiveFailures: 8,
        review: true,
        rateLimits: { openai: { limit: 10, interval: "1 minute" } },
        leaseDuration: "45 seconds",
        slowdown: {
          window: "30 seconds",
          baselineWindows: 4,
          minItems: 200,
          throughputBelow: 0.4,
          p95Above: 3,
          consecutive: 2
        },
        pauseOnSlowdown: true
      })
      // what a user writes decodes to the same config
      assert.deepStrictEqual(yield* BatchConfig.decode(encoded), Samples.fullConfig)
    }))

  it.effect("readable durations in any unit decode to the same duration", () =>
    Effect.gen(function*() {
      const config = yield* BatchConfig.decode({ timeout: "1.5 minutes", leaseDuration: " 2 hours " })
      assert.deepStrictEqual(config.timeout, Duration.seconds(90))
      assert.deepStrictEqual(config.leaseDuration, Duration.hours(2))
      const encoded = yield* BatchConfig.encode(config)
      assert.strictEqual(encoded.timeout, "90 seconds")
      assert.strictEqual(encoded.leaseDuration, "2 hours")
    }))

  it.effect.prop(
    "any config",
    [arbitrary(BatchConfig.BatchConfig)],
    ([config]) => assertRoundTrip(BatchConfig.BatchConfig, config),
    { fastCheck: { numRuns: 50 } }
  )

  it.effect("a config patch", () => assertRoundTrip(BatchConfig.ConfigPatch, Samples.patch))

  it.effect("an empty config patch", () => assertRoundTrip(BatchConfig.ConfigPatch, BatchConfig.ConfigPatch.make({})))

  it.effect.prop(
    "any config patch",
    [arbitrary(BatchConfig.ConfigPatch)],
    ([patch]) => assertRoundTrip(BatchConfig.ConfigPatch, patch),
    { fastCheck: { numRuns: 50 } }
  )
})

describe("Views", () => {
  const itemStates: ReadonlyArray<ItemState.ItemState> = [
    new ItemState.Queued(),
    new ItemState.Running({ attempt: 1, leaseOwner: "worker-1", leaseExpiresAt: Samples.later }),
    new ItemState.RetryScheduled({ attempt: 1, nextAttemptAt: Samples.later, lastError: Samples.itemError }),
    new ItemState.Succeeded({ attempts: 2, output: { total: 120.5, lines: [{ sku: "A-1", qty: 2 }], note: null } }),
    new ItemState.Failed({ attempts: 3, error: Samples.itemError }),
    new ItemState.Quarantined({ attempts: 3, reason: "failed in 2 round(s)", error: Samples.itemError }),
    new ItemState.Skipped({ reason: "cancelled" })
  ]
  const itemViews = itemStates.map((state, ordinal) =>
    Views.ItemView.make({
      key: Samples.itemKey,
      ordinal,
      round: 1,
      state,
      ...(state._tag === "Succeeded" ? { durationMs: 812.5 } : {})
    })
  )
  const recentError = Views.RecentError.make({
    itemKey: Samples.itemKey,
    attempt: 2,
    error: Samples.itemError,
    at: Samples.later
  })

  it.effect("BatchView in every state", () =>
    Effect.forEach(Samples.allStates, (state) =>
      assertRoundTrip(
        Views.BatchView,
        Views.BatchView.make({
          id: Samples.batchId,
          workflow: Samples.workflow,
          state,
          config: Samples.fullConfig,
          counts: Samples.counts,
          version: 7,
          lastSeq: 42,
          createdAt: Samples.at,
          updatedAt: Samples.later
        })
      ), { discard: true }))

  it.effect("ItemView in every item state", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(itemViews.map((v) => v.state._tag), [...ItemState.Tag.literals])
      yield* Effect.forEach(itemViews, (view) => assertRoundTrip(Views.ItemView, view), { discard: true })
    }))

  it.effect("ItemResult", () =>
    Effect.gen(function*() {
      yield* assertRoundTrip(
        Views.ItemResult,
        Views.ItemResult.make({ key: Samples.itemKey, state: "Succeeded", output: ["a", 1, true, null] })
      )
      yield* assertRoundTrip(
        Views.ItemResult,
        Views.ItemResult.make({ key: Samples.itemKey, state: "Failed", error: Samples.itemError })
      )
    }))

  it.effect("Progress", () =>
    assertRoundTrip(
      Views.Progress,
      Views.Progress.make({
        batchId: Samples.batchId,
        state: Samples.states.Paused,
        counts: Samples.counts,
        itemsPerSecond: 12.25,
        etaSeconds: 30,
        p50Ms: 410,
        p95Ms: 1_930.5,
        latestErrors: [recentError]
      })
    ))

  it.effect("RedrivePlan", () =>
    assertRoundTrip(
      Views.RedrivePlan,
      Views.RedrivePlan.make({ dryRun: true, count: 1, items: [Samples.itemKey] })
    ))

  it.effect("a page of items", () => {
    const page = Views.Page(Views.ItemView)
    return Effect.gen(function*() {
      yield* assertRoundTrip(page, page.make({ items: itemViews, nextCursor: "doc-0007" }))
      yield* assertRoundTrip(page, page.make({ items: [] }))
    })
  })

  it.effect.prop("any BatchView", [arbitrary(Views.BatchView)], ([view]) => assertRoundTrip(Views.BatchView, view), {
    fastCheck: { numRuns: 50 }
  })
  it.effect.prop("any ItemView", [arbitrary(Views.ItemView)], ([view]) => assertRoundTrip(Views.ItemView, view))
  it.effect.prop(
    "any ItemResult",
    [arbitrary(Views.ItemResult)],
    ([result]) => assertRoundTrip(Views.ItemResult, result)
  )
  it.effect.prop(
    "any Progress",
    [arbitrary(Views.Progress)],
    ([progress]) => assertRoundTrip(Views.Progress, progress),
    { fastCheck: { numRuns: 50 } }
  )
  it.effect.prop(
    "any RedrivePlan",
    [arbitrary(Views.RedrivePlan)],
    ([plan]) => assertRoundTrip(Views.RedrivePlan, plan)
  )
})
