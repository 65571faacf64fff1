/**
 * Running the CLI as a user would, in a child process, with items written to a temporary file.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const bin = Path.resolve(import.meta.dirname, "../../packages/server/src/bin.ts")

export interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI in a child process, as a user would. */
export const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.async<Run>((resume) => {
    const child = ChildProcess.execFile(
      process.execPath,
      ["--conditions=@effect-batch/source", "--import", "tsx", bin, ...args],
      { env: { ...process.env, ...env, CI: "" }, timeout: 90_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resume(
          Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
        )
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

export const ok = (run: Run) => {
  assert.strictEqual(run.code, 0, `exit ${run.code}\n${run.stdout}\n${run.stderr}`)
  return run.stdout
}

/** The id and state a batch command prints (`<id> <State>`). */
export const batchIdOf = (stdout: string) => {
  const match = /^([0-9a-f-]{36}) (\w+)$/m.exec(stdout)
  assert.isNotNull(match, stdout)
  return { id: match![1]!, state: match![2]! }
}

export const writeItems = (
  items: ReadonlyArray<{ readonly key: string; readonly input: unknown }>,
  ndjson: boolean
) => {
  const file = Path.join(
    Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-batch-cli-")),
    ndjson ? "items.ndjson" : "items.json"
  )
  Fs.writeFileSync(file, ndjson ? items.map((i) => JSON.stringify(i)).join("\n") : JSON.stringify(items))
  return file
}

export const paced = (n: number, ms: number, failing: ReadonlyArray<number> = []) =>
  Array.from({ length: n }, (_, i) => ({
    key: `item-${String(i).padStart(3, "0")}`,
    input: { ms, fail: failing.includes(i) }
  }))
