import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import { BatchCommand, BatchEvent, BatchState, ItemCounts, Transition } from "../src/index.js"
import * as Samples from "./Samples.js"

/**
 * Random commands: mostly the samples (without `Cancel`, which ends every run it lands in) so that runs
 * reach every state often, mixed with fully random commands (any tag, any field values).
 */
const command: FastCheck.Arbitrary<BatchCommand.BatchCommand> = FastCheck.oneof(
  { arbitrary: FastCheck.constantFrom(...Samples.allCommands.filter((c) => c._tag !== "Cancel")), weight: 6 },
  {
    arbitrary: FastCheck.boolean().map((review) =>
      BatchCommand.Settle.make({ at: Samples.later, summary: Samples.summary, review })
    ),
    weight: 2
  },
  { arbitrary: Arbitrary.make(BatchCommand.BatchCommand), weight: 2 }
)

const commands = FastCheck.array(command, { minLength: 10, maxLength: 80, size: "max" })

const accepts = (state: BatchState.BatchState, command: BatchCommand.BatchCommand): boolean =>
  Either.isRight(Transition.transition(state, command))

describe("Transition properties", () => {
  it.prop("a terminal batch accepts only a redrive, and a cancelled one nothing", [commands], ([run]) => {
    let state: BatchState.BatchState = Samples.states.Pending
    for (const next of run) {
      if (BatchState.isTerminal(state)) {
        const accepted = Samples.allCommands.filter((c) => accepts(state, c)).map((c) => c._tag)
        assert.deepStrictEqual(accepted, state._tag === "Cancelled" ? [] : ["RetryFailed"], state._tag)
      }
      const result = Transition.transition(state, next)
      assert.strictEqual(Either.isRight(result), Transition.allowed[state._tag].includes(next._tag))
      if (Either.isRight(result)) {
        if (BatchState.isTerminal(state)) {
          assert.strictEqual(next._tag, "RetryFailed")
          assert.strictEqual(result.right.state._tag, "Running")
        }
        state = result.right.state
      } else {
        assert.strictEqual(result.left.state, state._tag)
        assert.strictEqual(result.left.command, next._tag)
      }
    }
  })

  it.prop("the round never decreases, and grows only by redrive or next round", [commands], ([run]) => {
    let state: BatchState.BatchState = Samples.states.Pending
    let round = 0
    for (const next of run) {
      const result = Transition.transition(state, next)
      if (Either.isLeft(result)) continue
      state = result.right.state
      const now = "round" in state ? state.round : round
      if (next._tag === "RetryFailed" || next._tag === "NextRound") {
        assert.strictEqual(now, round + 1)
      } else if (next._tag === "Start") {
        assert.strictEqual(now, 1)
      } else {
        assert.strictEqual(now, round)
      }
      round = now
    }
  })

  it.prop(
    "stored events get strictly increasing, gapless sequence numbers, and a terminal event ends a stream",
    [commands],
    ([run]) => {
      // a store: appends the events of each accepted command under a running sequence counter
      let state: BatchState.BatchState = Samples.states.Pending
      let lastSeq = 0
      const log: Array<BatchEvent.BatchEvent> = []
      let expectedCount = 0
      for (const next of run) {
        const result = Transition.transition(state, next)
        if (Either.isLeft(result)) continue
        state = result.right.state
        expectedCount += result.right.events.length
        for (const draft of result.right.events) {
          lastSeq += 1
          log.push({ ...draft, batchId: Samples.batchId, seq: lastSeq, at: next.at })
        }
      }
      assert.strictEqual(log.length, expectedCount)
      assert.deepStrictEqual(log.map((e) => e.seq), Array.from({ length: log.length }, (_, i) => i + 1))
      log.forEach((event, i) => {
        const previous = log[i - 1]
        if (previous === undefined) return
        assert.isAbove(event.seq, previous.seq)
        // after the end of a stream, only a redrive starts a new one
        if (BatchEvent.isTerminal(previous)) assert.strictEqual(event._tag, "BatchRedriven")
      })
      for (const event of log) {
        assert.isTrue(Schema.is(BatchEvent.BatchEvent)(event), event._tag)
      }
    }
  )
})

describe("ItemCounts properties", () => {
  const field = FastCheck.constantFrom(...ItemCounts.fields)
  const counts = FastCheck.record({
    queued: FastCheck.nat({ max: 1_000 }),
    running: FastCheck.nat({ max: 1_000 }),
    retryScheduled: FastCheck.nat({ max: 1_000 }),
    succeeded: FastCheck.nat({ max: 1_000 }),
    failed: FastCheck.nat({ max: 1_000 }),
    quarantined: FastCheck.nat({ max: 1_000 }),
    skipped: FastCheck.nat({ max: 1_000 })
  }).map((c) => ItemCounts.ItemCounts.make(c))
  const moves = FastCheck.array(
    FastCheck.record({ from: field, to: field, n: FastCheck.nat({ max: 1_500 }) }),
    { maxLength: 100 }
  )

  it.prop("moves keep the total and never make a count negative", [counts, moves], ([start, run]) => {
    const total = ItemCounts.total(start)
    let c = start
    for (const { from, n, to } of run) {
      const before = c
      c = ItemCounts.move(c, from, to, n)
      assert.strictEqual(ItemCounts.total(c), total)
      assert.strictEqual(ItemCounts.settled(c) + ItemCounts.pending(c), total)
      for (const f of ItemCounts.fields) assert.isAtLeast(c[f], 0, f)
      if (from !== to) {
        // moves what there is, at most n
        const moved = Math.min(n, before[from])
        assert.strictEqual(c[from], before[from] - moved)
        assert.strictEqual(c[to], before[to] + moved)
      }
    }
    assert.isTrue(Schema.is(ItemCounts.ItemCounts)(c))
  })

  it("empty counts nothing", () => {
    assert.strictEqual(ItemCounts.total(ItemCounts.empty), 0)
    assert.deepStrictEqual(ItemCounts.move(ItemCounts.empty, "queued", "running", 5), ItemCounts.empty)
  })
})
