/**
 * Idle `GetBatch`: sequential RPCs over one keep-alive connection to a server in its own process, with
 * the server's CPU per request (`bun run bench:rpc`, or node with
 * `--conditions=@effect-batch/source --import tsx`):
 *
 *   bench/RpcIdle.ts                      2,000 requests after 200 warm-up ones, on Postgres
 *   bench/RpcIdle.ts --requests 5000 --db embedded
 *   bench/RpcIdle.ts --profile /tmp/rpc   a CPU profile of the server over the measured requests
 *   bench/RpcIdle.ts --floor              the same requests to a route that only answers "ok"
 *   bench/RpcIdle.ts --requests 1 --idle-ms 10000   what the idle server spends meanwhile
 *
 * The server holds one settled batch of 10 items; nothing else runs.
 */
import { BatchConfig, Ids } from "@effect-batch/domain"
import { BatchOrchestrator, EffectBatch, Http, Workflow, WorkflowRegistry } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as HttpClient from "node:http"
import * as Inspector from "node:inspector/promises"
import * as Readline from "node:readline"
import * as Url from "node:url"

const token = "rpc-idle-bench-token-0123456789abcdef"
/** A route that only answers `ok`: what the HTTP server alone costs per request (`--floor`). */
const floorPath = "/floor"
const self = Url.fileURLToPath(import.meta.url)
const args = process.argv.slice(2)
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}

class NeverFails extends Schema.TaggedError<NeverFails>()("NeverFails", {}) {}

const noop = Workflow.make({
  name: "noop",
  input: Schema.Struct({ n: Schema.Number }),
  output: Schema.Struct({ n: Schema.Number }),
  error: NeverFails,
  run: (input) => Effect.succeed(input)
})

const cpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

/** The server: prints `READY url batchId`, then answers `start` (profile and CPU from here) and `stop`. */
const serve = (db: string, profile: string | undefined) =>
  Effect.gen(function*() {
    const tenant = Schema.decodeSync(Ids.TenantId)("bench")
    const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
    const config = yield* BatchConfig.decode({ concurrency: 4 })
    const items = Array.from({ length: 10 }, (_, n) => ({ key: `item-${n}`, input: { n } }))
    const batch = yield* orchestrator.submit(noop, items, config, { tenant })
    yield* orchestrator.await({ tenant }, batch.id)
    const url = yield* Http.url
    yield* Effect.async<void>((resume) => {
      const session = new Inspector.Session()
      let start = 0
      Readline.createInterface({ input: process.stdin }).on("line", async (line) => {
        if (line === "start") {
          if (profile !== undefined) {
            session.connect()
            await session.post("Profiler.enable")
            await session.post("Profiler.setSamplingInterval", { interval: 200 })
            await session.post("Profiler.start")
          }
          start = cpuMs()
          process.stdout.write("STARTED\n")
        } else if (line === "stop") {
          const used = cpuMs() - start
          if (profile !== undefined) {
            const { profile: data } = await session.post("Profiler.stop")
            Fs.writeFileSync(`${profile}.cpuprofile`, JSON.stringify(data))
          }
          process.stdout.write(`CPU ${used}\n`)
          resume(Effect.void)
        }
      })
      process.stdout.write(`READY ${url} ${batch.id}\n`)
    })
  }).pipe(
    Effect.provide(
      Http.layer({
        port: 0,
        host: "127.0.0.1",
        routes: HttpLayerRouter.add("GET", floorPath, HttpServerResponse.text("ok"))
      }).pipe(
        Layer.provideMerge(Http.layerAuth([{ token, tenant: Schema.decodeSync(Ids.TenantId)("bench") }])),
        Layer.provideMerge(EffectBatch.layer.pipe(Layer.provide(WorkflowRegistry.layer(noop)))),
        Layer.provideMerge(db === "postgres" ? TestDatabase.layerPostgres : TestDatabase.layerEmbedded),
        Layer.orDie
      )
    )
  )

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? NaN

const client = async () => {
  const requests = Number(flag("requests") ?? 2000)
  const warmup = Number(flag("warmup") ?? 200)
  const child = ChildProcess.spawn(
    process.execPath,
    [
      "--conditions=@effect-batch/source",
      "--import",
      "tsx",
      self,
      "--serve",
      flag("db") ?? "postgres",
      flag("profile") ?? ""
    ],
    { stdio: ["pipe", "pipe", "inherit"] }
  )
  const lines = Readline.createInterface({ input: child.stdout })
  const waiting: Array<(line: string) => void> = []
  lines.on("line", (line) => waiting.shift()?.(line))
  const next = () => new Promise<string>((resolve) => waiting.push(resolve))
  const ready = await next()
  const [, url, batchId] = ready.split(" ")
  const agent = new HttpClient.Agent({ keepAlive: true, maxSockets: 1 })
  const floor = args.includes("--floor")
  const target = new URL(floor ? floorPath : "/rpc", url)
  let id = 0
  const call = () =>
    new Promise<number>((resolve, reject) => {
      const body = JSON.stringify({
        _tag: "Request",
        id: String(++id),
        tag: "GetBatch",
        payload: { batchId },
        headers: []
      }) + "\n"
      const started = performance.now()
      const req = HttpClient.request(target, {
        method: floor ? "GET" : "POST",
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/ndjson",
          "content-length": Buffer.byteLength(body)
        }
      }, (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (text += chunk))
        res.on("end", () => {
          if (res.statusCode !== 200 || (!floor && (!text.includes("\"Exit\"") || !text.includes("Success")))) {
            reject(new Error(`unexpected answer ${res.statusCode}: ${text.slice(0, 200)}`))
          } else resolve(performance.now() - started)
        })
      })
      req.on("error", reject)
      req.end(body)
    })
  for (let i = 0; i < warmup; i++) await call()
  child.stdin.write("start\n")
  await next()
  const times: Array<number> = []
  const clientStart = cpuMs()
  for (let i = 0; i < requests; i++) times.push(await call())
  const idleMs = Number(flag("idle-ms") ?? 0)
  if (idleMs > 0) await new Promise((resolve) => setTimeout(resolve, idleMs))
  const clientCpu = cpuMs() - clientStart
  child.stdin.write("stop\n")
  const serverCpu = Number((await next()).split(" ")[1])
  child.stdin.end()
  agent.destroy()
  times.sort((a, b) => a - b)
  const round = (n: number) => Math.round(n * 100) / 100
  console.log(JSON.stringify({
    bench: floor ? "http-floor" : "rpc-idle-get",
    db: flag("db") ?? "postgres",
    requests,
    p50: round(percentile(times, 0.5)),
    p95: round(percentile(times, 0.95)),
    p99: round(percentile(times, 0.99)),
    max: round(times[times.length - 1] ?? NaN),
    serverCpuMs: round(serverCpu),
    serverCpuMsPerRequest: round(serverCpu / requests),
    clientCpuMsPerRequest: round(clientCpu / requests)
  }))
  child.kill()
}

if (args[0] === "--serve") {
  Effect.runPromise(serve(args[1] ?? "postgres", args[2] === "" ? undefined : args[2])).then(
    () => process.exit(0),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
} else {
  client().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
