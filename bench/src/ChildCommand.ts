/**
 * How a benchmark starts a child process of its own (`child.ts <name> <options>`). `run.ts` bundles
 * the children once into JavaScript (`bench/.build/child.mjs`, esbuild) and names the bundle in
 * `EFFECT_BATCH_BENCH_CHILD`, so that every child — effect-batch's and graphile-worker's — starts from
 * plain JavaScript, as an installed package would, without compiling TypeScript at start. Without it
 * (a child started by hand) the sources run through `tsx`.
 */
import * as Path from "node:path"
import * as Url from "node:url"

/** The environment variable that names the bundled children. */
export const bundleVariable = "EFFECT_BATCH_BENCH_CHILD"

const sources = Path.join(Path.dirname(Url.fileURLToPath(import.meta.url)), "..", "child.ts")

/** The Node arguments that run `child.ts` with `args`, before any extra Node flags of the caller. */
export const childArgs = (args: ReadonlyArray<string>): Array<string> => {
  const bundle = process.env[bundleVariable]
  return bundle !== undefined && bundle !== ""
    ? [bundle, ...args]
    : ["--conditions=@effect-batch/source", "--import", "tsx", sources, ...args]
}
