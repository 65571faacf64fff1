/**
 * What `POST /rpc` checks before the RPC server sees a request, so that a bad request gets an HTTP
 * error with a typed JSON body (and changes nothing): the bearer token (401), a `Content-Length` (411)
 * within the body limit (413), at most `maxRequestsPerBody` requests (413), and that the body is NDJSON
 * RPC requests of known RPCs whose payloads decode (400; JSON nested too deeply to be a valid request
 * is refused before it is parsed).
 *
 * @since 0.1.0
 */
import { Api, Errors, Storable } from "@effect-batch/domain"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { truncate } from "../internal/Truncate.js"
import { bearerToken, HttpAuth, type Principal } from "./Auth.js"
import { HttpConfig } from "./Config.js"
import { failure, type HttpError } from "./Responses.js"

const Envelope = Schema.Struct({
  _tag: Schema.Literal("Request"),
  id: Schema.String.pipe(Schema.pattern(/^[0-9]{1,18}$/, { message: () => "id must be a decimal integer" })),
  tag: Schema.String,
  payload: Schema.Unknown,
  headers: Schema.Array(Schema.Tuple(Schema.String, Schema.String)),
  traceId: Schema.optional(Schema.String),
  spanId: Schema.optional(Schema.String),
  sampled: Schema.optional(Schema.Boolean)
})
const decodeEnvelope = Schema.decodeUnknownEither(Envelope)

/** Each RPC of the `Api` by tag, with its payload's decoder. */
const known = new Map<string, {
  readonly rpc: ApiRpc
  readonly decode: (u: unknown) => Either.Either<unknown, ParseResult.ParseError>
}>()
for (const rpc of Api.Api.requests.values()) {
  const schema: Schema.Schema.AnyNoContext = rpc.payloadSchema
  known.set(rpc._tag, { rpc, decode: Schema.decodeUnknownEither(schema) })
}

/** The longest message of a 400 answer: a parse error quotes the value it rejects, however large. */
const maxMessageLength = 1_000

/** Deeper than any valid request: an item's input (`Storable.maxJsonDepth`) and the envelope around it. */
const maxLineDepth = Storable.maxJsonDepth + 8

const invalid = (message: string) => new Errors.InvalidRequest({ message: truncate(message, maxMessageLength) })
const format = (error: ParseResult.ParseError) => ParseResult.TreeFormatter.formatErrorSync(error)

/** Whether the JSON text nests arrays and objects deeper than `max`, read before it is parsed. */
const nestedDeeperThan = (json: string, max: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true
    } else if (c === 0x5d || c === 0x7d) {
      depth--
    }
  }
  return false
}

/**
 * One RPC request as it arrives, checked.
 *
 * @since 0.1.0
 */
export type Envelope = typeof Envelope.Type

/**
 * One RPC of the `Api`.
 *
 * @since 0.6.0
 */
export type ApiRpc = RpcGroup.Rpcs<typeof Api.Api>

/**
 * One RPC request as it arrives, checked: its envelope (the payload as sent), the RPC it names and
 * its decoded payload.
 *
 * @since 0.6.0
 */
export interface Checked {
  readonly envelope: Envelope
  readonly rpc: ApiRpc
  readonly payload: unknown
}

/**
 * A `POST /rpc` request that passed `check`: who sent it, and its requests.
 *
 * @since 0.6.0
 */
export interface Accepted {
  readonly principal: Principal
  readonly requests: ReadonlyArray<Checked>
}

/**
 * Checks an NDJSON body of RPC requests: each line a well-formed request of a known RPC, with a
 * payload that decodes, a unique id, and no `authorization` header of its own. Each request comes
 * with its decoded payload.
 *
 * @since 0.1.0
 */
export const validate = (
  body: string,
  maxRequests: number
): Either.Either<ReadonlyArray<Checked>, Errors.InvalidRequest | Errors.LimitExceeded> => {
  const lines = body.split("\n")
  const rest = lines.pop() ?? ""
  if (rest.trim() !== "") return Either.left(invalid("each request must be one JSON line ending with a newline"))
  if (lines.length === 0) return Either.left(invalid("the body has no request"))
  if (lines.length > maxRequests) {
    return Either.left(new Errors.LimitExceeded({ limit: "requests per body", max: maxRequests }))
  }
  const ids = new Set<string>()
  const checked: Array<Checked> = []
  for (const [index, line] of lines.entries()) {
    const at = `line ${index + 1}`
    if (nestedDeeperThan(line, maxLineDepth)) {
      return Either.left(invalid(`${at}: JSON nested deeper than ${maxLineDepth} levels`))
    }
    let json: unknown
    try {
      json = JSON.parse(line)
    } catch {
      return Either.left(invalid(`${at}: malformed JSON`))
    }
    const envelope = decodeEnvelope(json)
    if (Either.isLeft(envelope)) return Either.left(invalid(`${at}: not an RPC request: ${format(envelope.left)}`))
    const { headers, id, payload, tag } = envelope.right
    const entry = known.get(tag)
    if (entry === undefined) return Either.left(invalid(`${at}: unknown RPC ${JSON.stringify(tag.slice(0, 64))}`))
    if (ids.has(id)) return Either.left(invalid(`${at}: duplicate request id ${id}`))
    ids.add(id)
    if (headers.some(([name]) => name.toLowerCase() === "authorization")) {
      return Either.left(invalid(`${at}: send the token in the HTTP Authorization header`))
    }
    const decoded = entry.decode(payload)
    if (Either.isLeft(decoded)) return Either.left(invalid(`${at}: invalid ${tag} payload: ${format(decoded.left)}`))
    checked.push({ envelope: envelope.right, rpc: entry.rpc, payload: decoded.right })
  }
  return Either.right(checked)
}

/**
 * Checks a `POST /rpc` request: its principal and requests, or the error answer to send instead.
 *
 * @since 0.1.0
 */
export const check = (
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<Either.Either<Accepted, HttpServerResponse.HttpServerResponse>, never, HttpAuth> =>
  Effect.gen(function*() {
    const auth = yield* HttpAuth
    const config = yield* HttpConfig
    const refuse = (error: HttpError, options?: Parameters<typeof failure>[1]) =>
      Effect.map(failure(error, options), Either.left)
    const principal = yield* Effect.either(auth.authenticate(bearerToken(request.headers)))
    if (Either.isLeft(principal)) return yield* refuse(principal.left, { headers: { "www-authenticate": "Bearer" } })
    // A known length lets an oversized body be refused before it is read, with a 413 the client gets
    const length = request.headers["content-length"]
    if (length === undefined) return yield* refuse(invalid("Content-Length is required"), { status: 411 })
    if (!/^[0-9]+$/.test(length)) return yield* refuse(invalid("invalid Content-Length"))
    if (Number(length) > config.maxRpcBodyBytes) {
      return yield* refuse(new Errors.LimitExceeded({ limit: "request body bytes", max: config.maxRpcBodyBytes }), {
        status: 413
      })
    }
    const body = yield* Effect.either(
      HttpIncomingMessage.withMaxBodySize(request.text, Option.some(config.maxRpcBodyBytes))
    )
    if (Either.isLeft(body)) return yield* refuse(invalid("unreadable body"))
    const checked = validate(body.right, config.maxRequestsPerBody)
    if (Either.isLeft(checked)) {
      return yield* refuse(checked.left, checked.left._tag === "LimitExceeded" ? { status: 413 } : {})
    }
    return Either.right({ principal: principal.right, requests: checked.right })
  })
