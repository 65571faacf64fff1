/**
 * `effect-batch serve` in a child process, as a user runs it: on a database of its own (an embedded
 * data folder or a fresh Postgres database) that a restarted process finds again.
 */
import { Database, type EmbeddedErrors, type Notifier } from "@effect-batch/tables"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { freshDatabase } from "./Processes.js"

const bin = Path.resolve(import.meta.dirname, "../../packages/server/src/bin.ts")
const repoRoot = Path.resolve(import.meta.dirname, "../..")

/** Where a served database lives: the environment a `serve` process gets, and the layer to read it. */
export interface ServedDatabase {
  readonly env: Readonly<Record<string, string>>
  /** opens it in the test process (an embedded one only once no `serve` process has it open) */
  readonly layer: Layer.Layer<SqlClient.SqlClient | Notifier.Notifier, SqlError.SqlError | EmbeddedErrors.DataDirInUse>
}

/** A temporary directory, removed when the scope closes. */
export const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-batch-serve-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** The two databases a served process runs on, each fresh for the scope. */
export const servedDatabases: ReadonlyArray<
  readonly [name: "embedded" | "postgres", database: Effect.Effect<ServedDatabase, never, Scope.Scope>]
> = [
  [
    "embedded",
    Effect.map(tempDir, (dir) => {
      const dataDir = Path.join(dir, "db")
      return { env: { EFFECT_BATCH_DATA_DIR: dataDir }, layer: Database.layerEmbedded({ dataDir }) }
    })
  ],
  ["postgres", Effect.map(freshDatabase, (url) => ({ env: { DATABASE_URL: url }, layer: Database.layerPostgres(url) }))]
]

/** What a test's own environment must not hand to `serve` unasked. */
const unset = [
  "DATABASE_URL",
  "EFFECT_BATCH_DATA_DIR",
  "EFFECT_BATCH_HOST",
  "EFFECT_BATCH_TOKENS",
  "EFFECT_BATCH_TOKENS_FILE",
  "EFFECT_BATCH_WORKFLOWS"
]

/** How long `stop` waits for the process to end. */
const stopTimeout = "30 seconds"

/** A running `serve` process. */
export interface Served {
  /** the line that says where it listens */
  readonly line: string
  /** its base URL */
  readonly url: string
  readonly pid: number
  /** everything it wrote so far, stdout and stderr */
  readonly output: () => string
  /**
   * sends `signal` and waits for the process to end: its exit code, or the signal that ended it; dies
   * if it still runs after `stopTimeout`
   */
  readonly stop: (
    signal: NodeJS.Signals
  ) => Effect.Effect<{ readonly code: number | NodeJS.Signals; readonly ms: number }>
}

/**
 * Starts `effect-batch serve --port 0 …args` with `env` over the test's environment (an empty value
 * unsets a variable; the database, host, tokens and workflows variables start unset).
 * Succeeds once it listens; fails with its output if it exits first. SIGKILLed when the scope closes.
 */
export const start = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const childEnv: Record<string, string | undefined> = { ...process.env }
      for (const name of unset) delete childEnv[name]
      for (const [name, value] of Object.entries(env)) childEnv[name] = value === "" ? undefined : value
      const child = ChildProcess.spawn(process.execPath, [
        "--conditions=@effect-batch/source",
        "--import",
        "tsx",
        bin,
        "serve",
        "--port",
        "0",
        ...args
      ], { cwd: repoRoot, env: childEnv, stdio: ["ignore", "pipe", "pipe"] })
      let output = ""
      child.stdout.on("data", (chunk: Buffer) => output += chunk.toString())
      child.stderr.on("data", (chunk: Buffer) => output += chunk.toString())
      const exit = new Promise<number | NodeJS.Signals>((resolve) =>
        child.once("exit", (code, signal) => resolve(code ?? signal ?? -1))
      )
      return { child, exit, output: () => output }
    }),
    ({ child, exit }) =>
      Effect.promise(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        return exit
      })
  ).pipe(
    Effect.flatMap(({ child, exit, output }) =>
      Effect.async<string, Error>((resume) => {
        void exit.then((code) => resume(Effect.fail(new Error(`serve exited with ${code}: ${output()}`))))
        Readline.createInterface({ input: child.stdout }).on("line", (line) => {
          if (line.includes("listening on")) resume(Effect.succeed(line))
        })
      }).pipe(
        Effect.timeout("60 seconds"),
        Effect.map((line): Served => ({
          line,
          url: /listening on (http:\/\/[^ ]+)/.exec(line)?.[1] ?? "",
          pid: child.pid ?? -1,
          output,
          stop: (signal) =>
            Effect.promise(async () => {
              const started = Date.now()
              child.kill(signal)
              const code = await exit
              return { code, ms: Date.now() - started }
            }).pipe(
              Effect.timeoutFail({
                duration: stopTimeout,
                onTimeout: () => `serve still runs ${stopTimeout} after ${signal}: ${output()}`
              }),
              Effect.orDie
            )
        }))
      )
    )
  )

/** Starts `serve` on an embedded database of its own (removed when the scope closes); gives its start-up line. */
export const serveEmbedded = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>>) =>
  Effect.flatMap(tempDir, (dir) =>
    Effect.map(
      start(args, { ...env, EFFECT_BATCH_DATA_DIR: Path.join(dir, "db") }),
      (served) => served.line
    ))

/**
 * Starts `serve` (see `start`) on the embedded database in `dataDir`, or on a fresh temporary folder
 * (deleted afterwards, with the lock file a killed server leaves beside it) when absent.
 */
export const serveProcess = (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string>>,
  options: { readonly dataDir?: string } = {}
) =>
  Effect.flatMap(
    options.dataDir === undefined ? tempDir : Effect.succeed(undefined),
    (temporary) => {
      const dataDir = options.dataDir ?? Path.join(temporary ?? "", "db")
      return start(args, { ...env, EFFECT_BATCH_DATA_DIR: dataDir })
    }
  )
