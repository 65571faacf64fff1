/**
 * A private Postgres cluster for one test: `initdb` into a temporary folder, started on a free port
 * (trust authentication, its unix socket in that folder), stopped and removed when the scope closes.
 * When the tests run as root, the server programs run as the `postgres` OS user (Postgres refuses
 * to run as root).
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { pgProgram } from "./PgTools.js"
import { tempDir } from "./TempDir.js"

/** A running private cluster. */
export interface PgCluster {
  /** the URL of its `postgres` database */
  readonly url: string
  /** `pg_ctl restart -m fast`: every session is ended, the server stops and starts again */
  readonly restart: Effect.Effect<void>
  /** the server's log so far, for diagnostics */
  readonly log: () => string
}

const asRoot = process.getuid?.() === 0

/** The uid and gid of the `postgres` OS user; dies saying so when there is none. */
const postgresUser = Effect.try({
  try: () => {
    const id = (flag: string) => Number(ChildProcess.execFileSync("id", [flag, "postgres"]).toString().trim())
    return { uid: id("-u"), gid: id("-g") }
  },
  catch: () => "the tests run as root and there is no `postgres` OS user to run the private cluster as"
}).pipe(Effect.orDie)

/** Runs a server program to its end (as `postgres` when root); dies with its output when it fails. */
const run = (name: "initdb" | "pg_ctl", cwd: string, args: ReadonlyArray<string>) =>
  Effect.flatMap(pgProgram(name), (program) =>
    Effect.async<string>((resume) => {
      const [command, argv] = asRoot
        ? ["runuser", ["-u", "postgres", "--", program, ...args]] as const
        : [program, args] as const
      const child = ChildProcess.execFile(command, argv, { cwd, timeout: 60_000 }, (error, stdout, stderr) =>
        resume(
          error === null
            ? Effect.succeed(stdout)
            : Effect.dieMessage(`${name} ${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`)
        ))
      return Effect.sync(() => child.kill("SIGKILL"))
    }))

/** A TCP port nothing listens on right now. */
const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(port === 0 ? Effect.dieMessage("no free port") : Effect.succeed(port)))
  })
})

/** Creates and starts a private cluster; it is stopped (immediately) and removed when the scope closes. */
export const privateCluster = Effect.gen(function*() {
  const dir = yield* tempDir("effect-batch-pg-")
  if (asRoot) {
    const { gid, uid } = yield* postgresUser
    Fs.chownSync(dir, uid, gid)
  }
  const data = Path.join(dir, "data")
  const logFile = Path.join(dir, "server.log")
  const port = yield* freePort
  yield* run("initdb", dir, [
    "-D",
    data,
    "-A",
    "trust",
    "-U",
    "postgres",
    "-E",
    "UTF8",
    "--no-sync",
    "--no-instructions"
  ])
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`
  const pgCtl = (action: "start" | "restart", ...more: ReadonlyArray<string>) =>
    run("pg_ctl", dir, [action, "-D", data, "-l", logFile, "-w", "-t", "30", ...more, "-o", options]).pipe(
      Effect.asVoid
    )
  yield* Effect.acquireRelease(
    pgCtl("start"),
    () =>
      run("pg_ctl", dir, ["stop", "-D", data, "-m", "immediate", "-w"]).pipe(
        Effect.catchAllDefect((defect) => Effect.logWarning("the private cluster did not stop", defect))
      )
  )
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart: pgCtl("restart", "-m", "fast"),
    log: () => (Fs.existsSync(logFile) ? Fs.readFileSync(logFile, "utf8") : "")
  } satisfies PgCluster
})
