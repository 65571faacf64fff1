/**
 * DOM helpers that only ever insert text, the badges and bars of states and counts, and formatters.
 *
 * @since 0.5.0
 */
import type { ItemError } from "@effect-batch/domain"
import * as Tags from "@effect-batch/domain/Tags"

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
