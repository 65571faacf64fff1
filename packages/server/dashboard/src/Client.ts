/**
 * The dashboard's connection to the server: the token, the RPC client (`POST /rpc`, NDJSON) and the
 * event streams.
 *
 * @since 0.5.0
 */
import type { Api } from "@effect-batch/domain"
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"

const TOKEN_KEY = "effect_batch_token"

/** The token from ?token= (then removed from the address bar), else this tab's, else the cookie. */
const loadToken = (): string => {
  const url = new URL(window.location.href)
  const fromUrl = url.searchParams.get("token")
  if (fromUrl) {
    storeToken(fromUrl)
    url.searchParams.delete("token")
    window.history.replaceState(null, "", url.pathname + url.search + url.hash)
    return fromUrl
  }
  const stored = window.sessionStorage.getItem(TOKEN_KEY)
  if (stored) return stored
  for (const cookie of document.cookie ? document.cookie.split("; ") : []) {
    const eq = cookie.indexOf("=")
    if (cookie.slice(0, eq) === TOKEN_KEY) return decodeURIComponent(cookie.slice(eq + 1))
  }
  return ""
}

/** Keeps the token for this tab and as the cookie the event stream accepts. */
export const storeToken = (value: string): void => {
  window.sessionStorage.setItem(TOKEN_KEY, value)
  document.cookie = TOKEN_KEY + "=" + encodeURIComponent(value) + "; Path=/; SameSite=Strict"
}

/** Forgets the token of this tab and its cookie. */
export const forgetToken = (): void => {
  window.sessionStorage.removeItem(TOKEN_KEY)
  document.cookie = TOKEN_KEY + "=; Path=/; SameSite=Strict; Max-Age=0"
}

/** The token of the requests. */
export const auth = { token: loadToken() }

type Fields = Readonly<Record<string, unknown>>

/** An RPC or HTTP failure: the server's typed error (its _tag and fields) or a transport problem. */
export class RpcError {
  constructor(
    readonly tag: string,
    readonly message: string,
    readonly status: number,
    readonly fields: Fields = {}
  ) {}
}

const field = (fields: Fields, name: string): string => {
  const value = fields[name]
  return value === undefined || value === null ? "" : String(value)
}

/** A readable sentence for a typed error. */
export const describeError = (e: unknown): string => {
  if (!(e instanceof RpcError)) return e instanceof Error ? e.message : String(e)
  const f = e.fields
  switch (e.tag) {
    case "InvalidTransition":
      return "Cannot " + field(f, "command") + " a " + (field(f, "subject") || "batch") + " that is " +
        field(f, "state") + "."
    case "BatchNotFound":
      return "This batch does not exist (or belongs to another tenant)."
    case "CampaignNotFound":
      return "This campaign does not exist (or belongs to another tenant)."
    case "VersionConflict":
      return "It changed meanwhile; try again."
    case "Unauthorized":
      return "The token is missing or unknown."
    case "StorageUnavailable":
      return "The database is unavailable; try again shortly."
    default:
      return e.message || e.tag
  }
}

const isObject = (u: unknown): u is Fields => typeof u === "object" && u !== null

const text = (u: unknown): string => (typeof u === "string" ? u : "")

/** The first typed failure of an encoded Cause, else its first defect. */
const causeError = (cause: unknown): RpcError => {
  const stack: Array<unknown> = [cause]
  let defect: unknown = null
  while (stack.length > 0) {
    const c = stack.shift()
    if (!isObject(c)) continue
    if (c["_tag"] === "Fail") {
      const error = isObject(c["error"]) ? c["error"] : {}
      return new RpcError(text(error["_tag"]) || "Error", text(error["message"]), 200, error)
    }
    if (c["_tag"] === "Die" && defect === null) defect = c["defect"]
    if (c["_tag"] === "Sequential" || c["_tag"] === "Parallel") stack.push(c["left"], c["right"])
  }
  const message = isObject(defect) ? defect["message"] : defect
  return new RpcError("Defect", String(message || "the request was interrupted"), 200, {})
}

type Rpcs = RpcGroup.Rpcs<typeof Api.Api>

/** The name of an RPC of the API. */
export type RpcTag = Rpc.Tag<Rpcs>

type PayloadOf<R> = R extends Rpc.Rpc<infer _Tag, infer P, infer _Success, infer _Error, infer _Middleware> ?
  P["Encoded"]
  : never

type Of<T extends RpcTag> = Extract<Rpcs, { readonly _tag: T }>

/** The encoded payload of the RPC `T`. */
export type Payload<T extends RpcTag> = T extends RpcTag ? PayloadOf<Of<T>> : never

/** The encoded answer of the RPC `T`. */
export type Answer<T extends RpcTag> = T extends RpcTag ? Rpc.SuccessExitEncoded<Of<T>> : never

let nextRequestId = 1

/**
 * Calls one RPC: POSTs one NDJSON request line and reads the NDJSON answer: one "Exit" line (Success
 * with the value, or Failure with an encoded Cause); a "Defect" line is a protocol failure. Resolves to
 * the value. The page calls no streaming RPC (it follows events over SSE), so "Chunk" lines are skipped.
 * The value is taken as the server's encoding of the RPC's success, not decoded: the bundle carries no
 * Schema, and the server encodes it with the contract these types come from.
 */
export const rpc = <T extends RpcTag>(
  tag: T,
  ...args: [Payload<T>] extends [void] ? [] : [payload: Payload<T>]
): Promise<Answer<T>> => {
  const id = String(nextRequestId++)
  const payload = args.length > 0 ? args[0] : {}
  const line = JSON.stringify({ _tag: "Request", id, tag, payload, headers: [] }) + "\n"
  return fetch("/rpc", {
    method: "POST",
    headers: { "content-type": "application/ndjson", authorization: "Bearer " + auth.token },
    body: line,
    cache: "no-store"
  }).then((response) =>
    response.text().then((body) => {
      if (!response.ok) {
        let fields: Fields = {}
        try {
          const parsed: unknown = JSON.parse(body)
          if (isObject(parsed)) fields = parsed
        } catch {
          fields = {}
        }
        throw new RpcError(
          text(fields["_tag"]) || "HttpError",
          text(fields["message"]) || "HTTP " + response.status,
          response.status,
          fields
        )
      }
      for (const row of body.split("\n")) {
        if (row.trim() === "") continue
        const message = JSON.parse(row)
        if (message._tag === "Exit" && message.requestId === id) {
          if (message.exit._tag === "Success") return message.exit.value
          throw causeError(message.exit.cause)
        } else if (message._tag === "Defect") {
          throw causeError({ _tag: "Die", defect: message.defect })
        }
      }
      throw new RpcError("Protocol", "the server ended the answer without a result", response.status, {})
    })
  )
}

/** What the followed stream is doing. */
export type Status = "open" | "retrying" | "closed"

/**
 * Follows an event stream (the route at path, e.g. "/batches/ID/events") from sequence `after`,
 * listening to the event names in tags; the browser reconnects by itself with Last-Event-ID.
 * `onEvent` gets each parsed event, taken (not decoded) as the server's encoding of an event.
 */
export const followEvents = <E>(
  path: string,
  tags: ReadonlyArray<string>,
  after: number,
  onEvent: (event: E) => void,
  onStatus: (status: Status) => void
): EventSource => {
  const source = new EventSource(path + "?after=" + after + "&token=" + encodeURIComponent(auth.token))
  const handler = (e: MessageEvent<string>) => {
    let event: E
    try {
      event = JSON.parse(e.data)
    } catch {
      return
    }
    onEvent(event)
  }
  for (const tag of tags) source.addEventListener(tag, handler)
  source.onopen = () => onStatus("open")
  source.onerror = () => onStatus(source.readyState === EventSource.CLOSED ? "closed" : "retrying")
  return source
}
