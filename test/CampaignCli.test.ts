import { Http } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { cli, ok, paced, writeItems } from "./support/Cli.js"
import { server, tokens } from "./support/HttpServer.js"

/** Each batch runs two items at a time. */
const batchConfig = JSON.stringify({ batchConfig: { concurrency: 2 } })

const campaignOf = (stdout: string) => {
  const match = /^([0-9a-f-]{36}) (\w+) batches (\d+)\/(\d+)$/m.exec(stdout)
  assert.isNotNull(match, stdout)
  return { id: match![1]!, state: match![2]!, done: Number(match![3]), total: Number(match![4]) }
}

layer(server(TestDatabase.layerEmbedded), { timeout: "240 seconds", excludeTestServices: true })(
  "the campaign CLI",
  (it) => {
    const common = Effect.map(Http.url, (url) => ["--url", url, "--token", tokens.acme])

    it.effect("campaign submit, watch (two levels), status, results by status and as an export, retry-failed, approve", () =>
      Effect.gen(function*() {
        const base = yield* common
        const file = writeItems(paced(25, 20, [3, 17]), true)
        const submitted = campaignOf(ok(
          yield* cli([
            "campaign",
            "submit",
            file,
            "--workflow",
            "paced",
            "--batch-size",
            "5",
            "--concurrency",
            "2",
            "--review",
            ...base
          ])
        ))
        assert.deepStrictEqual([submitted.state, submitted.total], ["Running", 5])
        const lines = ok(yield* cli(["campaign", "watch", submitted.id, ...base])).trim().split("\n")
        assert.match(
          lines[lines.length - 1]!,
          /^batches \[#{20}\] 5\/5 \(0 running\) \| items 100% 25\/25 ok 23 failed 2 running 0 \| [\d.]+\/s ETA \S+ \| AwaitingReview$/
        )
        const status = JSON.parse(ok(yield* cli(["campaign", "status", submitted.id, ...base])))
        assert.deepStrictEqual([status.batches.done, status.counts.failed, status.state._tag], [5, 2, "AwaitingReview"])

        const all = ok(yield* cli(["campaign", "results", submitted.id, ...base])).trim().split("\n").map((l) =>
          JSON.parse(l)
        )
        assert.deepStrictEqual(all.map((r) => r.key), paced(25, 20).map((i) => i.key))
        assert.deepStrictEqual(all.map((r) => r.batchIndex), paced(25, 20).map((_, i) => Math.floor(i / 5)))
        const failed = ok(yield* cli(["campaign", "results", submitted.id, "--status", "failed", ...base]))
          .trim().split("\n").map((l) => JSON.parse(l))
        assert.deepStrictEqual(failed.map((r) => r.key), ["item-003", "item-017"])

        const out = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-batch-export-"))
        ok(yield* cli(["campaign", "results", submitted.id, "--out", out, ...base]))
        const lineCount = (name: string) =>
          Fs.readFileSync(Path.join(out, name), "utf8").split("\n").filter((l) => l !== "").length
        assert.deepStrictEqual(
          [lineCount("succeeded.jsonl"), lineCount("failed.jsonl"), lineCount("quarantined.jsonl")],
          [23, 2, 0]
        )
        const manifest = JSON.parse(Fs.readFileSync(Path.join(out, "manifest.json"), "utf8"))
        assert.deepStrictEqual(manifest.counts, { succeeded: 23, failed: 2, quarantined: 0, skipped: 0 })
        assert.deepStrictEqual(manifest.merge, { expected: 25, outcomes: 25, missing: 0, duplicated: 0, ok: true })

        const early = yield* cli(["campaign", "retry-failed", submitted.id, "--dry-run", ...base])
        assert.notStrictEqual(early.code, 0)
        assert.match(early.stderr + early.stdout, /InvalidTransition/)
        assert.strictEqual(
          campaignOf(ok(yield* cli(["campaign", "reject", submitted.id, "--note", "two failed", ...base]))).state,
          "Rejected"
        )
        const dry = ok(yield* cli(["campaign", "retry-failed", submitted.id, "--dry-run", ...base]))
        assert.match(dry, /would re-run 2 failed item\(s\) of 2 batch\(es\)/)
        assert.match(dry, /batch 0: item-003/)
        assert.match(dry, /batch 3: item-017/)
      }))

    it.effect("campaign pause --cascade, resume, update, cancel; another tenant's campaign is not found", () =>
      Effect.gen(function*() {
        const base = yield* common
        const file = writeItems(paced(40, 3_000), false)
        const { id } = campaignOf(ok(
          yield* cli([
            "campaign",
            "submit",
            file,
            "--workflow",
            "paced",
            "--batch-size",
            "10",
            "--config",
            batchConfig,
            ...base
          ])
        ))
        assert.strictEqual(campaignOf(ok(yield* cli(["campaign", "pause", id, "--cascade", ...base]))).state, "Paused")
        assert.strictEqual(
          campaignOf(ok(yield* cli(["campaign", "update", id, "--concurrency", "2", ...base]))).state,
          "Paused"
        )
        assert.strictEqual(campaignOf(ok(yield* cli(["campaign", "resume", id, ...base]))).state, "Running")
        const url = base[1]!
        const intruder = yield* cli(["campaign", "status", id, "--url", url, "--token", tokens.globex])
        assert.notStrictEqual(intruder.code, 0)
        assert.match(intruder.stderr + intruder.stdout, /CampaignNotFound/)
        assert.strictEqual(campaignOf(ok(yield* cli(["campaign", "cancel", id, ...base]))).state, "Cancelled")
      }))
  }
)
