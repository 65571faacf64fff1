import { Http } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { batchIdOf, cli, ok, paced, writeItems } from "./support/Cli.js"
import { server, tokens } from "./support/HttpServer.js"

layer(server(TestDatabase.layerEmbedded), { timeout: "240 seconds", excludeTestServices: true })("the CLI", (it) => {
  const common = Effect.map(Http.url, (url) => ["--url", url, "--token", tokens.acme])

  it.effect("submit, watch to 100%, status, results, approve", () =>
    Effect.gen(function*() {
      const base = yield* common
      const file = writeItems(paced(30, 40), true)
      const submitted = batchIdOf(ok(
        yield* cli(["submit", file, "--workflow", "paced", "--config", "{\"concurrency\":4,\"review\":true}", ...base])
      ))
      assert.strictEqual(submitted.state, "Running")
      const watched = ok(yield* cli(["watch", submitted.id, ...base]))
      const lines = watched.trim().split("\n")
      const last = lines[lines.length - 1]!
      assert.match(last, /\[#{30}\] 100% 30\/30 ok 30 failed 0 running 0 \| [\d.]+\/s ETA 0s \| AwaitingReview/)
      assert.isTrue(lines.some((line) => /ETA/.test(line)))
      const status = JSON.parse(ok(yield* cli(["status", submitted.id, ...base])))
      assert.strictEqual(status.counts.succeeded, 30)
      assert.strictEqual(status.state._tag, "AwaitingReview")
      const results = ok(yield* cli(["results", submitted.id, ...base])).trim().split("\n").map((l) => JSON.parse(l))
      assert.deepStrictEqual(results.map((r) => r.key), paced(30, 40).map((i) => i.key))
      assert.deepStrictEqual(results[0], { key: "item-000", state: "Succeeded", output: { slept: 40 } })
      assert.strictEqual(
        batchIdOf(ok(yield* cli(["approve", submitted.id, "--note", "fine", ...base]))).state,
        "Completed"
      )
    }))

  it.effect("pause, resume, cancel", () =>
    Effect.gen(function*() {
      const base = yield* common
      const file = writeItems(paced(200, 500), false)
      const { id } = batchIdOf(
        ok(yield* cli(["submit", file, "--workflow", "paced", "--config", "{\"concurrency\":2}", ...base]))
      )
      assert.strictEqual(batchIdOf(ok(yield* cli(["pause", id, "--note", "lunch", ...base]))).state, "Paused")
      assert.strictEqual(batchIdOf(ok(yield* cli(["resume", id, ...base]))).state, "Running")
      assert.strictEqual(batchIdOf(ok(yield* cli(["cancel", id, ...base]))).state, "Cancelled")
    }))

  it.effect("reject, retry-failed with and without --dry-run", () =>
    Effect.gen(function*() {
      const base = yield* common
      const file = writeItems(paced(6, 5, [1, 4]), true)
      const { id } = batchIdOf(
        ok(yield* cli(["submit", file, "--workflow", "paced", "--config", "{\"review\":true}", ...base]))
      )
      ok(yield* cli(["watch", id, ...base]))
      assert.strictEqual(batchIdOf(ok(yield* cli(["reject", id, "--note", "two failed", ...base]))).state, "Rejected")
      assert.strictEqual(
        ok(yield* cli(["retry-failed", id, "--dry-run", ...base])).trim(),
        "would re-queue 2 item(s): item-001, item-004"
      )
      assert.strictEqual(
        ok(yield* cli(["retry-failed", id, ...base])).trim(),
        "re-queued 2 item(s): item-001, item-004"
      )
    }))

  it.effect("rerun-from-step re-queues the named items of a settled batch; a rejected one refuses it", () =>
    Effect.gen(function*() {
      const base = yield* common
      const { id } = batchIdOf(
        ok(yield* cli(["submit", writeItems(paced(3, 5), true), "--workflow", "paced", ...base]))
      )
      ok(yield* cli(["watch", id, ...base]))
      assert.strictEqual(
        ok(yield* cli(["rerun-from-step", id, "--step", "fetch", "--keys", "item-000,item-002", ...base])).trim(),
        "re-queued 2 item(s), discarded 0 stored step(s)"
      )
      ok(yield* cli(["watch", id, ...base]))
      const status = JSON.parse(ok(yield* cli(["status", id, ...base])))
      assert.strictEqual(status.state._tag, "Completed")
      assert.strictEqual(status.state.round, 2)
      assert.strictEqual(status.counts.succeeded, 3)

      const review = batchIdOf(
        ok(
          yield* cli([
            "submit",
            writeItems(paced(2, 5), true),
            "--workflow",
            "paced",
            "--config",
            "{\"review\":true}",
            ...base
          ])
        )
      )
      ok(yield* cli(["watch", review.id, ...base]))
      ok(yield* cli(["reject", review.id, ...base]))
      const refused = yield* cli(["rerun-from-step", review.id, "--step", "fetch", "--keys", "item-000", ...base])
      assert.notStrictEqual(refused.code, 0)
      assert.include(refused.stderr, "InvalidTransition")
      assert.include(refused.stderr, "RerunFromStep")
    }))

  it.effect("limiters define, list, show and delete the tenant's shared limiters", () =>
    Effect.gen(function*() {
      const base = yield* common
      const defined = ok(yield* cli(["limiters", "define", "llm", "--limit", "20", "--interval", "1 minute", ...base]))
      assert.match(defined, /^llm {2}0\/20 per 1 minute {2}available 20 {2}not held back {2}throttles 0/m)
      assert.match(ok(yield* cli(["limiters", "list", ...base])), /^llm {2}0\/20 per 1 minute/m)
      assert.match(ok(yield* cli(["limiters", "show", "llm", ...base])), /^llm /m)
      const bad = yield* cli(["limiters", "define", "llm", "--limit", "0", "--interval", "1 minute", ...base])
      assert.notStrictEqual(bad.code, 0)
      assert.include(bad.stderr, "InvalidRequest")
      assert.include(ok(yield* cli(["limiters", "delete", "llm", ...base])), "deleted llm")
      const gone = yield* cli(["limiters", "show", "llm", ...base])
      assert.notStrictEqual(gone.code, 0)
      assert.include(gone.stderr, "LimiterNotFound")
    }))

  it.effect("a client command without a token fails before any request: there is no default credential", () =>
    Effect.gen(function*() {
      const url = yield* Http.url
      const missing = yield* cli(["status", "3f573780-08ef-4936-b52b-9dcf4fd0d39d", "--url", url])
      assert.notStrictEqual(missing.code, 0)
      assert.include(missing.stderr, "TokenMissing")
    }))

  it.effect("fails with a typed error and a non-zero exit code", () =>
    Effect.gen(function*() {
      const base = yield* common
      const missing = yield* cli(["status", "3f573780-08ef-4936-b52b-9dcf4fd0d39d", ...base])
      assert.notStrictEqual(missing.code, 0)
      assert.include(missing.stderr, "BatchNotFound")
      const badToken = yield* cli([
        "status",
        "3f573780-08ef-4936-b52b-9dcf4fd0d39d",
        "--url",
        base[1]!,
        "--token",
        "nope"
      ])
      assert.notStrictEqual(badToken.code, 0)
      assert.include(badToken.stderr, "Unauthorized")
      const file = writeItems([{ key: "a", input: { ms: "slow" } }], false)
      const invalid = yield* cli(["submit", file, "--workflow", "paced", ...base])
      assert.notStrictEqual(invalid.code, 0)
      assert.include(invalid.stderr, "InvalidItems")
    }))
})
