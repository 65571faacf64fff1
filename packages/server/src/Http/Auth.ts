/**
 * Bearer-token authentication: each token maps to a tenant (and an actor name shown in events).
 *
 * - RPC (`POST /rpc`): `Authorization: Bearer <token>`.
 * - SSE (`GET /batches/:id/events`): the same header or, for a browser's `EventSource` (which cannot
 *   set headers), the cookie `effect_batch_token=<token>` or the query parameter `?token=<token>`.
 *   Prefer the cookie (`SameSite=Strict; HttpOnly`): a query parameter can end up in logs and history.
 *
 * Tokens come from code (`layer`) or from `EFFECT_BATCH_TOKENS="token1=tenant-a,token2=tenant-b"`
 * (`layerConfig`); an entry may name its actor: `token3=tenant-a:alice`. `effect-batch serve` also
 * reads them from a file (`parseFile`: entries by line or comma, `#` comment lines).
 *
 * @since 0.1.0
 */
import { Errors, Ids, Rpcs } from "@effect-batch/domain"
import type * as Headers from "@effect/platform/Headers"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Crypto from "node:crypto"

/**
 * The cookie an `EventSource` may carry the token in.
 *
 * @since 0.1.0
 */
export const cookieName = "effect_batch_token"

/**
 * The query parameter an `EventSource` may carry the token in.
 *
 * @since 0.1.0
 */
export const queryParam = "token"

/**
 * The environment variable `layerConfig` reads.
 *
 * @since 0.1.0
 */
export const envVar = "EFFECT_BATCH_TOKENS"

/**
 * The environment variable naming a file of tokens (for `effect-batch serve`), in the format of
 * `parseFile`.
 *
 * @since 0.5.0
 */
export const fileEnvVar = "EFFECT_BATCH_TOKENS_FILE"

/**
 * One accepted token.
 *
 * @since 0.1.0
 */
export interface Token {
  readonly token: string | Redacted.Redacted<string>
  readonly tenant: string
  /** shown as the actor of this token's commands; defaults to the tenant */
  readonly actor?: string | undefined
}

/**
 * Who a request is from.
 *
 * @since 0.1.0
 */
export type Principal = Rpcs.CurrentTenant["Type"]

/**
 * Maps bearer tokens to tenants.
 *
 * @since 0.1.0
 */
export class HttpAuth extends Context.Tag("@effect-batch/HttpAuth")<HttpAuth, {
  /** The principal of a token; a missing or unknown token is `Unauthorized`. */
  readonly authenticate: (token: Option.Option<string>) => Effect.Effect<Principal, Errors.Unauthorized>
}>() {}

const digest = (token: string) => Crypto.createHash("sha256").update(token).digest("hex")

const decodeTenant = Schema.decodeUnknownEither(Ids.TenantId)

/**
 * An `HttpAuth` over a fixed set of tokens. Tokens are kept as SHA-256 digests only.
 *
 * @since 0.1.0
 */
export const make = (tokens: Iterable<Token>): Either.Either<HttpAuth["Type"], string> => {
  const principals = new Map<string, Principal>()
  for (const entry of tokens) {
    const token = Redacted.isRedacted(entry.token) ? Redacted.value(entry.token) : entry.token
    if (token === "" || /[\s,]/.test(token)) return Either.left("a token must be non-empty, without spaces or commas")
    const tenant = decodeTenant(entry.tenant)
    if (Either.isLeft(tenant)) return Either.left(`invalid tenant ${JSON.stringify(entry.tenant)}`)
    const actor = entry.actor?.trim() || tenant.right
    principals.set(digest(token), { tenant: tenant.right, actor })
  }
  const missing = new Errors.Unauthorized({ message: "missing bearer token" })
  const unknown = new Errors.Unauthorized({ message: "unknown bearer token" })
  return Either.right(HttpAuth.of({
    authenticate: (token) =>
      Option.match(token, {
        onNone: () => Effect.fail(missing),
        onSome: (value) => {
          const principal = principals.get(digest(value))
          return principal === undefined ? Effect.fail(unknown) : Effect.succeed(principal)
        }
      })
  }))
}

/**
 * Parses `token1=tenant-a,token2=tenant-b:actor` (spaces around entries are ignored). A token may
 * contain `=` (base64 padding: the last `=` separates it from the tenant) but not `,`; a tenant may
 * not contain `=` or `:`.
 *
 * @since 0.1.0
 */
export const parse = (text: string): Either.Either<ReadonlyArray<Token>, string> => {
  const tokens: Array<Token> = []
  for (const raw of text.split(",")) {
    const entry = raw.trim()
    if (entry === "") continue
    const eq = entry.lastIndexOf("=")
    if (eq <= 0 || eq === entry.length - 1) return Either.left("expected entries like token=tenant[:actor]")
    const [tenant, actor] = entry.slice(eq + 1).split(":", 2)
    tokens.push({ token: entry.slice(0, eq).trim(), tenant: (tenant ?? "").trim(), actor })
  }
  return tokens.length === 0 ? Either.left("no token configured") : Either.right(tokens)
}

/**
 * Parses a file of tokens: the entries of `parse`, one or more per line (separated by commas); a line
 * whose first non-blank character is `#` is a comment.
 *
 * @since 0.5.0
 */
export const parseFile = (text: string): Either.Either<ReadonlyArray<Token>, string> =>
  parse(text.split(/\r?\n/).filter((line) => !line.trimStart().startsWith("#")).join(","))

/**
 * Accepts the given tokens.
 *
 * @since 0.1.0
 */
export const layer = (tokens: Iterable<Token>): Layer.Layer<HttpAuth, ConfigError.ConfigError> =>
  Layer.effect(
    HttpAuth,
    Either.match(make(tokens), {
      onLeft: (message) => Effect.fail(ConfigError.InvalidData([], message)),
      onRight: Effect.succeed
    })
  )

/**
 * Accepts the tokens of `EFFECT_BATCH_TOKENS` (`token1=tenant-a,token2=tenant-b`); fails if it is
 * missing or malformed.
 *
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<HttpAuth, ConfigError.ConfigError> = Layer.effect(
  HttpAuth,
  Effect.flatMap(Config.redacted(envVar), (text) =>
    Either.match(Either.flatMap(parse(Redacted.value(text)), make), {
      onLeft: (message) => Effect.fail(ConfigError.InvalidData([envVar], message)),
      onRight: Effect.succeed
    }))
)

const bearer = /^Bearer[ \t]+(\S+)[ \t]*$/i

/**
 * The bearer token of an `Authorization` header.
 *
 * @since 0.1.0
 */
export const bearerToken = (headers: Headers.Headers): Option.Option<string> => {
  const header = headers["authorization"]
  const match = header === undefined ? null : bearer.exec(header)
  return match === null || match[1] === undefined ? Option.none() : Option.some(match[1])
}

/**
 * The token of a request from a browser: the `Authorization` header, else the cookie, else `?token=`.
 *
 * @since 0.1.0
 */
export const browserToken = (
  request: HttpServerRequest.HttpServerRequest,
  searchParams: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
): Option.Option<string> =>
  bearerToken(request.headers).pipe(
    Option.orElse(() => Option.fromNullable(request.cookies[cookieName]).pipe(Option.filter((t) => t !== ""))),
    Option.orElse(() => {
      const param = searchParams[queryParam]
      return typeof param === "string" && param !== "" ? Option.some(param) : Option.none()
    })
  )

/**
 * The RPC `Authentication` middleware: the `Authorization: Bearer` header of each request.
 *
 * @since 0.1.0
 */
export const layerRpc: Layer.Layer<Rpcs.Authentication, never, HttpAuth> = Layer.effect(
  Rpcs.Authentication,
  Effect.map(HttpAuth, (auth) => Rpcs.Authentication.of(({ headers }) => auth.authenticate(bearerToken(headers))))
)
