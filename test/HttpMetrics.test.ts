import { BatchEvent, Ids } from "@effect-batch/domain"
import { BatchOrchestrator, Http } from "@effect-batch/server"
import * as Exposition from "@effect-batch/server/Http/Metrics/Exposition"
import { TestDatabase } from "@effect-batch/tables"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { bearer, request, scripted, ScriptStep, server } from "./support/HttpServer.js"
import { parse, total } from "./support/Prometheus.js"
import { connect } from "./support/SseClient.js"

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }
const decodeEvent = Schema.decodeUnknownSync(Schema.parseJson(BatchEvent.BatchEvent))

/** What each item's attempts do, and how many items do it. */
const scripts: ReadonlyArray<readonly [count: number, script: ReadonlyArray<typeof ScriptStep.Type>]> = [
  [4, ["ok"]],
  [2, ["retry", "ok"]],
  [1, ["retry", "retry", "retry"]],
  [1, ["fail"]],
  [1, ["defect"]],
  [1, ["poison"]],
  [1, ["throttle", "ok"]],
  [1, ["timeout", "ok"]]
]
const batchItems = scripts.flatMap(([count, script], s) =>
  Array.from({ length: count }, (_, i) => ({ key: `item-${s}-${i}`, input: { script } }))
)
const config = {
  concurrency: 4,
  timeout: "1 second",
  retry: { maxAttempts: 3, base: "10 millis", jitter: 0 },
  quarantine: { categories: ["Poison"] },
  rateLimits: { downstream: { limit: 100_000, interval: "1 second" } }
}

const metrics = (base: string) =>
  Effect.map(request(`${base}/metrics`), (answer) => {
    assert.strictEqual(answer.status, 200)
    assert.match(String(answer.headers["content-type"]), /^text\/plain; version=0.0.4/)
    return parse(answer.body)
  })

/** Outcomes by `outcome/category`, as the batch's events tell them. */
const outcomesOf = (events: ReadonlyArray<BatchEvent.BatchEvent>) => {
  const counts: Record<string, number> = {}
  const add = (key: string) => counts[key] = (counts[key] ?? 0) + 1
  for (const event of events) {
    if (event._tag === "ItemSucceeded") add("succeeded/none")
    if (event._tag === "ItemRetryScheduled") add(`retry/${event.error.category}`)
    if (event._tag === "ItemFailed") add(`failed/${event.error.category}`)
    // the event names no error: `Poison` is not retryable, so its category is fatal
    if (event._tag === "ItemQuarantined") add("quarantined/fatal")
  }
  return counts
}

for (const [name, db] of TestDatabase.databases) {
  layer(server(db), { excludeTestServices: true, timeout: "60 seconds" })(`/metrics over HTTP (${name})`, (it) => {
    it.scoped("a batch's attempts, outcomes by category, durations and throttles, in a well-formed exposition", () =>
      Effect.gen(function*() {
        const base = yield* Http.url
        const o = yield* BatchOrchestrator.BatchOrchestrator
        // the counters are this process's: earlier batches of this file are counted in `before`
        const before = yield* metrics(base)
        const batch = yield* o.submitEncoded(scripted.name, batchItems, config, acme)
        const done = yield* o.await(acme, batch.id)
        const after = yield* metrics(base)
        const delta = (metric: string, labels: Record<string, string> = {}) =>
          total(after, metric, labels) - total(before, metric, labels)

        const replay = yield* connect(`${base}/batches/${batch.id}/events`, bearer("acme"))
        assert.strictEqual(yield* Deferred.await(replay.ended), "end")
        const events = replay.events.map((e) => decodeEvent(e.data))
        const attempts = events.filter((e) => e._tag === "ItemStarted").length
        const outcomes = outcomesOf(events)
        // what the scripts make: the events and the counters must both show it
        assert.strictEqual(attempts, 18)
        assert.deepStrictEqual(outcomes, {
          "succeeded/none": 8,
          "retry/retryable": 4,
          "retry/rate-limited": 1,
          "retry/timeout": 1,
          "failed/retryable": 1,
          "failed/fatal": 1,
          "failed/defect": 1,
          "quarantined/fatal": 1
        })
        assert.deepStrictEqual([done.counts.succeeded, done.counts.failed, done.counts.quarantined], [8, 3, 1])

        assert.strictEqual(delta("effect_batch_attempts_started_total"), attempts)
        const family = after.get("effect_batch_attempt_outcomes_total")
        assert.strictEqual(family?.type, "counter")
        for (const sample of family?.samples ?? []) {
          const key = `${sample.labels.outcome}/${sample.labels.category}`
          assert.strictEqual(delta(sample.name, sample.labels), outcomes[key] ?? 0, key)
        }
        for (const key of Object.keys(outcomes)) {
          assert.isTrue(family?.samples.some((s) => `${s.labels.outcome}/${s.labels.category}` === key), key)
        }
        assert.strictEqual(delta("effect_batch_attempt_outcomes_total", { outcome: "fenced" }), 0)
        for (const [outcome, count] of Object.entries(done.counts)) {
          if (["succeeded", "failed", "quarantined"].includes(outcome)) {
            assert.strictEqual(delta("effect_batch_attempt_outcomes_total", { outcome }), count, outcome)
          }
        }

        const duration = "effect_batch_attempt_duration_seconds"
        assert.strictEqual(after.get(duration)?.type, "histogram")
        assert.strictEqual(delta(`${duration}_count`), attempts)
        assert.strictEqual(delta(`${duration}_bucket`, { le: "+Inf" }), attempts)
        assert.deepStrictEqual(
          after.get(duration)?.samples.filter((s) => s.name.endsWith("_bucket")).map((s) => s.labels.le).slice(0, 3),
          ["0.001", "0.002", "0.004"]
        )
        // in seconds: the attempt that timed out took at least its second
        assert.isAtLeast(delta(`${duration}_sum`), 1)
        assert.isAtMost(delta(`${duration}_bucket`, { le: "0.512" }), attempts - 1)

        const throttles = events.filter((e) => e._tag === "Throttled").length
        assert.strictEqual(throttles, 1)
        assert.strictEqual(after.get("effect_batch_throttles_total")?.type, "counter")
        assert.strictEqual(delta("effect_batch_throttles_total", { limiter: "downstream" }), throttles)

        for (const f of after.values()) {
          assert.isString(f.help, f.name)
          if (f.type === "counter") assert.match(f.name, /_total$/)
        }
        assert.strictEqual(after.get("effect_batch_open_streams")?.type, "gauge")
        assert.strictEqual(after.get("effect_batch_queued_items_running_batches")?.type, "gauge")
      }))
  })
}

describe("the exposition format", () => {
  it("label values and help texts are escaped, and the parser reads back what was rendered", () => {
    const text = Exposition.render([
      {
        name: "demo_total",
        help: "a \\ backslash\nand a newline",
        type: "counter",
        samples: [[{ name: "a \"quoted\" \\ back\nslash" }, 3], [{ name: "plain" }, 0]]
      },
      {
        name: "demo_seconds",
        help: "a histogram",
        type: "histogram",
        samples: [
          [{ le: "0.5" }, 1, "_bucket"],
          [{ le: "+Inf" }, 2, "_bucket"],
          [{}, 1.25, "_sum"],
          [{}, 2, "_count"]
        ]
      }
    ])
    const parsed = parse(text)
    assert.strictEqual(parsed.get("demo_total")?.help, "a \\ backslash\nand a newline")
    assert.deepStrictEqual(parsed.get("demo_total")?.samples.map((s) => s.labels.name), [
      "a \"quoted\" \\ back\nslash",
      "plain"
    ])
    assert.strictEqual(total(parsed, "demo_seconds_bucket", { le: "+Inf" }), 2)
  })

  it("the parser refuses what Prometheus would not take, or a histogram that does not add up", () => {
    const family = "# HELP x_total x\n# TYPE x_total counter\n"
    const histogram = "# TYPE h histogram\n"
    for (
      const bad of [
        "x_total 1\n",
        `${family}x_total 1`,
        `${family}x_total{a="b} 1\n`,
        `${family}x_total{a="\\t"} 1\n`,
        `${family}x_total{a="1",a="2"} 1\n`,
        `${family}x_total one\n`,
        `${family}x_total -1\n`,
        `${family}x_total 1\nx_total 2\n`,
        `${family}y 1\n`,
        `${family}\nx_total 1\n`,
        `${histogram}h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n`,
        `${histogram}h_bucket{le="1"} 1\nh_sum 1\nh_count 1\n`,
        `${histogram}h_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n`,
        `${histogram}h_bucket{le="+Inf"} 1\nh_count 1\n`,
        `${histogram}h 1\n`
      ]
    ) assert.throws(() => parse(bad), undefined, undefined, bad)
    assert.strictEqual(total(parse(`${family}x_total{a="b"} 1\nx_total{a="c"} 2\n`), "x_total"), 3)
  })
})
