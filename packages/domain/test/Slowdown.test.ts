/**
 * The slowdown setting is validated like the other settings, and the judgement of sampled windows
 * against the batch's own baseline.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import { BatchConfig, Slowdown } from "../src/index.js"

const rejection = (input: unknown) =>
  BatchConfig.decode(input).pipe(Effect.flip, Effect.map(ParseResult.TreeFormatter.formatErrorSync))

describe("BatchConfig.slowdown", () => {
  it.effect("defaults: off unless set; pauseOnSlowdown alone turns it on with the defaults", () =>
    Effect.gen(function*() {
      const none = yield* BatchConfig.decode({})
      assert.strictEqual(none.pauseOnSlowdown, false)
      assert.isUndefined(BatchConfig.slowdownOf(none))
      const defaults = BatchConfig.slowdownOf(yield* BatchConfig.decode({ pauseOnSlowdown: true }))
      assert.deepStrictEqual(defaults, BatchConfig.SlowdownConfig.make({}))
      assert.deepStrictEqual(defaults?.window, Duration.minutes(1))
      assert.deepStrictEqual(
        [defaults?.baselineWindows, defaults?.minItems, defaults?.throughputBelow, defaults?.p95Above],
        [5, 100, 0.5, 2]
      )
      const set = yield* BatchConfig.decode({ slowdown: { window: "30 seconds", consecutive: 2 } })
      assert.deepStrictEqual(BatchConfig.slowdownOf(set)?.window, Duration.seconds(30))
      assert.strictEqual(BatchConfig.slowdownOf(set)?.consecutive, 2)
    }))

  for (
    const [slowdown, field] of [
      [{ window: "500 millis" }, "slowdown.window must be at least 1 second"],
      [{ window: "soon" }, "window"],
      [{ baselineWindows: 0 }, "slowdown.baselineWindows must be an integer between 1 and 1000"],
      [{ minItems: 0 }, "slowdown.minItems must be an integer between 1 and 10000000"],
      [{ minItems: 1.5 }, "[\"minItems\"]"],
      [{ throughputBelow: 1 }, "slowdown.throughputBelow must be a fraction above 0 and below 1"],
      [{ throughputBelow: 0 }, "slowdown.throughputBelow must be a fraction above 0 and below 1"],
      [{ p95Above: 1 }, "slowdown.p95Above must be a multiple above 1"],
      [{ consecutive: 0 }, "slowdown.consecutive must be an integer between 1 and 100"],
      [{ unknown: 1 }, "unknown"]
    ] as const
  ) {
    it.effect(`rejects ${JSON.stringify(slowdown)}`, () =>
      Effect.map(rejection({ slowdown }), (message) => assert.include(message, field)))
  }

  it.effect("rejects a pauseOnSlowdown that is not a boolean", () =>
    Effect.map(rejection({ pauseOnSlowdown: "yes" }), (message) => assert.include(message, "pauseOnSlowdown")))
})

const config = BatchConfig.SlowdownConfig.make({
  window: Duration.seconds(10),
  baselineWindows: 2,
  minItems: 50,
  consecutive: 2
})

const window = (atMs: number, completed: number, p95Ms: number | null, backlog = 100): Slowdown.Window => ({
  atMs,
  spanMs: 10_000,
  completed,
  p95Ms,
  backlog
})

describe("Slowdown.judge", () => {
  it("the baseline is the shortest prefix with enough windows and items", () => {
    assert.isTrue(Option.isNone(Slowdown.baselineOf(config, [window(10_000, 100, 50)])))
    assert.isTrue(Option.isNone(Slowdown.baselineOf(config, [window(10_000, 10, 50), window(20_000, 10, 70)])))
    const baseline = Slowdown.baselineOf(config, [
      window(10_000, 10, 50),
      window(20_000, 30, 70),
      window(30_000, 20, 90),
      window(40_000, 500, 1)
    ])
    assert.deepStrictEqual(Option.getOrThrow(baseline), {
      throughput: 2,
      p95Ms: 70,
      windows: 3,
      items: 60,
      untilMs: 30_000
    })
  })

  const baseline = Option.getOrThrow(Slowdown.baselineOf(config, [window(10_000, 100, 50), window(20_000, 100, 50)]))

  it("detects after `consecutive` breaching windows, by throughput or by p95", () => {
    const slowThroughput = [window(30_000, 40, 50), window(40_000, 40, 50)]
    const detected = Slowdown.judge(config, baseline, slowThroughput, false)
    assert.deepStrictEqual(
      detected,
      Option.some({
        _tag: "SlowdownDetected" as const,
        figures: {
          window: Duration.seconds(10),
          throughput: 4,
          baselineThroughput: 10,
          p95Ms: 50,
          baselineP95Ms: 50,
          windows: 2
        }
      })
    )
    const slowItems = [window(30_000, 100, 101), window(40_000, 100, 200)]
    assert.strictEqual(Option.getOrThrow(Slowdown.judge(config, baseline, slowItems, false))._tag, "SlowdownDetected")
    assert.isTrue(Option.isNone(Slowdown.judge(config, baseline, [window(30_000, 40, 50)], false)), "one window")
    assert.isTrue(
      Option.isNone(Slowdown.judge(config, baseline, [window(30_000, 40, 50), window(40_000, 100, 50)], false)),
      "not in a row"
    )
    assert.isTrue(Option.isNone(Slowdown.judge(config, baseline, slowItems, true)), "already slow")
  })

  it("a draining batch (nothing waiting) is not judged by its throughput", () => {
    const draining = [window(30_000, 5, 50, 0), window(40_000, 1, null, 0)]
    assert.isTrue(Option.isNone(Slowdown.judge(config, baseline, draining, false)))
  })

  it("recovers after `consecutive` windows within bounds", () => {
    const back = [window(30_000, 100, 200), window(40_000, 90, 60), window(50_000, 100, 50)]
    const recovered = Slowdown.judge(config, baseline, back, true)
    assert.strictEqual(Option.getOrThrow(recovered)._tag, "SlowdownRecovered")
    assert.isTrue(Option.isNone(Slowdown.judge(config, baseline, back.slice(0, 2), true)))
  })
})
