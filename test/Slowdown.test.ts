/**
 * Slowdown trends: a batch whose items get slower than its own baseline is found slow once, recovers
 * once its items are fast again, pauses under `pauseOnSlowdown`, and shows it over `GetTrends` and
 * `/metrics` (a real HTTP server over the same orchestrator). Time is the test clock.
 */
import type { BatchEvent, Ids } from "@effect-batch/domain"
import { BatchConfig } from "@effect-batch/domain"
import { BatchOrchestrator, Http, Workflow } from "@effect-batch/server"
import { TestDatabase, TrendRepo } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import { cli, ok } from "./support/Cli.js"
import { allEvents, caller, orchestrator, realPause } from "./support/Harness.js"
import { bearer, request, rpcExit, rpcLine, tokens } from "./support/HttpServer.js"
import { parse, total } from "./support/Prometheus.js"

class NeverFails extends Schema.TaggedError<NeverFails>()("NeverFails", {}) {}

/** Sleeps `ms` of the test clock. */
const timed = Workflow.make({
  name: "timed",
  input: Schema.Struct({ ms: Schema.Number }),
  output: Schema.Struct({ ms: Schema.Number }),
  error: NeverFails,
  run: (input) => Effect.as(Effect.sleep(Duration.millis(input.ms)), input)
})

/** Fast items (100 ms), then slow ones (1 s), then fast ones again. */
const phases = (fast: number, slow: number, fastAgain: number) =>
  [...Array(fast).fill(100), ...Array(slow).fill(1_000), ...Array(fastAgain).fill(100)].map((ms, i) => ({
    key: `item-${String(i).padStart(4, "0")}`,
    input: { ms }
  }))

const slowdown = { window: "1 second", baselineWindows: 2, minItems: 20, consecutive: 2, p95Above: 3 }

type Orchestrator = BatchOrchestrator.BatchOrchestrator["Type"]

/** Advances the test clock in steps, letting the database catch up between them, until `done`. */
const advanceUntil = <E>(done: Effect.Effect<boolean, E>, maxSteps = 1_500) =>
  Effect.gen(function*() {
    for (let i = 0; i < maxSteps; i++) {
      if (yield* done) return
      yield* realPause(8)
      yield* TestClock.adjust(50)
    }
    return yield* Effect.dieMessage(`condition not reached after ${maxSteps} steps`)
  })

const tagged = <T extends BatchEvent.Tag>(events: ReadonlyArray<BatchEvent.BatchEvent>, tag: T) =>
  events.filter((e): e is Extract<BatchEvent.BatchEvent, { readonly _tag: T }> => e._tag === tag)

const hasEvent = (o: Orchestrator, id: Ids.BatchId, tag: BatchEvent.Tag) =>
  Effect.map(allEvents(o, id), (events) => events.some((e) => e._tag === tag))

/** The orchestrator with a real HTTP server in front of it, on the test's clock. */
const withServer = <A, E>(body: (o: Orchestrator, url: string) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const o = yield* BatchOrchestrator.BatchOrchestrator
    return yield* body(o, yield* Http.url)
  }).pipe(
    Effect.provide(
      Http.layer({ port: 0, host: "127.0.0.1" }).pipe(
        Layer.provideMerge(Http.layerAuth([{ token: tokens.acme, tenant: "acme", actor: "alice" }])),
        Layer.provideMerge(orchestrator(timed)),
        Layer.orDie
      )
    )
  )

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "240 seconds" })(`slowdown trends (${name})`, (it) => {
    it.effect("items that get slower: one SlowdownDetected with its figures, GetTrends and the gauge say slow; one SlowdownRecovered when they are fast again", () =>
      withServer((o, url) =>
        Effect.gen(function*() {
          const batch = yield* o.submitEncoded(
            timed.name,
            phases(60, 30, 100),
            { concurrency: 2, slowdown },
            caller
          )
          yield* advanceUntil(hasEvent(o, batch.id, "SlowdownDetected"))

          const trends = yield* o.trends(caller, batch.id)
          assert.strictEqual(trends.status, "slow")
          assert.isDefined(trends.baseline)
          assert.isAtLeast(trends.windows.length, 4)

          const answer = yield* request(`${url}/rpc`, {
            method: "POST",
            headers: { ...bearer("acme"), "content-type": "application/ndjson" },
            body: rpcLine("GetTrends", { batchId: batch.id })
          })
          const exit = rpcExit(answer)
          assert.strictEqual(exit?._tag, "Success", answer.body)
          assert.strictEqual(exit.value.status, "slow")
          assert.strictEqual(exit.value.window, "1 second")
          assert.strictEqual(exit.value.windows.length, trends.windows.length)
          const last = exit.value.windows[exit.value.windows.length - 1]
          for (const field of ["at", "completed", "throughput", "p95Ms"]) assert.property(last, field)

          const printed = ok(yield* cli(["trends", batch.id, "--url", url, "--token", tokens.acme])).trim().split("\n")
          assert.match(printed[0]!, new RegExp(`^${batch.id} slow window 1 second \\| baseline [\\d.]+/s p95 100 ms`))
          assert.match(printed[printed.length - 1]!, /completed \d+ [\d.]+\/s p95 (\d+ ms|-) waiting \d+$/)

          const metrics = yield* request(`${url}/metrics`)
          assert.strictEqual(metrics.status, 200)
          assert.strictEqual(total(parse(metrics.body), "effect_batch_batches_slow"), 1)

          yield* advanceUntil(
            Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Completed"),
            3_000
          )
          const events = yield* allEvents(o, batch.id)
          const detected = tagged(events, "SlowdownDetected")
          const recovered = tagged(events, "SlowdownRecovered")
          assert.strictEqual(detected.length, 1)
          assert.strictEqual(recovered.length, 1)
          assert.isBelow(detected[0]!.seq, recovered[0]!.seq)
          const figures = detected[0]!
          assert.deepStrictEqual(figures.window, Duration.seconds(1))
          assert.strictEqual(figures.windows, 2)
          // fast items take 100 ms, two at a time: about 20 per second
          assert.approximately(figures.baselineP95Ms ?? 0, 100, 1)
          assert.isAbove(figures.baselineThroughput, 5)
          assert.isAtMost(figures.baselineThroughput, 20.5)
          assert.approximately(figures.p95Ms ?? 0, 1_000, 1)
          assert.isBelow(figures.throughput, figures.baselineThroughput / 2)
          assert.isAbove(recovered[0]!.throughput, figures.throughput)
          assert.isBelow(recovered[0]!.p95Ms ?? Infinity, 300)

          // sequence numbers stay gapless with the sampler appending events
          assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1))
          const done = yield* o.trends(caller, batch.id)
          assert.strictEqual(done.status, "normal")
          const after = yield* request(`${url}/metrics`)
          assert.strictEqual(total(parse(after.body), "effect_batch_batches_slow"), 0)
        })
      ))

    it.effect("pauseOnSlowdown pauses the batch through the ordinary pause (reason SlowedDown); resume runs it on", () =>
      Effect.gen(function*() {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        const batch = yield* o.submitEncoded(
          timed.name,
          phases(60, 20, 0),
          { concurrency: 2, slowdown, pauseOnSlowdown: true },
          caller
        )
        yield* advanceUntil(Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Paused"))
        const paused = yield* o.get(caller, batch.id)
        assert.strictEqual(paused.state._tag, "Paused")
        if (paused.state._tag === "Paused") {
          assert.strictEqual(paused.state.reason._tag, "SlowedDown")
          if (paused.state.reason._tag === "SlowedDown") assert.approximately(paused.state.reason.p95Ms ?? 0, 1_000, 1)
        }
        const events = yield* allEvents(o, batch.id)
        const tags = events.map((e) => e._tag)
        assert.strictEqual(tagged(events, "SlowdownDetected").length, 1)
        assert.strictEqual(tagged(events, "BatchPaused").length, 1)
        assert.isBelow(tags.indexOf("SlowdownDetected"), tags.indexOf("BatchPaused"))
        assert.strictEqual(tagged(events, "BatchPaused")[0]!.reason._tag, "SlowedDown")

        yield* o.resume(caller, batch.id)
        yield* advanceUntil(Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Completed"), 3_000)
        const done = yield* allEvents(o, batch.id)
        assert.strictEqual(tagged(done, "BatchPaused").length, 1, "not paused again while still slow")
        assert.strictEqual((yield* o.get(caller, batch.id)).counts.succeeded, 80)
      }).pipe(Effect.provide(orchestrator(timed))))

    it.effect("processes sampling the same window at once: one stores it, the others find nothing to do", () =>
      Effect.gen(function*() {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        const trends = yield* TrendRepo.TrendRepo
        const batch = yield* o.submitEncoded(timed.name, phases(0, 4, 0), { concurrency: 1, slowdown }, caller)
        const config = BatchConfig.SlowdownConfig.make({ window: Duration.seconds(1) })
        const sampleAt = (now: number) =>
          Effect.all(Array.from({ length: 4 }, () => trends.sample({ batchId: batch.id, config, now })), {
            concurrency: "unbounded"
          }).pipe(Effect.map((all) => all.filter(Option.isSome).map((s) => s.value)))
        const first = yield* sampleAt(10_000)
        assert.strictEqual(first.length, 1)
        assert.isTrue(Option.isNone(first[0]!.window), "the first sample only starts the first window")
        assert.strictEqual((yield* sampleAt(10_500)).length, 0, "the window has not lasted its length")
        const second = yield* sampleAt(11_000)
        assert.strictEqual(second.length, 1)
        assert.strictEqual(Option.getOrThrow(second[0]!.window).spanMs, 1_000)
        assert.strictEqual((yield* o.trends(caller, batch.id)).windows.length, 1)
      }).pipe(Effect.provide(orchestrator(timed))))

    it.effect("without a slowdown setting nothing is sampled", () =>
      Effect.gen(function*() {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        const batch = yield* o.submitEncoded(timed.name, phases(20, 5, 0), { concurrency: 2 }, caller)
        yield* advanceUntil(Effect.map(o.get(caller, batch.id), (b) => b.state._tag === "Completed"))
        const trends = yield* o.trends(caller, batch.id)
        assert.strictEqual(trends.status, "off")
        assert.deepStrictEqual(trends.windows, [])
      }).pipe(Effect.provide(orchestrator(timed))))
  })
}
