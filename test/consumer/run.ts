/**
 * The packages as a user gets them: builds them, packs each with `bun pm pack` (which writes real versions
 * over `workspace:*`), installs the tarballs with npm into a fresh project outside the repository (no
 * workspace links, no tsx), deletes their TypeScript sources, then
 * - checks each installed manifest: no `workspace:` range, every package its JavaScript and declarations
 *   import is a dependency or a peer dependency;
 * - imports every public module by its package specifier (`fixture/entries.mjs`);
 * - runs the README's first JavaScript example with plain Node (a 100-item batch on the embedded database)
 *   and checks every result it prints;
 * - runs `npx effect-batch --help`;
 * - serves the README's workflow module with the installed `effect-batch serve`, submits and watches a
 *   batch with the installed CLI, and stops the server with SIGTERM (`fixture/serve.mjs`);
 * - type-checks `fixture/consumer.ts` with `tsc` against the installed declarations.
 *
 * `bun run test:consumer` (`KEEP=1` keeps the project and prints where it is).
 */
import * as Schema from "effect/Schema"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Url from "node:url"

const repo = Url.fileURLToPath(new URL("../..", import.meta.url))
const fixture = Url.fileURLToPath(new URL("./fixture", import.meta.url))
const packages = ["domain", "tables", "server"] as const
const itemCount = 100

const Dependencies = Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), {
  default: () => ({})
})
const Manifest = Schema.parseJson(Schema.Struct({
  name: Schema.String,
  version: Schema.String,
  dependencies: Dependencies,
  peerDependencies: Dependencies,
  devDependencies: Dependencies
}))

const readManifest = (dir: string) =>
  Schema.decodeUnknownSync(Manifest)(Fs.readFileSync(Path.join(dir, "package.json"), "utf8"))

const repoDevDependencies = () =>
  Schema.decodeUnknownSync(Schema.parseJson(Schema.Struct({ devDependencies: Dependencies })))(
    Fs.readFileSync(Path.join(repo, "package.json"), "utf8")
  ).devDependencies

class Failed extends Error {}

const check = (ok: boolean, message: string) => {
  if (!ok) throw new Failed(message)
}

const env: NodeJS.ProcessEnv = { ...process.env, CI: "1" }
delete env["NODE_OPTIONS"]
delete env["DATABASE_URL"]
delete env["EFFECT_BATCH_DATA_DIR"]

const spawn = (command: string, args: ReadonlyArray<string>, cwd: string, capture: boolean) => {
  console.log(`$ ${[command, ...args].join(" ")}${cwd === repo ? "" : `   (in ${cwd})`}`)
  const started = Date.now()
  const result = ChildProcess.spawnSync(command, args, {
    cwd,
    env,
    encoding: "utf8",
    stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit",
    maxBuffer: 64 * 1024 * 1024
  })
  check(result.error === undefined, `${command}: ${String(result.error)}`)
  console.log(`  ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return result
}

const run = (command: string, args: ReadonlyArray<string>, cwd: string, capture = false) => {
  const result = spawn(command, args, cwd, capture)
  check(result.status === 0, `${command} ${args.join(" ")} exited with ${result.status ?? result.signal}`)
  return result.stdout ?? ""
}

const step = (title: string) => console.log(`\n== ${title}`)

/** The package a bare import specifier names (`@effect/sql/SqlClient` → `@effect/sql`). */
const packageOf = (specifier: string) => specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/")

// a specifier has no white space: a string that merely ends in "from" (a description) is not one
const importPattern = /\bfrom\s*"([^"\s]+)"|\bimport\s*\(\s*"([^"\s]+)"\s*\)|\bimport\s+"([^"\s]+)"/g

/** Every package the built files of an installed package import, with one file that imports each. */
const importedPackages = (dir: string) => {
  const found = new Map<string, string>()
  const files = Fs.readdirSync(Path.join(dir, "dist"), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".js") || file.endsWith(".d.ts"))
  for (const file of files) {
    for (const match of Fs.readFileSync(Path.join(dir, "dist", file), "utf8").matchAll(importPattern)) {
      const specifier = match[1] ?? match[2] ?? match[3] ?? ""
      if (specifier.startsWith(".") || specifier.startsWith("node:") || Module.isBuiltin(specifier)) continue
      if (!found.has(packageOf(specifier))) found.set(packageOf(specifier), file)
    }
  }
  return found
}

/** The README's JavaScript examples, in order. */
const readmeExamples = () =>
  [...Fs.readFileSync(Path.join(repo, "README.md"), "utf8").matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) =>
    m[1] ?? ""
  )

/** The README's first JavaScript example, the program a user copies first. */
const readmeExample = () => {
  const example = readmeExamples()[0]
  if (example === undefined) throw new Failed("README.md has no ```js example")
  return example
}

/** The README's workflow module for `effect-batch serve`. */
const readmeWorkflows = () => {
  const module = readmeExamples().find((example) => example.startsWith("// workflows.js"))
  if (module === undefined) throw new Failed("README.md has no ```js example starting with // workflows.js")
  return module
}

const checkExampleOutput = (stdout: string) => {
  const lines = stdout.trim().split("\n")
  check(/^batch [0-9a-f-]{36}: Completed$/.test(lines[0] ?? ""), `expected "batch <id>: Completed", got ${lines[0]}`)
  const results = lines.slice(1)
  check(results.length === itemCount, `expected ${itemCount} results, got ${results.length}`)
  results.forEach((line, i) => {
    const n = i + 1
    const expected = `doc-${String(n).padStart(3, "0")} Succeeded {"words":${2 * n}}`
    check(line === expected, `result ${n}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(line)}`)
  })
}

const main = () => {
  const manifests = packages.map((name) => readManifest(Path.join(repo, "packages", name)))
  const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-batch-consumer-"))
  const tarballs = Path.join(work, "tarballs")
  const project = Path.join(work, "project")
  Fs.mkdirSync(project)
  console.log(`working in ${work}`)

  step("build")
  run("bun", ["run", "clean"], repo)
  // what an earlier build left that the build info no longer lists (a moved module) would be packed too
  for (const name of packages) Fs.rmSync(Path.join(repo, "packages", name, "dist"), { recursive: true, force: true })
  run("bun", ["run", "build"], repo)

  step("pack")
  for (const name of packages) {
    run("bun", ["pm", "pack", "--quiet", "--destination", tarballs], Path.join(repo, "packages", name))
  }

  step("install into a fresh project")
  // peers resolve as npm installs them for a user, held at the versions the workspace is tested with
  const overrides = Object.fromEntries(
    manifests.flatMap((manifest) =>
      Object.keys(manifest.peerDependencies).map((peer) => [peer, manifest.devDependencies[peer] ?? ""])
    )
  )
  Fs.writeFileSync(
    Path.join(project, "package.json"),
    JSON.stringify({ name: "effect-batch-consumer", private: true, type: "module", overrides }, null, 2)
  )
  const tools = ["typescript", "@types/node"].map((tool) => `${tool}@${repoDevDependencies()[tool]}`)
  run("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    ...Fs.readdirSync(tarballs).map((file) => Path.join(tarballs, file)),
    ...tools
  ], project)

  step("installed manifests")
  for (const name of packages) {
    const dir = Path.join(project, "node_modules", "@effect-batch", name)
    check(!Fs.lstatSync(dir).isSymbolicLink(), `${dir} is a link`)
    const manifest = readManifest(dir)
    const declared = { ...manifest.dependencies, ...manifest.peerDependencies }
    for (const [dependency, range] of Object.entries(declared)) {
      check(!range.startsWith("workspace:"), `${manifest.name}: ${dependency} is ${range}`)
    }
    for (const [dependency, file] of importedPackages(dir)) {
      check(dependency in declared, `${manifest.name}: dist/${file} imports ${dependency}, not in its package.json`)
    }
    Fs.rmSync(Path.join(dir, "src"), { recursive: true, force: true })
    console.log(`${manifest.name}@${manifest.version}: ${Object.keys(declared).join(", ")}`)
  }

  step("the server's public declarations leave storage failures decided")
  const server = Path.join(project, "node_modules", "@effect-batch", "server")
  const hidden = Object.entries(JSON.parse(Fs.readFileSync(Path.join(server, "package.json"), "utf8")).exports)
    .filter(([, target]) => target === null)
    .map(([subpath]) => subpath.replace(/^\.\//, "dist/").replace(/\*$/, ""))
  const declarations = Fs.readdirSync(Path.join(server, "dist"), { recursive: true, encoding: "utf8" })
    .map((file) => `dist/${file}`)
    .filter((file) => file.endsWith(".d.ts") && !hidden.some((prefix) => file.startsWith(prefix)))
  const leaking = declarations.filter((file) => Fs.readFileSync(Path.join(server, file), "utf8").includes("SqlError"))
  check(leaking.length === 0, `public declarations that mention SqlError: ${leaking.join(", ")}`)
  console.log(`${declarations.length} public declaration files, none mentions SqlError`)

  step("every public module")
  Fs.copyFileSync(Path.join(fixture, "entries.mjs"), Path.join(project, "entries.mjs"))
  run(process.execPath, ["entries.mjs"], project)

  step("the README's first example, on plain Node")
  Fs.writeFileSync(Path.join(project, "example.mjs"), readmeExample())
  const output = run(process.execPath, ["example.mjs"], project, true)
  checkExampleOutput(output)
  console.log(output.split("\n").slice(0, 3).join("\n"), `\n… ${itemCount} results checked`)

  step("the CLI")
  const help = run("npx", ["--no", "--", "effect-batch", "--help"], project, true)
  const { version } = readManifest(Path.join(repo, "packages", "server"))
  check(help.includes(`effect-batch ${version}`), `--help does not show version ${version}:\n${help}`)
  console.log(help.split("\n").slice(0, 3).join("\n"))

  step("serve the README's workflow module with the CLI, then SIGTERM")
  Fs.writeFileSync(Path.join(project, "workflows.js"), readmeWorkflows())
  Fs.copyFileSync(Path.join(fixture, "serve.mjs"), Path.join(project, "serve.mjs"))
  run(process.execPath, ["serve.mjs"], project)

  step("type-check a TypeScript consumer")
  for (const file of ["consumer.ts", "tsconfig.json"]) {
    Fs.copyFileSync(Path.join(fixture, file), Path.join(project, file))
  }
  // `skipLibCheck: false` checks the installed declarations in full; what it finds in other libraries'
  // (`pg` without `@types/pg`, PGlite's Emscripten types) is theirs and does not fail this step
  const tsc = spawn("npx", ["--no", "--", "tsc", "-p", "."], project, true)
  const diagnostics = tsc.stdout.split("\n").filter((line) => /^\S.*\(\d+,\d+\): error /.test(line))
  const ours = diagnostics.filter((line) => line.startsWith("consumer.ts") || line.includes("/@effect-batch/"))
  check(ours.length === 0 && (tsc.status === 0 || diagnostics.length > 0), `tsc:\n${tsc.stdout}`)
  console.log(`no errors in consumer.ts or the @effect-batch declarations (${diagnostics.length} in other libraries)`)

  if (process.env["KEEP"] === undefined) Fs.rmSync(work, { recursive: true, force: true })
  else console.log(`\nkept ${work}`)
  console.log("\nconsumer test passed")
}

try {
  main()
} catch (error) {
  console.error(`\nconsumer test failed: ${error instanceof Failed ? error.message : String(error)}`)
  process.exitCode = 1
}
