/**
 * W3 for graphile-worker: worker processes that wait for the parent's `GO` (the jobs are added
 * while no worker runs), report their progress on stdout, and on `REPORT` give the keys they ran.
 *
 * The protocol, one line each: the child prints `READY`; the parent sends `GO`; the child prints
 * `PROGRESS <handled>` (at most every 5 ms); the parent sends `REPORT`; the child prints
 * `REPORT <json>` and stops its runner.
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import * as Readline from "node:readline"
import * as Url from "node:url"
import { processCpuMs } from "../Harness.js"
import { loadGraphile, running, Tracker, type Variant } from "./Setup.js"

const child = Path.join(Path.dirname(Url.fileURLToPath(import.meta.url)), "..", "..", "child.ts")

/** What a worker process reports at the end. */
export interface WorkerReport {
  readonly handled: number
  readonly duplicates: number
  readonly keys: ReadonlyArray<string>
  /** CPU milliseconds of the process from `GO` to `REPORT`. */
  readonly cpuMs: number
}

export interface WorkerProcessOptions {
  readonly url: string
  readonly owner: string
  readonly variant: Variant
  readonly concurrency: number
}

const print = (line: string) => Effect.sync(() => process.stdout.write(`${line}\n`))

/** Resolves when stdin gives the line `expected`. */
const stdinLine = (lines: Readline.Interface, expected: string) =>
  Effect.async<void>((resume) => {
    const onLine = (line: string) => {
      if (line.trim() !== expected) return
      lines.off("line", onLine)
      resume(Effect.void)
    }
    lines.on("line", onLine)
    return Effect.sync(() => lines.off("line", onLine))
  })

/** The worker process (`child.ts graphile-worker`): graphile-worker running W3's no-op jobs. */
export const graphileWorkerProcess = (options: WorkerProcessOptions) =>
  Effect.gen(function*() {
    const gw = yield* loadGraphile
    const lines = Readline.createInterface({ input: process.stdin })
    let pending: NodeJS.Timeout | undefined
    const tracker: Tracker = new Tracker(() => {
      pending ??= setTimeout(() => {
        pending = undefined
        process.stdout.write(`PROGRESS ${tracker.handled}\n`)
      }, 5)
    })
    yield* print("READY")
    yield* stdinLine(lines, "GO")
    const cpu0 = processCpuMs()
    yield* running(gw, { ...options, workload: "w3" }, tracker)
    yield* stdinLine(lines, "REPORT")
    clearTimeout(pending)
    const report: WorkerReport = {
      handled: tracker.handled,
      duplicates: tracker.duplicates,
      keys: [...tracker.seen],
      cpuMs: processCpuMs() - cpu0
    }
    yield* print(`REPORT ${JSON.stringify(report)}`)
    lines.close()
  }).pipe(Effect.scoped)

/** The parent's handle on a worker process. */
export interface WorkerHandle {
  readonly owner: string
  readonly pid: number
  /** The last progress the process printed. */
  readonly handled: () => number
  readonly go: Effect.Effect<void>
  readonly report: Effect.Effect<WorkerReport, Error>
}

/** Starts a worker process and waits for `READY`; kills it when the scope closes. */
export const spawnGraphileWorker = (options: WorkerProcessOptions, onProgress: () => void) =>
  Effect.acquireRelease(
    Effect.async<{ readonly proc: ChildProcess.ChildProcess; readonly handle: WorkerHandle }, Error>((resume) => {
      const proc = ChildProcess.spawn(
        process.execPath,
        ["--conditions=@effect-batch/source", "--import", "tsx", child, "graphile-worker", JSON.stringify(options)],
        { stdio: ["pipe", "pipe", "inherit"] }
      )
      let handled = 0
      let onReport: ((report: WorkerReport) => void) | undefined
      let onExit: ((error: Error) => void) | undefined
      const handle: WorkerHandle = {
        owner: options.owner,
        pid: proc.pid ?? -1,
        handled: () => handled,
        go: Effect.sync(() => proc.stdin?.write("GO\n")),
        report: Effect.async<WorkerReport, Error>((resumeReport) => {
          onReport = (report) => resumeReport(Effect.succeed(report))
          onExit = (error) => resumeReport(Effect.fail(error))
          proc.stdin?.write("REPORT\n")
        })
      }
      const lines = Readline.createInterface({ input: proc.stdout! })
      lines.on("line", (line) => {
        if (line === "READY") resume(Effect.succeed({ proc, handle }))
        else if (line.startsWith("PROGRESS ")) {
          handled = Number(line.slice("PROGRESS ".length))
          onProgress()
        } else if (line.startsWith("REPORT ")) onReport?.(JSON.parse(line.slice("REPORT ".length)))
      })
      proc.on("exit", (code) => {
        const error = new Error(`graphile worker ${options.owner} exited with ${code}`)
        onExit?.(error)
        resume(Effect.fail(error))
      })
    }),
    ({ proc }) => Effect.sync(() => proc.kill("SIGKILL"))
  ).pipe(Effect.map(({ handle }) => handle))
