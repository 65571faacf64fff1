/**
 * The first part of the dashboard's browser script: the token, the RPC client (`POST /rpc`, NDJSON), the
 * event stream, DOM helpers that only ever insert text, and formatters.
 *
 * @since 0.5.0
 */
import type { Api, ItemError } from "@effect-batch/domain"
import * as Tags from "@effect-batch/domain/Tags"
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
 * `onEvent` gets each parsed event (the server's encoded event of one of those names).
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

/** The properties `h` sets. */
export interface Props {
  readonly className?: string
  readonly title?: string
  readonly dataset?: Readonly<Record<string, string>>
}

type Child = Node | string | number | null | undefined

/** An element with text content only: h("td", { className: "x" }, "text", child, ...). */
export const h = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null,
  ...children: ReadonlyArray<Child>
): HTMLElementTagNameMap[K] => {
  const el = document.createElement(tag)
  if (props) {
    if (props.className) el.className = props.className
    if (props.title) el.title = props.title
    if (props.dataset) { for (const k in props.dataset) el.dataset[k] = props.dataset[k] }
  }
  for (const child of children) {
    if (child === null || child === undefined) continue
    el.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)))
  }
  return el
}

/** The element with this id, of the type `T` when the page's element is one. */
export function $(id: string): HTMLElement
export function $<T extends HTMLElement>(id: string, type: { new(): T; prototype: T }): T
export function $<T extends HTMLElement>(id: string, type?: { new(): T; prototype: T }): HTMLElement {
  const el = document.getElementById(id)
  if (el === null || (type !== undefined && !(el instanceof type))) {
    throw new Error("the page has no element #" + id + (type === undefined ? "" : " of type " + type.name))
  }
  return el
}

/** Removes every child of el. */
export const clear = (el: Element): void => {
  while (el.firstChild) el.removeChild(el.firstChild)
}

/** Sets the text of the element with this id. */
export const setText = (id: string, value: string): void => {
  $(id).textContent = value
}

/** The counts of items per state, as the server encodes them. */
export type Counts = { readonly [K in Tags.ItemCountField]: number }

/** The label of each count. */
export const stateLabels: { readonly [K in Tags.ItemCountField]: string } = {
  queued: "queued",
  running: "running",
  retryScheduled: "retry scheduled",
  succeeded: "succeeded",
  failed: "failed",
  quarantined: "quarantined",
  skipped: "skipped"
}

/** A tag that has a badge. */
export type BadgeTag = Tags.BatchState | Tags.CampaignState | Tags.ItemState

const knownBadges: ReadonlySet<string> = new Set<string>([
  ...Tags.batchStates,
  ...Tags.campaignStates,
  ...Tags.itemStates
])

/** Makes el the badge of a state tag (its colour, data-state and text). */
export const setBadge = <E extends HTMLElement>(el: E, tag: BadgeTag): E => {
  el.className = "badge" + (knownBadges.has(tag) ? " b-" + tag : "")
  el.dataset["state"] = tag
  el.textContent = tag
  return el
}

/** A badge of a state tag. */
export const badge = (tag: BadgeTag): HTMLSpanElement => setBadge(document.createElement("span"), tag)

/** The head of a view: "(prefix)-title" the workflow and the id, "(prefix)-state" the state's badge. */
export const setTitle = (prefix: string, workflow: string, id: string, stateTag: BadgeTag): void => {
  setText(prefix + "-title", workflow + " ")
  $(prefix + "-title").appendChild(h("code", null, id))
  setBadge($(prefix + "-state"), stateTag)
}

/**
 * Fills the list body rowsId with one row per item (its id in data-(key)), cells(item) its cells;
 * the row of selectedId is marked, and a click on a row calls open(id).
 */
export const renderList = <A extends { readonly id: string }>(
  rowsId: string,
  items: ReadonlyArray<A>,
  key: string,
  selectedId: string | null,
  cells: (item: A) => ReadonlyArray<Node>,
  open: (id: string) => void
): void => {
  const rows = $(rowsId)
  clear(rows)
  for (const item of items) {
    const row = h("tr", null)
    row.dataset[key] = item.id
    for (const cell of cells(item)) row.appendChild(cell)
    if (item.id === selectedId) row.className = "selected"
    row.addEventListener("click", () => open(item.id))
    rows.appendChild(row)
  }
}

/** How many items the counts count. */
export const total = (counts: Counts): number => Tags.itemCountFields.reduce((n, f) => n + counts[f], 0)

/** How many items have settled. */
export const settled = (counts: Counts): number =>
  counts.succeeded + counts.failed + counts.quarantined + counts.skipped

/** One segment of a bar. */
export interface Segment {
  readonly className: string
  readonly value: number
  readonly label: string
}

/** Fills a .bar with one segment per { className, value, label }, in order, each its share of n. */
export const renderSegments = (el: HTMLElement, segments: ReadonlyArray<Segment>, n: number): void => {
  clear(el)
  for (const s of segments) {
    if (s.value === 0 || n === 0) continue
    const seg = h("span", { className: s.className, title: s.value + " " + s.label })
    seg.style.width = (100 * s.value / n).toFixed(2) + "%"
    el.appendChild(seg)
  }
}

const barList = [
  "succeeded",
  "failed",
  "quarantined",
  "skipped",
  "running",
  "retryScheduled",
  "queued"
] as const

/** The bar's segments: settled states first. */
const barOrder: ReadonlyArray<Tags.ItemCountField> = barList satisfies Tags.Every<
  Tags.ItemCountField,
  typeof barList
>

/** Fills a .bar with one segment per item state, settled states first. */
export const renderBar = (el: HTMLElement, counts: Counts): void =>
  renderSegments(
    el,
    barOrder.map((f) => ({ className: "s-" + f, value: counts[f], label: stateLabels[f] })),
    total(counts)
  )

/** A small .bar of item counts. */
export const barOf = (counts: Counts): HTMLDivElement => {
  const bar = h("div", { className: "bar" })
  renderBar(bar, counts)
  return bar
}

/** "(42%)" of done over n, or nothing when n is 0. */
export const percent = (done: number, n: number): string => n > 0 ? "(" + Math.floor(100 * done / n) + "%)" : ""

/** "1 min 5 s", or "–" when unknown. */
export const formatDuration = (seconds: number | undefined): string => {
  if (seconds === undefined) return "–"
  const s = Math.round(seconds)
  if (s < 60) return s + " s"
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s"
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min"
}

/** "12 ms", "1.5 s", or "–" when unknown. */
export const formatMs = (ms: number | undefined): string => {
  if (ms === undefined) return "–"
  return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s"
}

/** The local time of an ISO timestamp. */
export const formatTime = (iso: string): string => {
  const d = new Date(iso)
  return isNaN(d.getTime()) ? "" : d.toLocaleTimeString()
}

/** An item's error: its tag (else its category) and its message. */
export const formatItemError = (error: typeof ItemError.ItemError.Encoded | undefined): string =>
  error === undefined ? "" : (error.tag ? error.tag : error.category) + ": " + error.message

/** A compile error when a switch misses a case. */
export const absurd = (value: never): never => {
  throw new Error("unexpected " + JSON.stringify(value))
}
