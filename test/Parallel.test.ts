import { BatchOrchestrator, Workflow } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { caller, orchestrator } from "./support/Harness.js"

/**
 * One deterministic workflow run at concurrency 1 and at 32: the results are equal — exactly for
 * strings and integers, within 1e-10 relative for floats — and in the same (key) order, whatever the
 * order the attempts finished in.
 */

class NoError extends Schema.TaggedError<NoError>()("NoError", {}) {}

const Output = Schema.Struct({ digest: Schema.String, sum: Schema.Int, mean: Schema.Number, root: Schema.Number })

const compute = Workflow.make({
  name: "compute",
  input: Schema.Struct({ seed: Schema.Int, size: Schema.Int }),
  output: Output,
  error: NoError,
  run: (input) =>
    Effect.gen(function*() {
      // a different pause per attempt, so that items finish out of order at concurrency 32
      yield* Effect.sleep(`${yield* Random.nextIntBetween(0, 4)} millis`)
      const values = Array.from({ length: input.size }, (_, i) => ((input.seed * 7_919 + i * 104_729) % 10_007) - 5_000)
      const sum = values.reduce((a, b) => a + b, 0)
      const mean = values.reduce((a, b) => a + b / 3, 0) / values.length
      const root = Math.sqrt(values.reduce((a, b) => a + b * b, 0)) / 7
      const digest = values.map((v) => (v & 0xff).toString(16).padStart(2, "0")).join("").slice(0, 32)
      return { digest, sum, mean, root }
    })
})

const inputs = Array.from({ length: 200 }, (_, i) => ({
  key: `item-${String(i).padStart(4, "0")}`,
  input: { seed: i * 31 + 7, size: 50 + (i % 97) }
}))

const close = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-10 * Math.max(Math.abs(a), Math.abs(b))

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "120 seconds", excludeTestServices: true })(`parallel equals sequential (${name})`, (it) => {
    it.scoped("200 items at concurrency 1 and at 32 give equal results in the same order", () =>
      Effect.gen(function*() {
        const o = yield* BatchOrchestrator.BatchOrchestrator
        const resultsAt = (concurrency: number) =>
          Effect.gen(function*() {
            const batch = yield* o.submitEncoded(compute.name, inputs, { concurrency }, caller)
            const done = yield* o.await(caller, batch.id)
            assert.strictEqual(done.state._tag, "Completed")
            const events = Chunk.toReadonlyArray(yield* Stream.runCollect(o.events(caller, batch.id, 0)))
            const finished = events.flatMap((e) => e._tag === "ItemSucceeded" ? [e.itemKey] : [])
            assert.strictEqual(finished.length, inputs.length)
            const inOrder = finished.every((key, n) => n === 0 || finished[n - 1]! < key)
            assert.strictEqual(inOrder, concurrency === 1, "in order at concurrency 1 only")
            return Chunk.toReadonlyArray(yield* Stream.runCollect(o.results(caller, batch.id)))
          })
        const sequential = yield* resultsAt(1)
        const parallel = yield* resultsAt(32)
        assert.strictEqual(sequential.length, inputs.length)
        assert.deepStrictEqual(parallel.map((r) => r.key), sequential.map((r) => r.key))
        const decode = Schema.decodeUnknownSync(Output)
        for (let i = 0; i < sequential.length; i++) {
          const s = decode(sequential[i]?.output)
          const p = decode(parallel[i]?.output)
          assert.strictEqual(p.digest, s.digest, `digest of ${sequential[i]?.key}`)
          assert.strictEqual(p.sum, s.sum, `sum of ${sequential[i]?.key}`)
          assert.isTrue(close(p.mean, s.mean) && close(p.root, s.root), `floats of ${sequential[i]?.key}`)
        }
        assert.isTrue(parallel.every((r) => r.state === "Succeeded"))
      }).pipe(Effect.provide(orchestrator(compute))))
  })
}
