import { EffectBatch, Http, Worker, Workflow, WorkflowRegistry } from "@effect-batch/server"
import type { TestDatabase } from "@effect-batch/tables"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Http_ from "node:http"

/** Two tenants, each with a token. */
export const tokens = {
  acme: "acme-token-0123456789",
  globex: "globex-token-0123456789"
} as const

export class PacedError extends Schema.TaggedError<PacedError>()("PacedError", { reason: Schema.String }) {}

/**
 * Sleeps `ms` (real time) per item; `fail: true` fails it for good, with a reason `pad` characters
 * long (big events, to fill a client's socket buffers).
 */
export const paced = Workflow.make({
  name: "paced",
  input: Schema.Struct({
    ms: Schema.Number,
    fail: Schema.optionalWith(Schema.Boolean, { default: () => false }),
    pad: Schema.optionalWith(Schema.Int, { default: () => 0 })
  }),
  output: Schema.Struct({ slept: Schema.Number }),
  error: PacedError,
  retryable: () => false,
  run: (input) =>
    Effect.sleep(Duration.millis(input.ms)).pipe(
      Effect.zipRight(
        input.fail
          ? Effect.fail(new PacedError({ reason: `asked to fail ${"x".repeat(input.pad)}` }))
          : Effect.succeed({ slept: input.ms })
      )
    )
})

/** Returns its input, whatever JSON it is. */
export const echo = Workflow.make({
  name: "echo",
  input: Schema.Unknown,
  output: Schema.Unknown,
  error: PacedError,
  run: (input) => Effect.succeed(input)
})

export class ScriptedError extends Schema.TaggedError<ScriptedError>()("ScriptedError", {
  retryable: Schema.Boolean
}) {}
export class Poison extends Schema.TaggedError<Poison>()("Poison", {}) {}

/** What one attempt of a `scripted` item does. */
export const ScriptStep = Schema.Literal("ok", "retry", "fail", "poison", "throttle", "timeout", "defect")

/**
 * Attempt `n` of an item does step `n` of its script (the last one again past its end): succeed,
 * fail retryably, fail for good, fail with `Poison` (for a quarantine category), answer 429 on the
 * `downstream` limiter, hang until its timeout, or die.
 */
export const scripted = Workflow.make({
  name: "scripted",
  input: Schema.Struct({ script: Schema.NonEmptyArray(ScriptStep) }),
  output: Schema.Struct({ attempt: Schema.Number }),
  error: Schema.Union(ScriptedError, Poison),
  retryable: (e) => e._tag === "ScriptedError" && e.retryable,
  run: (input, context) => {
    const step = input.script[Math.min(context.attempt, input.script.length) - 1]
    switch (step) {
      case "retry":
        return Effect.fail(new ScriptedError({ retryable: true }))
      case "fail":
        return Effect.fail(new ScriptedError({ retryable: false }))
      case "poison":
        return Effect.fail(new Poison())
      case "throttle":
        return Effect.fail(new Workflow.RateLimited({ limiter: "downstream", retryAfter: Duration.millis(20) }))
      case "timeout":
        return Effect.never
      case "defect":
        return Effect.die("scripted defect")
      default:
        return Effect.succeed({ attempt: context.attempt })
    }
  }
})

/** `n` items that each take `ms`. */
export const items = (n: number, ms: number) =>
  Array.from({ length: n }, (_, i) => ({ key: `item-${String(i).padStart(4, "0")}`, input: { ms } }))

/**
 * A server on a free port over `db`, with the orchestrator running `paced`, `echo` and `scripted`, and
 * the tokens above.
 * Exposes the database, the orchestrator and the server (for its address).
 */
export const server = (db: TestDatabase.TestDatabase, config: Http.ServeOptions["config"] = {}) =>
  Http.layer({ port: 0, host: "127.0.0.1", config }).pipe(
    Layer.provideMerge(Http.layerAuth([
      { token: tokens.acme, tenant: "acme", actor: "alice" },
      { token: tokens.globex, tenant: "globex" }
    ])),
    Layer.provideMerge(
      EffectBatch.layer.pipe(
        Layer.provide(WorkflowRegistry.layer(paced, echo, scripted)),
        Layer.provide(Worker.layerConfig({ pollInterval: Duration.millis(100) }))
      )
    ),
    Layer.provideMerge(db),
    Layer.orDie
  )

/** A plain HTTP answer. */
export interface Answer {
  readonly status: number
  readonly headers: Http_.IncomingHttpHeaders
  readonly body: string
}

/** One HTTP request with Node's client (no retries, no pooling surprises). */
export const request = (
  url: string,
  options: {
    readonly method?: string
    readonly headers?: Record<string, string>
    readonly body?: string
    /** send the body chunked, without a Content-Length */
    readonly chunked?: boolean
  } = {}
) =>
  Effect.async<Answer, Error>((resume) => {
    const headers = options.body === undefined || options.chunked === true
      ? options.headers
      : { "content-length": String(Buffer.byteLength(options.body)), ...options.headers }
    const req = Http_.request(url, { method: options.method ?? "GET", headers, agent: false }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () =>
        resume(Effect.succeed({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8")
        })))
      res.on("error", (error) => resume(Effect.fail(error)))
    })
    req.on("error", (error) => resume(Effect.fail(error)))
    if (options.body !== undefined) req.write(options.body)
    req.end()
    return Effect.sync(() => req.destroy())
  })

/** `Authorization: Bearer` for a tenant. */
export const bearer = (tenant: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[tenant]}` })

/** One NDJSON line of an RPC request. */
export const rpcLine = (tag: string, payload: unknown, id = "1") =>
  JSON.stringify({ _tag: "Request", id, tag, payload, headers: [] }) + "\n"

/** The `Exit` message of an RPC answer, if it has one. */
export const rpcExit = (answer: Answer) =>
  answer.body.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)).find((m) => m._tag === "Exit")?.exit

/** The `_tag` of the typed failure of an RPC answer, or "success". */
export const rpcOutcome = (answer: Answer): string => {
  const exit = rpcExit(answer)
  if (exit === undefined) return `no exit: ${answer.body.slice(0, 200)}`
  if (exit._tag === "Success") return "success"
  return exit.cause?._tag === "Fail" ? exit.cause.error._tag : `defect: ${JSON.stringify(exit.cause)}`
}
