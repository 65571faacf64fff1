/**
 * Bundles the dashboard's browser script (`dashboard/src/main.ts`) to `dashboard/app.js` with esbuild:
 * one IIFE for ES2020 browsers, minified, with the workspace packages read from their TypeScript sources.
 * Type-checking is `tsc -b` (`dashboard/tsconfig.json`); esbuild only strips the types.
 *
 * `node --import tsx scripts/dashboard.ts`: the build, `bun run demo`, `bun run cli` and the tests'
 * global set-up (`test/support/DashboardScript.ts`) run it.
 */
import * as Esbuild from "esbuild"
import * as Url from "node:url"

/** Where the bundle is written, and where `Dashboard.layer` reads it from. */
export const outfile = Url.fileURLToPath(new URL("../dashboard/app.js", import.meta.url))

/** Bundles the script; resolves to its size in bytes. */
export const build = async (): Promise<number> => {
  const result = await Esbuild.build({
    entryPoints: [Url.fileURLToPath(new URL("../dashboard/src/main.ts", import.meta.url))],
    outfile,
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2020",
    minify: true,
    conditions: ["@effect-batch/source"],
    legalComments: "none",
    metafile: true,
    logLevel: "warning"
  })
  return Object.values(result.metafile.outputs).reduce((n, output) => n + output.bytes, 0)
}

if (process.argv[1] !== undefined && Url.pathToFileURL(process.argv[1]).href === import.meta.url) {
  const bytes = await build()
  process.stderr.write(`dashboard: ${outfile} (${bytes} bytes)\n`)
}
