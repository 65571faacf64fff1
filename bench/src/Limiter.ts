/**
 * Shared rate limiters: acquisitions per second of one shared limiter with a limit too high to bind,
 * from one and from two processes on one Postgres database, with the CPU each acquisition costs in
 * Node and in Postgres.
 */
import { SharedLimiter } from "@effect-batch/domain"
import { SharedLimiters } from "@effect-batch/server"
import { Database } from "@effect-batch/tables"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ChildProcess from "node:child_process"
import { performance } from "node:perf_hooks"
import { childArgs } from "./ChildCommand.js"
import { freshPostgres, processCpuMs, report, serverCpuMs, tenant } from "./Harness.js"
import { orchestrator } from "./Workloads.js"

const limiterName = "fast"

/** A limit no run reaches: what is measured is the limiter's own cost. */
export const unbound = { limit: 1_000_000, interval: "1 second" } as const

/** Defines the bench tenant's shared limiter `fast` with `unbound`'s limit. */
export const defineUnbound = Effect.flatMap(SharedLimiters.SharedLimiters, (limiters) =>
  limiters.define(
    { tenant, actor: "bench" },
    new SharedLimiter.Definition({
      name: limiterName,
      limit: unbound.limit,
      interval: Duration.decode(unbound.interval)
    })
  ))

interface Counted {
  readonly acquisitions: number
  readonly ms: number
  readonly cpuMs: number
  readonly serverCpuMs: number
}

/** One process: `fibers` fibers acquire the shared limiter for `ms`; prints what it counted. */
export const acquireProcess = (options: { readonly url: string; readonly ms: number; readonly fibers: number }) => {
  // this process's connections, to measure what the server spends on them
  const applicationName = `limiter-${process.pid}`
  const url = new URL(options.url)
  url.searchParams.set("application_name", applicationName)
  return Effect.gen(function*() {
    const limiters = yield* SharedLimiters.SharedLimiters
    // one acquisition first: the limiter's row is read and the first block reserved
    yield* limiters.acquire(tenant, limiterName)
    let acquisitions = 0
    const server0 = yield* serverCpuMs(options.url, applicationName)
    const cpu0 = processCpuMs()
    const start = performance.now()
    const deadline = start + options.ms
    const loop: Effect.Effect<void> = Effect.suspend(() =>
      performance.now() >= deadline ? Effect.void : Effect.zipRight(
        limiters.acquire(tenant, limiterName),
        Effect.suspend(() => {
          acquisitions++
          return loop
        })
      )
    )
    yield* Effect.all(Array.from({ length: options.fibers }, () => loop), { concurrency: "unbounded" })
    const ms = performance.now() - start
    const cpuMs = processCpuMs() - cpu0
    const counted: Counted = {
      acquisitions,
      ms,
      cpuMs,
      serverCpuMs: (yield* serverCpuMs(options.url, applicationName)) - server0
    }
    yield* Effect.sync(() => process.stdout.write(`COUNTED ${JSON.stringify(counted)}\n`))
  }).pipe(Effect.provide(orchestrator(Database.layerPostgres(url.toString()), { enabled: false })))
}

/** Runs an acquiring process and gives what it counted. */
const runProcess = (url: string, ms: number, fibers: number) =>
  Effect.async<Counted, Error>((resume) => {
    const proc = ChildProcess.spawn(
      process.execPath,
      childArgs(["limiter-acquire", JSON.stringify({ url, ms, fibers })]),
      { stdio: ["ignore", "pipe", "inherit"] }
    )
    let output = ""
    proc.stdout.on("data", (data: Buffer) => {
      output += data.toString()
    })
    proc.on("exit", (code) => {
      const line = output.split("\n").find((l) => l.startsWith("COUNTED "))
      if (code !== 0 || line === undefined) return resume(Effect.fail(new Error(`limiter-acquire exited with ${code}`)))
      resume(Effect.succeed(JSON.parse(line.slice("COUNTED ".length))))
    })
  })

/** One and two processes acquiring one shared limiter for `ms` each. */
export const sharedLimiter = (options: { readonly ms: number; readonly fibers: number }) =>
  Effect.gen(function*() {
    const { url } = yield* freshPostgres
    const api = yield* Layer.build(orchestrator(Database.layerPostgres(url), { enabled: false }))
    yield* Effect.provide(defineUnbound, api)
    for (const processes of [1, 2]) {
      const counted = yield* Effect.all(
        Array.from({ length: processes }, () => runProcess(url, options.ms, options.fibers)),
        { concurrency: "unbounded" }
      )
      const serverMs = counted.reduce((sum, c) => sum + c.serverCpuMs, 0)
      const acquisitions = counted.reduce((sum, c) => sum + c.acquisitions, 0)
      const perSecond = counted.reduce((sum, c) => sum + c.acquisitions / c.ms * 1000, 0)
      yield* report({
        bench: "shared-limiter",
        db: "postgres",
        variant: `${processes} process${processes === 1 ? "" : "es"}`,
        items: acquisitions,
        ms: options.ms,
        extra: {
          acquisitionsPerSecond: Math.round(perSecond),
          slowestProcess: Math.round(Math.min(...counted.map((c) => c.acquisitions / c.ms * 1000))),
          nodeCpuUsPerAcquisition: Math.round(
            counted.reduce((sum, c) => sum + c.cpuMs, 0) * 1000 / acquisitions * 100
          ) /
            100,
          serverCpuUsPerAcquisition: Math.round(serverMs * 1000 / acquisitions * 100) / 100
        }
      })
    }
  }).pipe(Effect.scoped)
