import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const bin = Path.resolve(import.meta.dirname, "../packages/server/src/bin.ts")

const demo = (dataDir: string) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    const env: Record<string, string | undefined> = { ...process.env, EFFECT_BATCH_DATA_DIR: dataDir }
    delete env["DATABASE_URL"]
    delete env["EFFECT_BATCH_TOKENS"]
    const child = ChildProcess.execFile(
      process.execPath,
      [
        "--conditions=@effect-batch/source",
        "--import",
        "tsx",
        bin,
        "demo",
        "--until-review",
        "--items",
        "50",
        "--port",
        "0"
      ],
      { env, timeout: 120_000 },
      (error, stdout, stderr) =>
        resume(
          Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
        )
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("the demo", () => {
  it.live("runs non-interactively until review, and a second run resumes the same batch", () =>
    Effect.gen(function*() {
      const dataDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-batch-demo-"))
      const first = yield* demo(dataDir)
      assert.strictEqual(first.code, 0, first.stderr)
      assert.match(first.stdout, /Dashboard: http:\/\/127\.0\.0\.1:\d+\/\?token=demo-token/)
      assert.match(first.stdout, /100% 50\/50 ok 49 failed 0 quarantined 1 running 0 .* AwaitingReview/)
      const id = /Batch ([0-9a-f-]{36}) is AwaitingReview: 49 succeeded, 0 failed, 1 quarantined\./.exec(first.stdout)
        ?.[1]
      assert.isDefined(id, first.stdout)
      const second = yield* demo(dataDir)
      assert.strictEqual(second.code, 0, second.stderr)
      assert.include(second.stdout, `Batch ${id} is AwaitingReview`)
      Fs.rmSync(dataDir, { recursive: true, force: true })
    }), 240_000)
})
