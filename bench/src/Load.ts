/**
 * Load and memory: the real HTTP server (`Http.layer` with bearer auth, the orchestrator and its worker)
 * in this process, driven over HTTP by NDJSON `/rpc` requests from the same process (keep-alive sockets,
 * at most `concurrency` in flight).
 *
 * - `loadRpc`: a mix of RPCs (CreateBatch of small batches, GetBatch, GetProgress, ListItems, GetResults,
 *   ListBatches) at each concurrency, latency percentiles per kind, errors, and the heap (after forced
 *   GCs) before and after; then sequential GetBatch on the idle server.
 * - `loadLarge`: one batch of no-op items submitted by CreateBatch and run to completion: throughput, and
 *   the peak RSS and heap above the baseline.
 */
import { Ids } from "@effect-batch/domain"
import { BatchOrchestrator, EffectBatch, Http, Worker, WorkflowRegistry } from "@effect-batch/server"
import type { TestDatabase } from "@effect-batch/tables"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as NodeHttp from "node:http"
import { performance } from "node:perf_hooks"
import * as V8 from "node:v8"
import { type DbKind, freshDatabase, memorySampler, processCpuMs, report, since, tenant } from "./Harness.js"
import { items, noop } from "./Workloads.js"

const token = "load-bench-token-0123456789"

/** The HTTP server with the orchestrator running the no-op workflow, over `database`. */
const server = (database: TestDatabase.TestDatabase) =>
  Http.layer({ port: 0, host: "127.0.0.1" }).pipe(
    Layer.provideMerge(Http.layerAuth([{ token, tenant }])),
    Layer.provideMerge(
      EffectBatch.layer.pipe(
        Layer.provide(WorkflowRegistry.layer(noop)),
        Layer.provide(Worker.layerConfig({}))
      )
    ),
    Layer.provideMerge(database),
    Layer.orDie
  )

/** How long an RPC took and whether it ended in a `Success` exit. */
interface Timing {
  readonly ms: number
  readonly ok: boolean
}

/** One RPC answer: its timing and its exit's value. */
interface Answer extends Timing {
  readonly value: unknown
}

const Message = Schema.parseJson(Schema.Struct({
  _tag: Schema.String,
  exit: Schema.optional(Schema.Struct({ _tag: Schema.String, value: Schema.optional(Schema.Unknown) }))
}))
const decodeMessage = Schema.decodeUnknownEither(Message)

/** The `Exit` of an NDJSON RPC answer. */
const exitOf = (body: string) => {
  for (const line of body.split("\n")) {
    if (line === "") continue
    const message = decodeMessage(line)
    if (message._tag === "Right" && message.right._tag === "Exit") return message.right.exit
  }
  return undefined
}

/** Posts one RPC to `/rpc` over the agent's keep-alive sockets. */
const rpc = (base: string, agent: NodeHttp.Agent) => (tag: string, payload: unknown) =>
  new Promise<Answer>((resolve) => {
    const body = JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [] }) + "\n"
    const start = performance.now()
    const req = NodeHttp.request(`${base}/rpc`, {
      method: "POST",
      agent,
      headers: { authorization: `Bearer ${token}`, "content-length": String(Buffer.byteLength(body)) }
    }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () => {
        const exit = exitOf(Buffer.concat(chunks).toString("utf8"))
        resolve({ ms: since(start), ok: res.statusCode === 200 && exit?._tag === "Success", value: exit?.value })
      })
      res.on("error", () => resolve({ ms: since(start), ok: false, value: undefined }))
    })
    req.on("error", () => resolve({ ms: since(start), ok: false, value: undefined }))
    req.end(body)
  })

const BatchRef = Schema.Struct({ id: Schema.String, state: Schema.Struct({ _tag: Schema.String }) })
const decodeBatch = Schema.decodeUnknownSync(BatchRef)
const decodeBatchId = Schema.decodeSync(Ids.BatchId)

/** The request mix per 100 requests. */
const mix = {
  CreateBatch: 10,
  GetBatch: 30,
  GetProgress: 20,
  ListItems: 15,
  GetResults: 10,
  ListBatches: 15
} as const
type Kind = keyof typeof mix
const kinds = Object.keys(mix) as Array<Kind>

/** A deterministic shuffle of `count` request kinds in the proportions of `mix`. */
const schedule = (count: number, seed: number) => {
  const list: Array<Kind> = []
  for (let i = 0; list.length < count; i++) {
    for (const kind of kinds) {
      for (let j = 0; j < mix[kind] && list.length < count; j++) list.push(kind)
    }
  }
  let state = seed
  const random = () => {
    state = (state * 1103515245 + 12345) % 2147483648
    return state / 2147483648
  }
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const swap = list[i]!
    list[i] = list[j]!
    list[j] = swap
  }
  return list
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)] ?? 0
const round2 = (n: number) => Math.round(n * 100) / 100

/** p50, p95, p99 and max of some latencies, under `prefix`. */
const latencies = (prefix: string, values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return {
    [`${prefix}P50Ms`]: round2(percentile(sorted, 0.5)),
    [`${prefix}P95Ms`]: round2(percentile(sorted, 0.95)),
    [`${prefix}P99Ms`]: round2(percentile(sorted, 0.99)),
    [`${prefix}MaxMs`]: round2(sorted[sorted.length - 1] ?? 0)
  }
}

/** heapUsed after forced collections (the harness runs with `--expose-gc`), in MiB. */
const settledHeapMiB = Effect.promise(async () => {
  await new Promise((resolve) => setTimeout(resolve, 200))
  const global = globalThis
  for (let i = 0; i < 3; i++) {
    if ("gc" in global && typeof global.gc === "function") global.gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return round2(process.memoryUsage().heapUsed / 1024 / 1024)
})

const smallBatch = (n: number) => ({
  workflow: noop.name,
  items: items(n),
  config: { concurrency: 4 }
})

/**
 * The RPC mix at each concurrency (`requests` each, after `warmup` uncounted ones), then `idleGets`
 * sequential GetBatch once every batch has settled.
 */
export const loadRpc = (options: {
  readonly db: DbKind
  readonly requests: number
  readonly warmup: number
  readonly concurrencies: ReadonlyArray<number>
  readonly idleGets: number
  /** a heap snapshot after each heap reading: `PREFIX-N.heapsnapshot` */
  readonly heapSnapshots?: string | undefined
}) =>
  Effect.gen(function*() {
    const { layer, serverCpu } = yield* freshDatabase(options.db)
    const context = yield* Layer.build(server(layer))
    const base = yield* Effect.provide(Http.url, context)
    const orchestrator = yield* Effect.provide(BatchOrchestrator.BatchOrchestrator, context)
    const agent = new NodeHttp.Agent({ keepAlive: true, maxSockets: Math.max(...options.concurrencies) })
    yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
    const call = rpc(base, agent)

    // batches of 100 settled items for the reads to look at
    const targets: Array<string> = []
    for (let i = 0; i < 10; i++) {
      const created = yield* Effect.promise(() => call("CreateBatch", smallBatch(100)))
      if (!created.ok) return yield* Effect.dieMessage("could not create the batches to read")
      targets.push(decodeBatch(created.value).id)
    }
    const created: Array<string> = []
    const awaitAll = (ids: ReadonlyArray<string>) =>
      Effect.forEach(ids, (id) => orchestrator.await({ tenant }, decodeBatchId(id)), {
        discard: true
      })
    yield* awaitAll(targets)

    const payload = (kind: Kind, i: number): unknown => {
      const batchId = targets[i % targets.length]
      switch (kind) {
        case "CreateBatch":
          return smallBatch(10)
        case "ListItems":
          return { batchId, limit: 100 }
        case "ListBatches":
          return { limit: 20 }
        default:
          return { batchId }
      }
    }
    /** Runs `list` with at most `concurrency` requests in flight; the answers by kind. */
    const drive = (list: ReadonlyArray<Kind>, concurrency: number) =>
      Effect.promise(async () => {
        // only times and outcomes are kept: holding the answers would count them in the server's heap
        const answers = new Map<Kind, Array<Timing>>(kinds.map((kind) => [kind, []]))
        let next = 0
        const start = performance.now()
        const lane = async () => {
          while (next < list.length) {
            const i = next++
            const kind = list[i]!
            const answer = await call(kind, payload(kind, i))
            answers.get(kind)!.push({ ms: answer.ms, ok: answer.ok })
            if (kind === "CreateBatch" && answer.ok) created.push(decodeBatch(answer.value).id)
          }
        }
        await Promise.all(Array.from({ length: concurrency }, lane))
        return { answers, ms: since(start) }
      })

    yield* drive(schedule(options.warmup, 7), Math.max(...options.concurrencies))
    yield* awaitAll(created.splice(0))
    let snapshots = 0
    const heap = settledHeapMiB.pipe(Effect.tap(() =>
      Effect.sync(() => {
        if (options.heapSnapshots !== undefined) {
          V8.writeHeapSnapshot(`${options.heapSnapshots}-${snapshots++}.heapsnapshot`)
        }
      })
    ))
    const heapStart = yield* heap
    let heapBefore = heapStart
    for (const concurrency of options.concurrencies) {
      const rssBefore = process.memoryUsage().rss
      const cpu0 = processCpuMs()
      const server0 = yield* serverCpu
      const elu0 = performance.eventLoopUtilization()
      const { answers, ms } = yield* drive(schedule(options.requests, concurrency), concurrency)
      const elu = performance.eventLoopUtilization(elu0).utilization
      const nodeCpuMs = processCpuMs() - cpu0
      const serverCpuMs = (yield* serverCpu) - server0
      yield* awaitAll(created.splice(0))
      const heapAfter = yield* heap
      const all = [...answers.values()].flat()
      const perKind: Record<string, number> = {}
      for (const [kind, list] of answers) {
        Object.assign(perKind, latencies(kind, list.map((a) => a.ms)))
        perKind[`${kind}Count`] = list.length
        perKind[`${kind}Errors`] = list.filter((a) => !a.ok).length
      }
      yield* report({
        bench: "load-rpc",
        db: options.db,
        variant: `concurrency ${concurrency}`,
        items: all.length,
        ms,
        extra: {
          ...latencies("all", all.map((a) => a.ms)),
          ...perKind,
          errors: all.filter((a) => !a.ok).length,
          requestsPerSecond: Math.round(all.length / ms * 1000),
          nodeCpuMsPerRequest: round2(nodeCpuMs / all.length),
          serverCpuMsPerRequest: round2(serverCpuMs / all.length),
          nodeCpuShare: round2(nodeCpuMs / ms),
          eventLoopUtilization: round2(elu),
          heapBeforeMiB: heapBefore,
          heapAfterMiB: heapAfter,
          heapGrowthPct: round2((heapAfter - heapBefore) / heapBefore * 100),
          heapGrowthSinceStartPct: round2((heapAfter - heapStart) / heapStart * 100),
          rssMiB: round2(process.memoryUsage().rss / 1024 / 1024),
          rssGrowthMiB: round2((process.memoryUsage().rss - rssBefore) / 1024 / 1024)
        }
      })
      heapBefore = heapAfter
    }

    const idle = targets[0]!
    const gets: Array<Timing> = []
    const start = performance.now()
    const cpu0 = processCpuMs()
    const server0 = yield* serverCpu
    for (let i = 0; i < options.idleGets; i++) {
      gets.push(yield* Effect.promise(() => call("GetBatch", { batchId: idle }).then(({ ms, ok }) => ({ ms, ok }))))
    }
    yield* report({
      bench: "load-idle-get",
      db: options.db,
      variant: "sequential GetBatch",
      items: gets.length,
      ms: since(start),
      extra: {
        ...latencies("get", gets.map((a) => a.ms)),
        errors: gets.filter((a) => !a.ok).length,
        nodeCpuMsPerRequest: round2((processCpuMs() - cpu0) / gets.length),
        serverCpuMsPerRequest: round2(((yield* serverCpu) - server0) / gets.length)
      }
    })
  }).pipe(Effect.scoped)

/** One batch of `items` no-op items submitted over HTTP and run to completion. */
export const loadLarge = (options: { readonly db: DbKind; readonly items: number; readonly concurrency: number }) =>
  Effect.gen(function*() {
    const { layer } = yield* freshDatabase(options.db)
    const context = yield* Layer.build(server(layer))
    const base = yield* Effect.provide(Http.url, context)
    const orchestrator = yield* Effect.provide(BatchOrchestrator.BatchOrchestrator, context)
    const agent = new NodeHttp.Agent({ keepAlive: true, maxSockets: 1 })
    yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
    const call = rpc(base, agent)
    const sampler = memorySampler()
    const start = performance.now()
    const created = yield* Effect.promise(() =>
      call("CreateBatch", {
        workflow: noop.name,
        items: items(options.items),
        config: { concurrency: options.concurrency }
      })
    )
    if (!created.ok) return yield* Effect.dieMessage("CreateBatch failed")
    const submitMs = since(start)
    const id = decodeBatchId(decodeBatch(created.value).id)
    const done = yield* orchestrator.await({ tenant }, id)
    const ms = since(start)
    const peaks = sampler.stop()
    if (done.state._tag !== "Completed" || done.counts.succeeded !== options.items) {
      return yield* Effect.dieMessage(`batch ended ${done.state._tag} with ${done.counts.succeeded}/${options.items}`)
    }
    yield* report({
      bench: "load-large",
      db: options.db,
      variant: `${options.items} items over HTTP`,
      items: options.items,
      ms,
      extra: {
        ...peaks,
        submitMs: Math.round(submitMs),
        itemsPerSecond: Math.round(options.items / ms * 1000),
        runPhaseItemsPerSecond: Math.round(options.items / (ms - submitMs) * 1000)
      }
    })
  }).pipe(Effect.scoped)
