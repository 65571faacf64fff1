/**
 * Unary RPCs on `POST /rpc` without the RPC server's protocol machinery. When every request of a body
 * is unary (its success is not a stream), each runs its handler in the HTTP request's fiber, with the
 * payload the guard decoded and the principal it authenticated (what the `Authentication` middleware
 * provides), and the body is answered at once with the NDJSON `Exit` lines that `RpcServer` (with
 * `disableFatalDefects`: a defect is an `Exit` like a failure) and `RpcSerialization.ndjson` write,
 * byte for byte. The requests of one body run concurrently and are answered in request order (the
 * protocol answers them as they finish). Each keeps its `RpcServer.<Tag>` span.
 *
 * A body with a streaming RPC, or with an RPC behind a middleware other than `Authentication`, goes
 * through the protocol (`RpcProtocol`).
 *
 * @since 0.6.0
 */
import { Api, Rpcs } from "@effect-batch/domain"
import * as Headers from "@effect/platform/Headers"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcMessage from "@effect/rpc/RpcMessage"
import * as RpcSchema from "@effect/rpc/RpcSchema"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import { concat } from "../internal/Bytes.js"
import type { Principal } from "./Auth.js"
import type { ApiRpc, Checked } from "./RpcGuard.js"

/**
 * The handlers of every RPC of the `Api`, as its handler layers build them.
 *
 * @since 0.6.0
 */
export type Handlers = Rpc.ToHandler<ApiRpc>

const utf8 = new TextEncoder()
const parser = RpcSerialization.ndjson.unsafeMake()

/**
 * One response message as the protocol writes it: an NDJSON line, or a `Defect` line for a message
 * that is not JSON (a `BigInt`, a cycle).
 *
 * @since 0.6.0
 */
export const encodeLine = (response: RpcMessage.FromServerEncoded): Uint8Array | undefined => {
  let encoded: string | Uint8Array | undefined
  try {
    encoded = parser.encode(response)
  } catch (cause) {
    encoded = parser.encode(RpcMessage.ResponseDefectEncoded(cause))
  }
  return typeof encoded === "string" ? utf8.encode(encoded) : encoded
}

const codecOf = (rpc: ApiRpc) => ({
  encodeExit: Schema.encode(Rpc.exitSchema(rpc)),
  encodeDefect: Schema.encode(rpc.defectSchema),
  /** whether the RPC declares `Authentication`, which provides `CurrentTenant` */
  authenticated: rpc.middlewares.size > 0
})
type Codec = ReturnType<typeof codecOf>

/** The unary RPCs of the `Api` whose only middleware (if any) is `Authentication`, with their codecs. */
const codecs = new Map<string, Codec>()
for (const rpc of Api.Api.requests.values()) {
  if (RpcSchema.isStreamSchema(rpc.successSchema)) continue
  if (![...rpc.middlewares].every((tag) => tag.key === Rpcs.Authentication.key)) continue
  codecs.set(rpc._tag, codecOf(rpc))
}

/**
 * Whether every request of a body can be answered here, without the protocol.
 *
 * @since 0.6.0
 */
export const isUnary = (requests: ReadonlyArray<Checked>): boolean =>
  requests.every((request) => codecs.has(request.rpc._tag))

const encodeDefect = Schema.encodeSync(Schema.Defect)

/** An `Exit` that cannot be encoded is answered as a defect of the request, as `RpcServer` does. */
const requestDefect = (codec: Codec, requestId: string, defect: unknown) =>
  codec.encodeDefect(defect).pipe(
    Effect.map((encoded) =>
      encodeLine({ _tag: "Exit", requestId, exit: { _tag: "Failure", cause: { _tag: "Die", defect: encoded } } })
    ),
    Effect.catchAllCause((cause) =>
      Effect.succeed(encodeLine({ _tag: "Defect", defect: encodeDefect(Cause.squash(cause)) }))
    )
  )

const answer = (codec: Codec, context: Context.Context<never>, requestId: string, exit: Rpc.Exit<ApiRpc>) =>
  codec.encodeExit(exit).pipe(
    Effect.provide(context),
    Effect.map((encoded) => encodeLine({ _tag: "Exit", requestId, exit: encoded })),
    Effect.catchAllCause((cause) =>
      requestDefect(codec, requestId, Cause.squash(Cause.map(cause, ParseResult.TreeFormatter.formatErrorSync)))
    )
  )

/** Runs one request's handler as `RpcServer.handleRequest` does and encodes its `Exit` line. */
const run = (
  handlers: Context.Context<Handlers>,
  options: { readonly clientId: number; readonly headers: Headers.Headers; readonly principal: Principal },
  { envelope, payload, rpc }: Checked
): Effect.Effect<Uint8Array | undefined> =>
  Effect.suspend(() => {
    const codec = codecs.get(rpc._tag)
    const requestId = String(RpcMessage.RequestId(envelope.id))
    const entry: Rpc.Handler<string> | undefined = handlers.unsafeMap.get(rpc.key)
    if (codec === undefined) return Effect.dieMessage(`${rpc._tag} is not a unary RPC`)
    if (entry === undefined) {
      return answer(codec, Context.empty(), requestId, Exit.die(`Unknown request tag: ${rpc._tag}`))
    }
    const result = entry.handler(payload, { clientId: options.clientId, headers: options.headers })
    const wrapped = Rpc.isWrapper(result)
    const value:
      | Effect.Effect<Rpc.SuccessExit<ApiRpc>, Rpc.ErrorExit<ApiRpc>>
      | Stream.Stream<unknown, unknown> = wrapped ? result.value : result
    let handler = Effect.isEffect(value) ? value : Effect.die(`${rpc._tag} returned a stream for a unary RPC`)
    if (codec.authenticated) {
      handler = Effect.provideService(handler, Rpcs.CurrentTenant, options.principal)
    }
    handler = Effect.mapInputContext(
      handler,
      (current: Context.Context<never>) => Context.merge(entry.context, current)
    )
    return (wrapped && result.uninterruptible ? handler : Effect.interruptible(handler)).pipe(
      Effect.exit,
      Effect.flatMap((exit) => answer(codec, entry.context, requestId, exit)),
      Effect.withSpan(`RpcServer.${rpc._tag}`, { captureStackTrace: false, attributes: { requestId } })
    )
  })

/**
 * Answers a body of unary requests (see `isUnary`) with the handlers of `handlers`, as `principal`.
 * `headers` are the HTTP request's headers; each handler sees them followed by its request's own.
 *
 * @since 0.6.0
 */
export const respond = (
  handlers: Context.Context<Handlers>,
  options: {
    readonly clientId: number
    readonly principal: Principal
    readonly headers: ReadonlyArray<readonly [string, string]>
  },
  requests: ReadonlyArray<Checked>
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  const runOne = (request: Checked) =>
    run(handlers, {
      clientId: options.clientId,
      principal: options.principal,
      headers: Headers.fromInput([...options.headers, ...request.envelope.headers])
    }, request)
  const lines = requests.length === 1 && requests[0] !== undefined
    ? Effect.map(runOne(requests[0]), (line) => [line])
    : Effect.forEach(requests, runOne, { concurrency: "unbounded" })
  return Effect.map(
    lines,
    (lines) =>
      HttpServerResponse.uint8Array(concat(lines.filter((line) => line !== undefined)), {
        contentType: "application/ndjson"
      })
  )
}
