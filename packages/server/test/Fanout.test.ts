import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Fanout from "../src/internal/Fanout.js"

interface Event {
  readonly seq: number
}

/** A log of events `1..n` that grows as the test appends, read like the event log. */
const makeLog = () => {
  const events: Array<Event> = []
  let reads = 0
  return {
    append: (n: number) => {
      for (let i = 0; i < n; i++) events.push({ seq: events.length + 1 })
      return events.slice(events.length - n)
    },
    readAfter: (after: number, limit: number) =>
      Effect.sync(() => {
        reads++
        return events.filter((e) => e.seq > after).slice(0, limit)
      }),
    reads: () => reads
  }
}

/** A sink that records what it is given, and when it is ended. */
const makeSink = Effect.map(Deferred.make<void>(), (ended) => {
  const received: Array<number> = []
  const deliveries: Array<ReadonlyArray<Event>> = []
  const sink: Fanout.Sink<Event> = {
    deliver: (events) => {
      deliveries.push(events)
      for (const e of events) received.push(e.seq)
    },
    end: () => Deferred.unsafeDone(ended, Effect.void)
  }
  return { sink, received, deliveries, ended }
})

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe("Fanout", () => {
  it.scoped("a subscriber replays the log, joins live with no gap and no duplicate, and ends at its last event", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const live = yield* Queue.unbounded<Event>()
      const hub = yield* Fanout.make({ live, readAfter: log.readAfter })
      log.append(2_500)
      const a = yield* makeSink
      const fiber = yield* Effect.fork(hub.join(100, (e) => e.seq >= 3_000, a.sink))
      // live events arrive while the subscriber is still reading the log: some it has already read
      yield* Queue.offerAll(live, log.append(300))
      yield* Effect.yieldNow()
      yield* Queue.offerAll(live, log.append(300))
      yield* Deferred.await(a.ended)
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(a.received, range(101, 3_000))
    }))

  it.scopedLive("up-to-date subscribers get the same array; one that sees a gap refills it from the log", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const live = yield* Queue.unbounded<Event>()
      const hub = yield* Fanout.make({ live, readAfter: log.readAfter })
      log.append(10)
      const a = yield* makeSink
      const b = yield* makeSink
      yield* Effect.fork(hub.join(0, (e) => e.seq >= 40, a.sink))
      yield* Effect.fork(hub.join(5, (e) => e.seq >= 40, b.sink))
      yield* Effect.sleep("10 millis")
      const batch = log.append(10)
      yield* Queue.offerAll(live, batch)
      yield* Effect.sleep("10 millis")
      const shared = a.deliveries[a.deliveries.length - 1]
      assert.strictEqual(shared, b.deliveries[b.deliveries.length - 1])
      assert.deepStrictEqual(shared?.map((e) => e.seq), range(11, 20))
      // the tailer's buffer slid past events 21..30: only 31..40 reach the hub
      log.append(10)
      const reads = log.reads()
      yield* Queue.offerAll(live, log.append(10))
      yield* Deferred.await(a.ended)
      yield* Deferred.await(b.ended)
      assert.isAbove(log.reads(), reads)
      assert.deepStrictEqual(a.received, range(1, 40))
      assert.deepStrictEqual(b.received, range(6, 40))
    }))

  it.scopedLive("a subscriber that leaves is no longer fed; the others go on", () =>
    Effect.gen(function*() {
      const log = makeLog()
      const live = yield* Queue.unbounded<Event>()
      const hub = yield* Fanout.make({ live, readAfter: log.readAfter })
      const a = yield* makeSink
      const b = yield* makeSink
      const leaving = yield* Effect.forkScoped(Effect.scoped(hub.join(0, () => false, a.sink)))
      yield* Effect.forkScoped(hub.join(0, () => false, b.sink))
      yield* Effect.sleep("10 millis")
      yield* Queue.offerAll(live, log.append(5))
      yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(leaving)
      yield* Queue.offerAll(live, log.append(5))
      yield* Effect.sleep("10 millis")
      assert.deepStrictEqual(a.received, range(1, 5))
      assert.deepStrictEqual(b.received, range(1, 10))
      assert.isFalse(yield* Deferred.isDone(a.ended))
    }))
})
