import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { BatchCommand, BatchEvent, BatchState, Transition } from "../src/index.js"
import * as Samples from "./Samples.js"

type Outcome = readonly [next: BatchState.Tag, events: ReadonlyArray<BatchEvent.Tag>]

/**
 * The documented transition table: for each state, the accepted commands with the next state and the
 * events they record (with the sample commands, where `Settle` carries `review: false`).
 */
const expected: { readonly [S in BatchState.Tag]: { readonly [C in BatchCommand.Tag]?: Outcome } } = {
  Pending: {
    Start: ["Running", ["BatchStarted"]],
    Cancel: ["Cancelled", ["BatchCancelled"]],
    UpdateConfig: ["Pending", ["ConfigChanged"]]
  },
  Running: {
    Pause: ["Paused", ["BatchPaused"]],
    Cancel: ["Cancelled", ["BatchCancelled"]],
    Settle: ["Completed", ["BatchCompleted"]],
    NextRound: ["Running", ["BatchRedriven"]],
    Fail: ["Failed", ["BatchFailed"]],
    UpdateConfig: ["Running", ["ConfigChanged"]]
  },
  Paused: {
    Resume: ["Running", ["BatchResumed"]],
    Cancel: ["Cancelled", ["BatchCancelled"]],
    UpdateConfig: ["Paused", ["ConfigChanged"]]
  },
  AwaitingReview: {
    Approve: ["Completed", ["BatchApproved", "BatchCompleted"]],
    Reject: ["Rejected", ["BatchRejected"]],
    Cancel: ["Cancelled", ["BatchCancelled"]]
  },
  Completed: { RetryFailed: ["Running", ["BatchRedriven", "BatchStarted"]] },
  Failed: { RetryFailed: ["Running", ["BatchRedriven", "BatchStarted"]] },
  Cancelled: {},
  Rejected: { RetryFailed: ["Running", ["BatchRedriven", "BatchStarted"]] }
}

const eventTags = (t: Transition.Transition) => t.events.map((e) => e._tag)

const accept = (state: BatchState.BatchState, command: BatchCommand.BatchCommand): Transition.Transition =>
  Either.getOrThrowWith(
    Transition.transition(state, command),
    (e) => new Error(`expected ${command._tag} to be accepted in ${state._tag}: ${e.message}`)
  )

describe("Transition.transition", () => {
  it("the samples cover every state and every command: 8 × 11 pairs", () => {
    assert.deepStrictEqual(Samples.allStates.map((s) => s._tag), [...BatchState.Tag.literals])
    assert.deepStrictEqual(Samples.allCommands.map((c) => c._tag), [...BatchCommand.tags])
    assert.strictEqual(BatchCommand.BatchCommand.members.length, 11)
    assert.strictEqual(Samples.allStates.length * Samples.allCommands.length, 88)
  })

  it("the expected table lists exactly the allowed pairs", () => {
    for (const tag of BatchState.Tag.literals) {
      assert.deepStrictEqual(
        Object.keys(expected[tag]).sort(),
        [...Transition.allowed[tag]].sort(),
        `accepted commands of ${tag}`
      )
    }
  })

  describe("every state × command pair", () => {
    for (const state of Samples.allStates) {
      for (const command of Samples.allCommands) {
        const outcome = expected[state._tag][command._tag]
        if (outcome !== undefined) {
          const [next, events] = outcome
          it(`${state._tag} + ${command._tag} -> ${next} [${events.join(", ")}]`, () => {
            assert.isTrue(Transition.allowed[state._tag].includes(command._tag))
            const result = accept(state, command)
            assert.strictEqual(result.state._tag, next)
            assert.deepStrictEqual(eventTags(result), events)
          })
        } else {
          it(`${state._tag} + ${command._tag} -> InvalidTransition`, () => {
            assert.isFalse(Transition.allowed[state._tag].includes(command._tag))
            const result = Transition.transition(state, command)
            assert.isTrue(Either.isLeft(result))
            if (Either.isLeft(result)) {
              assert.strictEqual(result.left._tag, "InvalidTransition")
              assert.strictEqual(result.left.state, state._tag)
              assert.strictEqual(result.left.command, command._tag)
              assert.strictEqual(result.left.message, `cannot ${command._tag} a batch that is ${state._tag}`)
            }
          })
        }
      }
    }
  })

  describe("Settle", () => {
    it("with review goes to AwaitingReview and requests a review", () => {
      const settle = BatchCommand.Settle.make({ at: Samples.later, summary: Samples.summary, review: true })
      const result = accept(Samples.states.Running, settle)
      assert.deepStrictEqual(
        result.state,
        new BatchState.AwaitingReview({ since: Samples.later, round: 1, summary: Samples.summary })
      )
      assert.deepStrictEqual(result.events, [{ _tag: "ReviewRequested", summary: Samples.summary }])
    })

    it("without review completes the batch", () => {
      const settle = BatchCommand.Settle.make({ at: Samples.later, summary: Samples.summary, review: false })
      const result = accept(Samples.states.Running, settle)
      assert.deepStrictEqual(
        result.state,
        new BatchState.Completed({ since: Samples.later, round: 1, summary: Samples.summary })
      )
      assert.deepStrictEqual(result.events, [{ _tag: "BatchCompleted", summary: Samples.summary }])
    })
  })

  describe("RetryFailed (redrive)", () => {
    for (const state of [Samples.states.Completed, Samples.states.Failed, Samples.states.Rejected]) {
      it(`from ${state._tag} runs the next round`, () => {
        const result = accept(state, Samples.commands.RetryFailed)
        const round = state.round + 1
        assert.deepStrictEqual(result.state, new BatchState.Running({ since: Samples.later, round }))
        assert.deepStrictEqual(result.events, [
          { _tag: "BatchRedriven", actor: "ann", round, requeued: 3 },
          { _tag: "BatchStarted", round }
        ])
      })
    }
  })

  it("Start begins round 1", () => {
    const result = accept(Samples.states.Pending, Samples.commands.Start)
    assert.deepStrictEqual(result.state, new BatchState.Running({ since: Samples.later, round: 1 }))
    assert.deepStrictEqual(result.events, [{ _tag: "BatchStarted", round: 1 }])
  })

  it("NextRound increments the round of a running batch", () => {
    const running = new BatchState.Running({ since: Samples.at, round: 2 })
    const result = accept(running, Samples.commands.NextRound)
    assert.deepStrictEqual(result.state, new BatchState.Running({ since: Samples.later, round: 3 }))
    assert.deepStrictEqual(result.events, [{
      _tag: "BatchRedriven",
      actor: "retry-failed policy",
      round: 3,
      requeued: 2
    }])
  })

  it("Pause keeps the round and records the reason; Resume keeps the round", () => {
    const running = new BatchState.Running({ since: Samples.at, round: 4 })
    const paused = accept(running, Samples.commands.Pause)
    assert.deepStrictEqual(
      paused.state,
      new BatchState.Paused({ since: Samples.later, round: 4, reason: Samples.commands.Pause.reason })
    )
    assert.deepStrictEqual(paused.events, [{ _tag: "BatchPaused", reason: Samples.commands.Pause.reason }])
    const resumed = accept(paused.state, Samples.commands.Resume)
    assert.deepStrictEqual(resumed.state, new BatchState.Running({ since: Samples.later, round: 4 }))
    assert.deepStrictEqual(resumed.events, [{ _tag: "BatchResumed", actor: "ann" }])
  })

  it("Approve completes with the reviewed summary and the approver", () => {
    const result = accept(Samples.states.AwaitingReview, Samples.commands.Approve)
    assert.deepStrictEqual(
      result.state,
      new BatchState.Completed({ since: Samples.later, round: 1, summary: Samples.summary, approvedBy: "bob" })
    )
    assert.deepStrictEqual(result.events, [
      { _tag: "BatchApproved", actor: "bob", note: "looks right" },
      { _tag: "BatchCompleted", summary: Samples.summary }
    ])
  })

  it("Reject records the reviewer and the note", () => {
    const result = accept(Samples.states.AwaitingReview, Samples.commands.Reject)
    assert.deepStrictEqual(
      result.state,
      new BatchState.Rejected({
        since: Samples.later,
        round: 1,
        summary: Samples.summary,
        actor: "carol",
        note: "totals look off"
      })
    )
  })

  it("Fail records the reason and the summary", () => {
    const result = accept(Samples.states.Running, Samples.commands.Fail)
    assert.deepStrictEqual(
      result.state,
      new BatchState.Failed({
        since: Samples.later,
        round: 1,
        reason: Samples.commands.Fail.reason,
        summary: Samples.summary
      })
    )
    assert.deepStrictEqual(result.events, [{
      _tag: "BatchFailed",
      reason: Samples.commands.Fail.reason,
      summary: Samples.summary
    }])
  })

  it("Cancel records who cancelled and why, from every cancellable state", () => {
    for (const state of [Samples.states.Pending, Samples.states.Running, Samples.states.Paused]) {
      const result = accept(state, Samples.commands.Cancel)
      assert.deepStrictEqual(
        result.state,
        new BatchState.Cancelled({ since: Samples.later, actor: "ann", note: "no longer needed" })
      )
      assert.deepStrictEqual(result.events, [{ _tag: "BatchCancelled", actor: "ann", note: "no longer needed" }])
    }
  })

  it("UpdateConfig leaves the state as it is and records the patch", () => {
    for (const state of [Samples.states.Pending, Samples.states.Running, Samples.states.Paused]) {
      const result = accept(state, Samples.commands.UpdateConfig)
      assert.strictEqual(result.state, state)
      assert.deepStrictEqual(result.events, [{ _tag: "ConfigChanged", patch: Samples.patch }])
    }
  })
})
