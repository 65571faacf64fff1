import { BatchOrchestrator, Workflow } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { caller, orchestrator } from "./support/Harness.js"
import { ledger } from "./support/Processes.js"

/**
 * Postgres refuses a NUL character in `text` and `jsonb` and replaces a lone surrogate. A workflow
 * whose output, error or step output holds one must not fail every statement that records it (the
 * batch would stop forever): the item gets a clear outcome and the batch goes on.
 */

class Odd extends Schema.TaggedError<Odd>()("Odd", { note: Schema.String }) {}

const odd = Workflow.make({
  name: "odd",
  input: Schema.Struct({ kind: Schema.String }),
  output: Schema.Struct({ text: Schema.String }),
  error: Odd,
  retryable: () => false,
  run: (input, ctx) => {
    switch (input.kind) {
      case "nul-output":
        return Effect.succeed({ text: "a\u0000b" })
      case "surrogate-output":
        return Effect.succeed({ text: "lone \ud800 here" })
      case "nul-error":
        return Effect.fail(new Odd({ note: "bad \u0000 note" }))
      case "surrogate-message":
        return Effect.die(new Error("broken \udc00 message"))
      case "nul-step":
        return ctx.step("extract", Effect.succeed({ text: "x\u0000" }), {
          output: Schema.Struct({ text: Schema.String })
        })
      case "pair":
        // a well-formed surrogate pair is ordinary text
        return Effect.succeed({ text: "emoji \ud83d\ude00" })
      default:
        return Effect.succeed({ text: input.kind })
    }
  }
})

const kinds = ["nul-output", "surrogate-output", "nul-error", "surrogate-message", "nul-step", "pair", "plain"]

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "60 seconds", excludeTestServices: true })(`unstorable outcomes (${name})`, (it) => {
    it.scoped("an output, error or step output the database would refuse gets a clear outcome; the batch completes", () =>
      Effect.gen(function*() {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        const submitted = yield* o.submitEncoded(
          odd.name,
          kinds.map((kind) => ({ key: kind, input: { kind } })),
          { concurrency: 4, retry: { maxAttempts: 1 } },
          caller
        )
        const done = yield* o.await(caller, submitted.id)
        assert.strictEqual(done.state._tag, "Completed", "the batch was not stopped by a statement Postgres refuses")
        const results = Chunk.toReadonlyArray(yield* Stream.runCollect(o.results(caller, submitted.id)))
        const byKey = new Map<string, typeof results[number]>(results.map((r) => [r.key, r]))

        for (const key of ["nul-output", "surrogate-output"]) {
          const r = byKey.get(key)
          assert.strictEqual(r?.state, "Failed", key)
          assert.strictEqual(r?.error?.category, "fatal", key)
          assert.match(r?.error?.message ?? "", /the output cannot be stored: the string at output\.text contains/)
        }
        const step = byKey.get("nul-step")
        assert.strictEqual(step?.state, "Failed")
        assert.strictEqual(step?.error?.tag, "StepOutputUnstorable")
        assert.match(step?.error?.message ?? "", /output of step "extract" cannot be stored: .*NUL/)

        const error = byKey.get("nul-error")
        assert.strictEqual(error?.state, "Failed")
        assert.strictEqual(error?.error?.tag, "Odd")
        assert.match(error?.error?.message ?? "", /details not stored: the string at details\.note contains a NUL/)
        assert.isUndefined(error?.error?.details, "details the database would refuse are left out")
        const defect = byKey.get("surrogate-message")
        assert.strictEqual(defect?.state, "Failed")
        assert.strictEqual(defect?.error?.message, "broken \ufffd message", "the message is stored as it reads")

        assert.deepStrictEqual(byKey.get("pair")?.output, { text: "emoji \ud83d\ude00" })
        assert.deepStrictEqual(byKey.get("plain")?.output, { text: "plain" })

        const recorded = yield* ledger(submitted.id)
        assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
        assert.strictEqual(recorded.maxSeq, recorded.events, "sequences are gapless")
      }).pipe(Effect.provide(orchestrator(odd))))
  })
}
