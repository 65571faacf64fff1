/**
 * Exhaustiveness is checked by the compiler: `bun run check` type-checks this file, so it fails if a
 * `Match.typeTags` over `BatchState` stops requiring every state (the `@ts-expect-error` below would
 * then be unused), or if a state is added without a case here.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Match from "effect/Match"
import { BatchState, Transition } from "../src/index.js"
import * as Samples from "./Samples.js"

const describeState = Match.typeTags<BatchState.BatchState, string>()({
  Pending: () => "waiting to start",
  Running: (s) => `running round ${s.round}`,
  Paused: (s) => `paused by ${s.reason._tag}`,
  AwaitingReview: (s) => `awaiting review of ${s.summary.total} items`,
  Completed: (s) => `completed round ${s.round}`,
  Failed: (s) => `failed: ${s.reason._tag}`,
  Cancelled: (s) => `cancelled by ${s.actor}`,
  Rejected: (s) => `rejected by ${s.actor}`
})

const withoutRejected = Match.typeTags<BatchState.BatchState, string>()(
  // @ts-expect-error a match that forgets a state (here `Rejected`) does not compile
  {
    Pending: () => "waiting to start",
    Running: () => "running",
    Paused: () => "paused",
    AwaitingReview: () => "awaiting review",
    Completed: () => "completed",
    Failed: () => "failed",
    Cancelled: () => "cancelled"
  }
)

// every state has a row in the transition table: a missing key is a compile error
const rows: Record<BatchState.Tag, number> = {
  Pending: Transition.allowed.Pending.length,
  Running: Transition.allowed.Running.length,
  Paused: Transition.allowed.Paused.length,
  AwaitingReview: Transition.allowed.AwaitingReview.length,
  Completed: Transition.allowed.Completed.length,
  Failed: Transition.allowed.Failed.length,
  Cancelled: Transition.allowed.Cancelled.length,
  Rejected: Transition.allowed.Rejected.length
}

describe("BatchState exhaustiveness", () => {
  it("an exhaustive match handles every state", () => {
    assert.deepStrictEqual(Samples.allStates.map(describeState), [
      "waiting to start",
      "running round 1",
      "paused by PausedByUser",
      "awaiting review of 10 items",
      "completed round 2",
      "failed: ItemFailedFinally",
      "cancelled by ann",
      "rejected by carol"
    ])
  })

  it("the non-exhaustive match has no case for the forgotten state", () => {
    assert.strictEqual(withoutRejected(Samples.states.Completed), "completed")
    assert.throws(() => withoutRejected(Samples.states.Rejected))
  })

  it("the transition table has a row for every state, and only Cancelled accepts nothing", () => {
    assert.deepStrictEqual(Object.keys(Transition.allowed).sort(), [...BatchState.Tag.literals].sort())
    assert.deepStrictEqual(
      BatchState.Tag.literals.filter((tag) => rows[tag] === 0),
      ["Cancelled"]
    )
  })
})
