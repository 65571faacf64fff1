/**
 * SSE fan-out: many subscribers on one batch over real HTTP (`GET /batches/:id/events`, bearer
 * header), each checked to receive the complete ordered, gapless sequence up to the terminal event, and
 * the latency from commit to receipt.
 *
 * (`bun run bench:sse`, or node with `--conditions=@effect-batch/source --import tsx`):
 *
 *   bench/SseFanout.ts       1,000 subscribers, 500 items (concurrency 10, 20 ms each), on Postgres then on
 *                            the embedded database
 *   bench/SseFanout.ts --db postgres --subscribers 1000 --items 30 --concurrency 1 --ms 1000
 *   (also --connect-concurrency 100: subscribers connecting at once; --timeout 1800: seconds to wait for them)
 *   bench/SseFanout.ts --profile /tmp/sse    CPU profiles of the server while subscribers connect and while
 *                                            the batch runs: /tmp/sse-postgres-{connect,run}.cpuprofile
 *
 * The server (`sse/Server.ts`) runs in a child process on a fresh database, with one batch whose items
 * wait for a gate. This process connects every subscriber (`sse/Subscribers.ts`), waits until each has
 * caught up with the events so far, opens the gate, and waits for every subscriber to end.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as ChildProcess from "node:child_process"
import * as Os from "node:os"
import * as Readline from "node:readline"
import * as Url from "node:url"
import { Message, messagePrefix, Ready, Report, serve, ServerOptions, token } from "./sse/Server.js"
import { type RunStats, summarize, table } from "./sse/Stats.js"
import { makeWallClock, subscribe } from "./sse/Subscribers.js"

const self = Url.fileURLToPath(import.meta.url)
const args = process.argv.slice(2)
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}
const count = (name: string, fallback: number) => {
  const value = Number(flag(name) ?? fallback)
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number`)
  return value
}

const decodeMessage = Schema.decodeUnknownEither(Schema.parseJson(Message))

/** The server in a child process: its messages, its stdin, and its exit. */
const spawnServer = (options: ServerOptions) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const messages = yield* Queue.unbounded<Message>()
      const exited = yield* Deferred.make<number | null>()
      const child = ChildProcess.spawn(
        process.execPath,
        [
          "--expose-gc",
          "--conditions=@effect-batch/source",
          "--import",
          "tsx",
          self,
          "--serve",
          JSON.stringify(options)
        ],
        { stdio: ["pipe", "pipe", "inherit"] }
      )
      Readline.createInterface({ input: child.stdout }).on("line", (line) => {
        if (!line.startsWith(messagePrefix)) return void process.stderr.write(`[server] ${line}\n`)
        const message = decodeMessage(line.slice(messagePrefix.length))
        if (message._tag === "Right") Queue.unsafeOffer(messages, message.right)
        else process.stderr.write(`[server] unreadable message: ${message.left.message}\n`)
      })
      child.on("exit", (code) => Deferred.unsafeDone(exited, Effect.succeed(code)))
      const next = <A extends Message>(is: (message: Message) => message is A, timeout: Duration.DurationInput) =>
        Effect.raceFirst(
          Queue.take(messages).pipe(Effect.filterOrDieMessage(is, "unexpected message from the server")),
          Deferred.await(exited).pipe(Effect.flatMap((code) => Effect.dieMessage(`the server exited (${code})`)))
        ).pipe(Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new Error(`no answer within ${Duration.format(timeout)}`)
        }))
      const tell = (line: string) => Effect.sync(() => child.stdin.write(`${line}\n`))
      return { child, exited, next, tell }
    }),
    ({ child, exited }) =>
      Effect.sync(() => child.stdin.end()).pipe(
        // the server exits by itself after its report; otherwise stop it
        Effect.zipRight(
          Deferred.await(exited).pipe(
            Effect.timeout("60 seconds"),
            Effect.catchAll(() => Effect.sync(() => child.kill("SIGKILL")))
          )
        )
      )
  )

/** Polls `done` every 20 ms for at most `timeoutMs` (then says so, and the subscribers left count as failures). */
const waitUntil = (done: () => boolean, timeoutMs: number, what: string) =>
  Effect.gen(function*() {
    const deadline = performance.now() + timeoutMs
    while (!done()) {
      if (performance.now() > deadline) return yield* progress(`${what}: not within ${timeoutMs} ms, going on`)
      yield* Effect.sleep("20 millis")
    }
  })

const progress = (line: string) => Effect.sync(() => process.stderr.write(`${line}\n`))

const processCpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

/** One run: a server, its batch and every subscriber. */
const run = (options: ServerOptions, connectConcurrency: number, timeoutMs: number) =>
  Effect.gen(function*() {
    const server = yield* spawnServer(options)
    const ready = yield* server.next(Schema.is(Ready), "120 seconds")
    const clock = makeWallClock()
    const url = `${ready.url}/batches/${ready.batchId}/events`
    const capacity = options.items * 2 + 16

    const connecting = performance.now()
    const subscribers = yield* Effect.forEach(
      Array.from({ length: options.subscribers }),
      () => subscribe(url, token, capacity, clock),
      { concurrency: connectConcurrency }
    )
    const headersMs = performance.now() - connecting
    yield* waitUntil(
      () => subscribers.every((s) => s.last >= ready.seq || s.outcome !== undefined),
      timeoutMs,
      "every subscriber caught up"
    )
    const connectMs = performance.now() - connecting
    yield* progress(`${options.db}: ${options.subscribers} subscribed and caught up in ${Math.round(connectMs)} ms; go`)

    const cpuStart = processCpuMs()
    const goAt = clock()
    yield* server.tell("go")
    const ticker = yield* Effect.forkScoped(
      Effect.suspend(() => {
        const delivered = subscribers.reduce((sum, s) => sum + s.events, 0)
        const ended = subscribers.filter((s) => s.outcome !== undefined).length
        return progress(`${options.db}: ${delivered} events delivered, ${ended} subscribers ended`)
      }).pipe(Effect.delay("5 seconds"), Effect.forever)
    )
    yield* waitUntil(() => subscribers.every((s) => s.outcome !== undefined), timeoutMs, "every subscriber ended")
    yield* Fiber.interrupt(ticker)
    const clientCpuMs = processCpuMs() - cpuStart
    yield* server.tell("report")
    const report = yield* server.next(Schema.is(Report), "60 seconds")
    return summarize({ subscribers, report, readySeq: ready.seq, goAt, headersMs, connectMs, clientCpuMs })
  }).pipe(Effect.scoped)

const coordinator = Effect.gen(function*() {
  const dbs = (flag("db") ?? "postgres,embedded").split(",").map((db) =>
    Schema.decodeUnknownSync(ServerOptions.fields.db)(db)
  )
  const base = {
    subscribers: count("subscribers", 1_000),
    items: count("items", 500),
    concurrency: count("concurrency", 10),
    ms: count("ms", 20)
  }
  const connectConcurrency = count("connect-concurrency", 100)
  const timeoutMs = count("timeout", 1_800) * 1000
  const profile = flag("profile")
  const runs: Array<readonly [string, RunStats]> = []
  yield* Effect.sync(() =>
    console.log(
      `SSE fan-out: ${base.subscribers} subscribers, ${base.items} items (concurrency ${base.concurrency}, ` +
        `${base.ms} ms each), ${Os.cpus().length} CPUs, Node ${process.version}, ${new Date().toISOString()}`
    )
  )
  for (const db of dbs) {
    const stats = yield* run(
      { db, ...base, ...(profile === undefined ? {} : { profile: `${profile}-${db}` }) },
      connectConcurrency,
      timeoutMs
    )
    runs.push([db, stats])
    yield* Effect.sync(() => {
      console.log(`\n${db}: ${stats.failures === 0 ? "every subscriber got every event" : "FAILURES"}`)
      for (const [reason, n] of stats.reasons) console.log(`  ${n} × ${reason}`)
      const slowest = stats.slowest.map(([seq, tag, ms]) => `${seq} ${tag} ${Math.round(ms)} ms`)
      console.log(`  slowest to reach a first subscriber: ${slowest.join(", ")}`)
    })
  }
  yield* Effect.sync(() => console.log(`\n${table(runs)}`))
})

const program = args[0] === "--serve"
  ? Schema.decodeUnknown(Schema.parseJson(ServerOptions))(args[1]).pipe(Effect.flatMap(serve))
  : coordinator

Effect.runPromise(program).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
