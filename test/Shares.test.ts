/**
 * Slot shares and leases between real worker processes on one Postgres: what `effect_batch_shares`
 * and the item rows say while processes join, die, and the batch is paused and cancelled, checked
 * against what the workflow in each process saw (its attempts' wall-clock times, written on stdout).
 */
import type { Ids } from "@effect-batch/domain"
import { BatchOrchestrator } from "@effect-batch/server"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import {
  type Attempt,
  type AttemptStarted,
  type ChildMessage,
  durableWork,
  wallClock,
  workItems
} from "./support/Durable.js"
import { caller } from "./support/Harness.js"
import {
  apiAt,
  assertCompletedOnce,
  eventTags,
  freshDatabase,
  itemStates,
  pollUntil,
  type ShareRow,
  shareRows,
  spawnWorker,
  type WorkerProcess
} from "./support/Processes.js"

const workflow = durableWork({ itemMs: 0 }).name

const isAttempt = (m: ChildMessage): m is typeof Attempt.Type => m._tag === "Attempt"
const isStarted = (m: ChildMessage): m is typeof AttemptStarted.Type => m._tag === "AttemptStarted"
const isReady = (m: ChildMessage): m is ChildMessage & { readonly _tag: "Ready" } => m._tag === "Ready"

const now = Effect.sync(wallClock)

/** Slow items: each attempt takes 300 ms of real time. */
const slowMs = 300

interface Interval {
  readonly owner: string
  readonly start: number
  readonly end: number
}

/**
 * The most attempts running at one instant, from their start and end times. At equal times an end
 * counts before a start: the slot of an attempt is only given out again after it finished.
 */
const maxOverlap = (intervals: ReadonlyArray<Interval>): number => {
  const edges = intervals.flatMap((a) => [{ at: a.start, delta: 1 }, { at: a.end, delta: -1 }])
  edges.sort((x, y) => x.at - y.at || x.delta - y.delta)
  let running = 0
  let max = 0
  for (const edge of edges) {
    running += edge.delta
    max = Math.max(max, running)
  }
  return max
}

const attemptsOf = (workers: ReadonlyArray<WorkerProcess>) => workers.flatMap((w) => w.messages().filter(isAttempt))
const startsOf = (workers: ReadonlyArray<WorkerProcess>) => workers.flatMap((w) => w.messages().filter(isStarted))

/** One reading of a batch's share rows; `at` is taken after the read returned (see `liveSlots`). */
interface Sample {
  readonly at: number
  readonly rows: ReadonlyArray<ShareRow>
}

/**
 * The slots of the rows that were live when the sample was read. `at` is later than the snapshot the
 * read saw, so a row counted here was live for every statement that snapshot contains (each grants
 * with a `now` before it committed): a row that some grant left out as expired is left out here too.
 */
const liveSlots = (sample: Sample) =>
  sample.rows.filter((r) => r.expiresAtMs >= sample.at).reduce((sum, r) => sum + r.slots, 0)

const rowOf = (sample: Sample, owner: string) => sample.rows.find((r) => r.owner === owner)

/**
 * Reads a batch's share rows every 15 ms in the background for the rest of the scope (each test runs
 * in a scope of its own inside the database layer, so that this ends before the layer closes).
 */
const sampleShares = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const samples: Array<Sample> = []
    yield* shareRows(batchId).pipe(
      Effect.flatMap((rows) => Effect.map(now, (at) => samples.push({ at, rows }))),
      Effect.repeat(Schedule.spaced("15 millis")),
      Effect.forkScoped
    )
    return () => samples as ReadonlyArray<Sample>
  })

/** Waits, up to `timeout`, for the share sample that `found` picks, polling the samples. */
const awaitSample = (
  what: string,
  samples: () => ReadonlyArray<Sample>,
  found: (sample: Sample) => boolean,
  timeout: Duration.DurationInput
) =>
  Effect.gen(function*() {
    yield* pollUntil(what, Effect.sync(() => samples().some(found)), timeout)
    const sample = samples().find(found)
    return sample!
  })

/**
 * Submits a batch paused, starts the workers, and resumes it once every worker is up, so that they
 * all compete from the first item.
 */
const startTogether = (options: {
  readonly url: string
  readonly total: number
  readonly config: Record<string, unknown>
  readonly owners: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
}) =>
  Effect.gen(function*() {
    const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
    const submitted = yield* orchestrator.submitEncoded(workflow, workItems(options.total), options.config, caller)
    yield* orchestrator.pause(caller, submitted.id, "until every worker is up")
    const workers: Array<WorkerProcess> = []
    for (const owner of options.owners) workers.push(yield* spawnWorker({ url: options.url, owner, env: options.env }))
    for (const worker of workers) yield* worker.waitFor(isReady)
    yield* orchestrator.resume(caller, submitted.id)
    return { batchId: submitted.id, workers }
  })

const awaitCompleted = (batchId: Ids.BatchId) =>
  Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (orchestrator) =>
    pollUntil(
      "the batch completes",
      Effect.map(orchestrator.get(caller, batchId), (b) => b.state._tag === "Completed")
    ))

describe("slot shares and leases between processes (Postgres, real processes)", () => {
  it.scopedLive(
    "SIGKILL while items are leased ahead: a new process runs each item to exactly one success",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const total = 2_000
          const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
          const submitted = yield* orchestrator.submitEncoded(
            workflow,
            workItems(total),
            { concurrency: 8, leaseDuration: "2 seconds" },
            caller
          )
          const batchId = submitted.id
          const first = yield* spawnWorker({ url, owner: "first", env: { ITEM_MS: "2" } })
          yield* pollUntil(
            "items leased ahead while some have succeeded",
            Effect.map(itemStates(batchId), (n) => n("leased") > 0 && n("succeeded") > 0)
          )
          yield* first.kill("SIGKILL")

          // what the dead process held stays as it left it until its lease expires
          const atKill = yield* itemStates(batchId)
          assert.isAbove(atKill("leased"), 0, "the dead process held items leased ahead")
          assert.isAbove(atKill("succeeded"), 0)
          assert.isBelow(atKill("succeeded"), total, "the batch was mid-flight")
          const heldRows = yield* shareRows(batchId)
          assert.deepStrictEqual(
            heldRows.map((r) => r.owner),
            ["first"],
            "the dead process's share row holds its lease"
          )

          const second = yield* spawnWorker({ url, owner: "second", env: { ITEM_MS: "2" } })
          yield* awaitCompleted(batchId)
          const recorded = yield* assertCompletedOnce(batchId, total)
          // leased or running, what it held is claimed again with a new attempt number (the fencing token)
          assert.isAbove(recorded.reRuns, 0, "items the dead process held started under a new attempt")
          assert.isFalse(second.exited())
          const rows = yield* shareRows(batchId)
          assert.isFalse(rows.some((r) => r.owner === "first"), "the dead process's share row was reclaimed")
        }).pipe(Effect.scoped, Effect.provide(apiAt(url)))
      }),
    60_000
  )

  it.scopedLive(
    "three processes on one batch of slow items: at most `concurrency` attempts at once, all processes work",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const total = 60
          const concurrency = 6
          const owners = ["alpha", "beta", "gamma"]
          const { batchId, workers } = yield* startTogether({
            url,
            total,
            config: { concurrency },
            owners,
            env: { ITEM_MS: String(slowMs), LOG_ATTEMPTS: "true" }
          })
          const samples = yield* sampleShares(batchId)
          yield* awaitCompleted(batchId)
          yield* assertCompletedOnce(batchId, total)

          const attempts = attemptsOf(workers)
          assert.strictEqual(attempts.length, total, "every item ran once (no process died)")
          assert.strictEqual(new Set(attempts.map((a) => a.key)).size, total)
          const overlap = maxOverlap(attempts)
          assert.isAtMost(overlap, concurrency, "never more attempts at once than the concurrency, across processes")
          assert.isAtLeast(overlap, concurrency - 1, "the attempts did run concurrently")
          const byOwner = owners.map((owner) => attempts.filter((a) => a.owner === owner).length)
          assert.isTrue(
            byOwner.every((n) => n > 0),
            `every process ran items: ${owners.map((o, i) => `${o} ran ${byOwner[i]}`).join(", ")}`
          )
          const over = samples().filter((s) => liveSlots(s) > concurrency)
          assert.deepStrictEqual(over, [], "the live shares never add up to more than the concurrency")
        }).pipe(Effect.scoped, Effect.provide(apiAt(url)))
      }),
    60_000
  )

  it.scopedLive(
    "a process that joins mid-batch gets a fair share within seconds; the shares never exceed the concurrency",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const total = 300
          const concurrency = 6
          const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
          const submitted = yield* orchestrator.submitEncoded(workflow, workItems(total), { concurrency }, caller)
          const batchId = submitted.id
          const samples = yield* sampleShares(batchId)
          const env = { ITEM_MS: String(slowMs), LOG_ATTEMPTS: "true" }
          const alpha = yield* spawnWorker({ url, owner: "alpha", env })
          yield* awaitSample(
            "alpha alone executes the whole concurrency",
            samples,
            (s) => rowOf(s, "alpha")?.executing === concurrency,
            "30 seconds"
          )

          const beta = yield* spawnWorker({ url, owner: "beta", env })
          yield* beta.waitFor(isReady)
          const joined = yield* now
          const atTwo = yield* awaitSample(
            "beta executes two attempts at once",
            samples,
            (s) => s.at >= joined && (rowOf(s, "beta")?.executing ?? 0) >= 2,
            "5 seconds"
          )
          const fair = yield* awaitSample(
            "alpha and beta hold three slots each",
            samples,
            (s) => rowOf(s, "alpha")?.slots === 3 && rowOf(s, "beta")?.slots === 3,
            "10 seconds"
          )

          yield* awaitCompleted(batchId)
          yield* assertCompletedOnce(batchId, total)

          const attempts = attemptsOf([alpha, beta])
          const betaAttempts = attempts.filter((a) => a.owner === "beta")
          assert.isAtLeast(
            maxOverlap(betaAttempts.filter((a) => a.start <= atTwo.at)),
            2,
            "beta's own attempt times show two at once by then"
          )
          assert.isAtMost(maxOverlap(attempts), concurrency, "never more attempts at once than the concurrency")
          const over = samples().filter((s) => liveSlots(s) > concurrency)
          assert.deepStrictEqual(over, [], "the live shares never add up to more than the concurrency")
          assert.isAbove(samples().length, 100, "the shares were sampled throughout")
          yield* Effect.logInfo(
            `beta executed 2 after ${atTwo.at - joined} ms, fair split after ${fair.at - joined} ms; ` +
              `alpha ran ${attempts.length - betaAttempts.length}, beta ${betaAttempts.length}`
          )
        }).pipe(Effect.scoped, Effect.provide(apiAt(url)))
      }),
    60_000
  )

  it.scopedLive(
    "a process that dies gives its share up when its lease expires; the batch completes, one outcome per item",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const total = 200
          const concurrency = 6
          const leaseMs = 2_000
          const { batchId, workers } = yield* startTogether({
            url,
            total,
            config: { concurrency, leaseDuration: "2 seconds" },
            owners: ["alpha", "beta"],
            env: { ITEM_MS: String(slowMs), LOG_ATTEMPTS: "true", LOG_STARTS: "true" }
          })
          const [alpha, beta] = workers as [WorkerProcess, WorkerProcess]
          const samples = yield* sampleShares(batchId)
          yield* awaitSample(
            "both processes execute attempts",
            samples,
            (s) => (rowOf(s, "alpha")?.executing ?? 0) > 0 && (rowOf(s, "beta")?.executing ?? 0) > 0,
            "20 seconds"
          )
          yield* alpha.kill("SIGKILL")
          const killed = yield* now
          const held = yield* itemStates(batchId, "alpha")
          assert.isAbove(held("running"), 0, "the dead process had attempts running")

          const whole = yield* awaitSample(
            "beta's share grows to the whole concurrency",
            samples,
            (s) => s.at >= killed && rowOf(s, "beta")?.slots === concurrency,
            `${leaseMs + 6_000} millis`
          )
          // the dead process's lease as it last renewed it: its slots were not given away before then
          const alphaExpiry = Math.max(...samples().flatMap((s) => rowOf(s, "alpha")?.expiresAtMs ?? []))
          assert.isAtLeast(whole.at, alphaExpiry, "the dead process's slots were given away only after its lease")
          assert.isAtMost(whole.at - killed, leaseMs + 5_000, "within the lease and a few seconds")

          yield* awaitCompleted(batchId)
          const recorded = yield* assertCompletedOnce(batchId, total)
          assert.isAbove(recorded.reRuns, 0, "the attempts the dead process had running ran again")
          const rows = yield* shareRows(batchId)
          assert.isFalse(rows.some((r) => r.owner === "alpha"), "the dead process's share row was reclaimed")

          // the dead process's unfinished attempts count as running until it died
          const finished = new Set(alpha.messages().filter(isAttempt).map((a) => `${a.key}#${a.attempt}`))
          const cut = startsOf([alpha]).filter((s) => !finished.has(`${s.key}#${s.attempt}`))
          assert.isAbove(cut.length, 0, "the kill cut attempts short")
          const intervals: Array<Interval> = [
            ...attemptsOf([alpha, beta]),
            ...cut.map((s) => ({ owner: s.owner, start: s.start, end: killed }))
          ]
          assert.isAtMost(maxOverlap(intervals), concurrency, "never more attempts at once than the concurrency")
          const over = samples().filter((s) => liveSlots(s) > concurrency)
          assert.deepStrictEqual(over, [], "the live shares never add up to more than the concurrency")
          yield* Effect.logInfo(`beta held the whole concurrency ${whole.at - killed} ms after the kill`)
        }).pipe(Effect.scoped, Effect.provide(apiAt(url)))
      }),
    60_000
  )

  it.scopedLive(
    "pause leaves nothing leased and starts nothing; resume; cancel starts nothing after it returns",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        yield* Effect.gen(function*() {
          const total = 300
          const concurrency = 6
          const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
          const submitted = yield* orchestrator.submitEncoded(workflow, workItems(total), { concurrency }, caller)
          const batchId = submitted.id
          const batch = orchestrator.get(caller, batchId)
          const worker = yield* spawnWorker({
            url,
            owner: "alpha",
            // the engine's default poll: what a command changes must not wait for the worker to poll
            env: { ITEM_MS: String(slowMs), LOG_ATTEMPTS: "true", LOG_STARTS: "true", POLL_MS: "1000" }
          })
          const starts = () => startsOf([worker])
          /** what went wrong about when attempts start, reported together at the end */
          const late: Array<string> = []
          /** the attempts that started after `since`, each with where its start mark is in the event log */
          const startedAfter = (command: string, since: number) =>
            Effect.gen(function*() {
              const list = starts().filter((s) => s.start > since)
              if (list.length === 0) return
              const events = yield* eventTags(batchId)
              const commandSeq = events.find((e) => e.tag === command)?.seq
              const described = list.map((s) => {
                const mark = events.find((e) => e.tag === "ItemStarted" && e.key === s.key && e.attempt === s.attempt)
                const recorded = mark === undefined ? "no ItemStarted recorded" : `ItemStarted at seq ${mark.seq}`
                return `${s.key} (attempt ${s.attempt}) at +${s.start - since} ms, ${recorded}`
              })
              late.push(
                `started after the ${command} command returned (${command} at seq ${commandSeq}): ${
                  described.join("; ")
                }`
              )
            })

          // past the first attempts (whose start marks commit together), items leased ahead, attempts running
          yield* pollUntil(
            "attempts in steady state with items leased ahead",
            Effect.map(
              itemStates(batchId),
              (n) => n("succeeded") >= 2 * concurrency && n("leased") > 0 && n("running") > 0
            ),
            "30 seconds"
          )
          yield* orchestrator.pause(caller, batchId, "test")
          const paused = yield* now
          yield* pollUntil(
            "the running attempts finish",
            Effect.map(batch, (b) => b.counts.running === 0),
            "10 seconds"
          )
          const states = yield* itemStates(batchId)
          assert.strictEqual(states("leased"), 0, "no item is left leased while paused")
          assert.strictEqual(states("running"), 0)
          // a process reports a lower grant with its next statement, at once
          yield* pollUntil(
            "a paused batch grants no slots",
            Effect.map(shareRows(batchId), (rows) => rows.every((r) => r.slots === 0 && r.executing === 0)),
            "2 seconds"
          )
          const quiet = starts().length
          yield* Effect.sleep("1500 millis")
          assert.strictEqual(starts().length, quiet, "no attempt starts while paused")
          yield* startedAfter("BatchPaused", paused)

          yield* orchestrator.resume(caller, batchId)
          const resumed = yield* now
          yield* pollUntil(
            "attempts run again, in steady state, with items leased ahead",
            Effect.zipWith(
              itemStates(batchId),
              Effect.sync(() => starts().filter((s) => s.start >= resumed).length),
              (n, restarted) => restarted >= 2 * concurrency && n("leased") > 0 && n("running") > 0
            ),
            "10 seconds"
          )
          yield* orchestrator.cancel(caller, batchId, "test")
          const cancelled = yield* now
          // the runner is done once it gave its share row back
          yield* pollUntil(
            "the runner stops",
            Effect.map(shareRows(batchId), (rows) => rows.length === 0),
            "10 seconds"
          )
          yield* Effect.sleep("1 second")
          yield* startedAfter("BatchCancelled", cancelled)

          const final = yield* batch
          assert.strictEqual(final.state._tag, "Cancelled")
          const rows = yield* itemStates(batchId)
          assert.strictEqual(rows("succeeded") + rows("skipped"), total, "every item settled: succeeded or skipped")
          assert.isAbove(rows("skipped"), 0)
          const events = yield* eventTags(batchId)
          const outcomes = events.filter((e) => e.tag === "ItemSucceeded" || e.tag === "ItemSkipped")
          assert.strictEqual(outcomes.length, total, "one outcome per item")
          assert.strictEqual(new Set(outcomes.map((e) => e.key)).size, total)
          const cancelledSeq = events.find((e) => e.tag === "BatchCancelled")?.seq ?? Infinity
          assert.deepStrictEqual(
            events.filter((e) => e.seq > cancelledSeq),
            [],
            "nothing is recorded after BatchCancelled"
          )
          assert.deepStrictEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), "sequences are gapless")

          assert.strictEqual(late.join("\n"), "", "no attempt starts once a pause or a cancel has returned")
        }).pipe(Effect.scoped, Effect.provide(apiAt(url)))
      }),
    60_000
  )
})
