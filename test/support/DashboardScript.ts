/**
 * vitest's global set-up: bundles the dashboard's script (`packages/server/dashboard/app.js`) once,
 * before any test file runs, with the same command as `bun run dashboard` (in its own process, so
 * that esbuild resolves from the server package).
 */
import * as ChildProcess from "node:child_process"
import * as Url from "node:url"

const repo = Url.fileURLToPath(new URL("../..", import.meta.url))

export const setup = (): void => {
  ChildProcess.execFileSync(process.execPath, ["--import", "tsx", "packages/server/scripts/dashboard.ts"], {
    cwd: repo,
    stdio: "inherit"
  })
}
