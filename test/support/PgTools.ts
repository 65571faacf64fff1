/**
 * Postgres's programs (`pg_dump`, `pg_restore`, `initdb`, `pg_ctl`) as the machine has them: on `PATH`, else in
 * Debian's `/usr/lib/postgresql/<version>/bin` (the newest version).
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const onPath = (name: string): string | undefined =>
  (process.env["PATH"] ?? "").split(Path.delimiter).map((dir) => Path.join(dir, name)).find((file) => {
    try {
      Fs.accessSync(file, Fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })

const debianRoot = "/usr/lib/postgresql"

const inDebianLayout = (name: string): string | undefined => {
  const versions = Fs.existsSync(debianRoot) ? Fs.readdirSync(debianRoot) : []
  return versions
    .sort((a, b) => Number(b) - Number(a))
    .map((version) => Path.join(debianRoot, version, "bin", name))
    .find((file) => Fs.existsSync(file))
}

/** The path of a Postgres client program; dies naming where it looked when there is none. */
export const pgProgram = (name: "pg_dump" | "pg_restore" | "initdb" | "pg_ctl"): Effect.Effect<string> =>
  Effect.suspend(() => {
    const found = onPath(name) ?? inDebianLayout(name)
    return found === undefined
      ? Effect.dieMessage(`${name} is neither on PATH nor in ${debianRoot}/*/bin`)
      : Effect.succeed(found)
  })

/** Runs a Postgres client program to its end; dies with its output when it fails. */
export const runPg = (name: "pg_dump" | "pg_restore", args: ReadonlyArray<string>): Effect.Effect<string> =>
  Effect.flatMap(pgProgram(name), (program) =>
    Effect.async<string>((resume) => {
      const child = ChildProcess.execFile(program, args, { timeout: 120_000 }, (error, stdout, stderr) =>
        resume(
          error === null
            ? Effect.succeed(stdout)
            : Effect.dieMessage(`${name} ${args.join(" ")} failed: ${error.message}\n${stderr}`)
        ))
      return Effect.sync(() => child.kill("SIGKILL"))
    }))
