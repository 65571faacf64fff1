import { BatchOrchestrator, Http, Observability } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Http_ from "node:http"
import { vi } from "vitest"
import { caller } from "./support/Harness.js"
import { bearer, items, paced, request, rpcLine, rpcOutcome, server } from "./support/HttpServer.js"

/**
 * Traces reach an OTLP/HTTP collector (a receiver in this test that keeps every span it is sent), and
 * the logs take the configured format.
 */

interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: Record<string, unknown> }>
}

class Collector extends Context.Tag("test/Collector")<Collector, {
  readonly url: string
  readonly spans: () => ReadonlyArray<ReceivedSpan>
}>() {}

const collector = Layer.scoped(
  Collector,
  Effect.acquireRelease(
    Effect.async<{ server: Http_.Server; spans: Array<ReceivedSpan> }>((resume) => {
      const spans: Array<ReceivedSpan> = []
      const server = Http_.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          if (req.url === "/v1/traces" && req.method === "POST") {
            const body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
            for (const resource of body.resourceSpans ?? []) {
              for (const scope of resource.scopeSpans ?? []) spans.push(...scope.spans)
            }
          }
          res.writeHead(200, { "content-type": "application/json" }).end("{}")
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, spans })))
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ server, spans }) => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    return { url: `http://127.0.0.1:${port}/v1/traces`, spans: () => spans }
  }))
)

const traced = Layer.unwrapEffect(
  Effect.map(
    Collector,
    (c) => Observability.layerOtlp({ url: c.url, attemptSampleRate: 1, exportInterval: "100 millis" }).pipe(Layer.orDie)
  )
)

const spansNamed = (name: string) => Effect.map(Collector, (c) => c.spans().filter((s) => s.name === name))

const attribute = (span: ReceivedSpan, key: string) => span.attributes.find((a) => a.key === key)?.value

/** Waits (up to 10 s) until the collector holds a span that `found` accepts. */
const received = (what: string, found: (spans: ReadonlyArray<ReceivedSpan>) => boolean) =>
  Effect.gen(function*() {
    const c = yield* Collector
    for (let n = 0; n < 100; n++) {
      if (found(c.spans())) return
      yield* Effect.sleep("100 millis")
    }
    return yield* Effect.dieMessage(`${what}: not received; got ${[...new Set(c.spans().map((s) => s.name))]}`)
  })

for (const [name, db] of TestDatabase.databases) {
  layer(
    server(db).pipe(Layer.provide(traced), Layer.provideMerge(collector)),
    { excludeTestServices: true, timeout: "60 seconds" }
  )(`traces over OTLP (${name})`, (it) => {
    it.scoped("a batch's submit, commits and attempts arrive as spans, and an RPC continues the caller's trace", () =>
      Effect.gen(function*() {
        const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
        const submitted = yield* orchestrator.submitEncoded(paced.name, items(12, 1), { concurrency: 4 }, caller)
        yield* orchestrator.await(caller, submitted.id)

        yield* received(
          "an attempt span per item",
          (spans) => spans.filter((s) => s.name === "BatchRunner.attempt").length >= 12
        )
        const attempts = yield* spansNamed("BatchRunner.attempt")
        const keys = new Set(attempts.map((s) => attribute(s, "itemKey")?.["stringValue"]))
        assert.strictEqual(keys.size, 12, "every item's attempt has its span, naming the item")
        assert.isTrue(attempts.every((s) => attribute(s, "batchId")?.["stringValue"] === submitted.id))
        yield* received(
          "submit and commit spans",
          (spans) =>
            spans.some((s) => s.name === "BatchOrchestrator.submit") &&
            spans.some((s) => s.name === "BatchRunner.commit")
        )

        const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
        const url = yield* Http.url
        const answer = yield* request(`${url}/rpc`, {
          method: "POST",
          headers: {
            ...bearer("acme"),
            "content-type": "application/ndjson",
            traceparent: `00-${traceId}-00f067aa0ba902b7-01`
          },
          body: rpcLine("GetBatch", { batchId: submitted.id })
        })
        assert.strictEqual(rpcOutcome(answer), "success")
        yield* received(
          "the RPC's spans in the caller's trace",
          (spans) => spans.filter((s) => s.traceId === traceId).length >= 2
        )
        const inTrace = (yield* Collector).spans().filter((s) => s.traceId === traceId)
        const root = inTrace.find((s) => s.parentSpanId === "00f067aa0ba902b7")
        assert.isDefined(root, "the server's span is a child of the caller's")
        assert.isTrue(inTrace.some((s) => s.name.includes("GetBatch")), "the RPC has its span in the trace")
      }))
  })
}

describe("logs", () => {
  /** What the loggers write to the console while `effect` runs under `Observability.layerLogs(options)`. */
  const written = (options: Parameters<typeof Observability.layerLogs>[0]) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const lines: Array<string> = []
        const spy = vi.spyOn(globalThis.console, "log").mockImplementation((...args: Array<unknown>) => {
          lines.push(args.map(String).join(" "))
        })
        return { lines, spy }
      }),
      ({ lines }) =>
        Effect.logInfo("an info line").pipe(
          Effect.zipRight(Effect.logDebug("a debug line")),
          Effect.annotateLogs({ batchId: "b-1" }),
          Effect.provide(Observability.layerLogs(options)),
          Effect.as(lines)
        ),
      ({ spy }) => Effect.sync(() => spy.mockRestore())
    )

  it.effect("json writes one JSON object per line, with the annotations; the level filters", () =>
    Effect.gen(function*() {
      const lines = yield* written({ format: "json", level: LogLevel.Info })
      assert.strictEqual(lines.length, 1, "the debug line is below the level")
      const line = JSON.parse(lines[0]!)
      assert.strictEqual(line.message, "an info line")
      assert.strictEqual(line.logLevel, "INFO")
      assert.deepStrictEqual(line.annotations, { batchId: "b-1" })
      const both = yield* written({ format: "json", level: LogLevel.Debug })
      assert.deepStrictEqual(both.map((l) => JSON.parse(l).message), ["an info line", "a debug line"])
    }))

  it.effect("logfmt writes key=value pairs", () =>
    Effect.gen(function*() {
      const lines = yield* written({ format: "logfmt", level: LogLevel.Info })
      assert.strictEqual(lines.length, 1)
      assert.match(lines[0]!, /level=INFO/)
      assert.match(lines[0]!, /message="an info line"/)
      assert.match(lines[0]!, /batchId=b-1/)
    }))
})
