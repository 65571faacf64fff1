/**
 * The batch list (polled), the batch view (followed over SSE), the address's routing to a batch or a
 * campaign, and the start-up. Every server string goes through `textContent` (the `h` helper of
 * `Client.ts`), and handlers are attached with `addEventListener`.
 *
 * @since 0.5.0
 */
import type { BatchEvent } from "@effect-batch/domain"
import * as Tags from "@effect-batch/domain/Tags"
import { campaignOf, campaignUi, closeCampaign, openCampaign } from "./Campaigns.js"
import type { Answer, Counts, Status } from "./Client.js"
import {
  $,
  absurd,
  auth,
  badge,
  barOf,
  clear,
  describeError,
  followEvents,
  forgetToken,
  formatDuration,
  formatItemError,
  formatMs,
  formatTime,
  h,
  percent,
  renderBar,
  renderList,
  rpc,
  RpcError,
  setText,
  setTitle,
  settled,
  stateLabels,
  storeToken,
  total
} from "./Client.js"
import type { BatchAction, ItemView } from "./Controls.js"
import {
  batchCommands,
  command,
  enableButtons,
  loadItems,
  onEvent,
  retryFailed,
  scheduleRefresh,
  setFilter,
  wireButtons
} from "./Controls.js"

/** A batch as the server encodes it. */
export type BatchView = Answer<"GetBatch">
type Progress = Answer<"GetProgress">
type BatchState = BatchView["state"]

/** The state of the batch list and the open batch. */
export const ui: {
  batchId: string | null
  batch: BatchView | null
  source: EventSource | null
  filter: "" | Tags.ItemState
  items: Array<ItemView>
  cursor: string | null
  refreshTimer: ReturnType<typeof setTimeout> | null
  itemsTimer: ReturnType<typeof setTimeout> | null
  listTimer: ReturnType<typeof setTimeout> | null
  started: boolean
  stepsPerItem: number
} = {
  batchId: null,
  batch: null,
  source: null,
  filter: "",
  items: [],
  cursor: null,
  refreshTimer: null,
  itemsTimer: null,
  listTimer: null,
  started: false,
  stepsPerItem: 0
}

type Action = BatchAction | "retry"

/** The command each button (its `data-action`) runs. */
const actionCommands: { readonly [K in Action]: Tags.BatchCommand } = { ...batchCommands, retry: "RetryFailed" }

const isAction = (action: string): action is Action => Object.hasOwn(actionCommands, action)

const isBatchAction = (action: string): action is BatchAction => Object.hasOwn(batchCommands, action)

const terminal: ReadonlySet<string> = new Set(Tags.batchTerminalStates)

/** Whether the batch state ends its event stream. */
export const isTerminal = (state: BatchState): boolean => terminal.has(state._tag)

const batchAllows = (action: string): boolean =>
  ui.batch !== null && isAction(action) && Tags.batchAllowed[ui.batch.state._tag].includes(actionCommands[action])

const showAuth = (message: string): void => {
  $("auth").hidden = false
  setText("auth-error", message)
  if (ui.listTimer !== null) {
    clearTimeout(ui.listTimer)
    ui.listTimer = null
  }
  ui.started = false
}

/** A failure handler that writes to the message line with this id (or asks for a token again on a 401). */
export const failedIn = (id: string) => (e: unknown): void => {
  if (e instanceof RpcError && e.status === 401) {
    forgetToken()
    auth.token = ""
    showAuth("The token was not accepted.")
    return
  }
  const el = $(id)
  el.className = "message error"
  el.textContent = describeError(e)
}

/** The failure handler of the batch view. */
export const failed = failedIn("message")

/** Writes text to the message line with this id. */
export const sayIn = (id: string, text: string): void => {
  const el = $(id)
  el.className = "message"
  el.textContent = text
}

/** Writes text to the batch view's message line. */
export const say = (text: string): void => sayIn("message", text)

/** The header's indicator for the followed stream; "settled" once it has ended for good. */
export const showLive = (status: Status, ended: boolean): void => {
  const live = $("live")
  live.dataset["live"] = status === "open" ? "on" : "off"
  live.textContent = status === "open"
    ? "live"
    : status === "retrying"
    ? "reconnecting…"
    : ended
    ? "settled"
    : "polling"
}

/* ---- the batch list, polled every 2 s ---- */

const loadBatches = (): Promise<void> => {
  ui.listTimer = null
  return rpc("ListBatches", { limit: 50 }).then((page) => {
    renderBatches(page.items)
    const first = page.items[0]
    if (ui.batchId === null && first !== undefined && !window.location.hash) selectBatch(first.id)
  }, failed).then(() => {
    if (ui.started) ui.listTimer = setTimeout(loadBatches, 2000)
  })
}

const renderBatches = (batches: ReadonlyArray<BatchView>): void => {
  $("batches-empty").hidden = batches.length > 0
  renderList("batch-rows", batches, "batchId", ui.batchId, (b) => [
    h("td", null, b.workflow),
    h("td", { className: "mono", title: b.id }, b.id.slice(0, 8)),
    h("td", null, badge(b.state._tag)),
    h("td", null, barOf(b.counts)),
    h("td", { className: "mono" }, settled(b.counts) + " / " + total(b.counts)),
    h("td", { className: "muted" }, formatTime(b.createdAt))
  ], selectBatch)
}

/** Opens a batch by its address. */
export const selectBatch = (id: string): void => {
  window.location.hash = "#batch=" + encodeURIComponent(id)
}

/** Opens what the address names: #batch=ID or #campaign=ID, unless it is already open. */
const route = (): void => {
  const match = /^#(batch|campaign)=(.+)$/.exec(window.location.hash)
  if (match === null || match[2] === undefined) return
  const id = decodeURIComponent(match[2])
  if (match[1] === "campaign") {
    if (id !== campaignUi.id) openCampaign(id)
  } else if (id !== ui.batchId) openBatch(id)
}

/* ---- one batch ---- */

/** Closes the batch view. */
export const closeBatch = (): void => {
  if (ui.source !== null) ui.source.close()
  ui.source = null
  ui.batchId = null
  ui.batch = null
  $("batch").hidden = true
  markSelected("batch-rows", "batchId", null)
}

/** Marks the row of the list body rowsId whose data-(key) is id as selected. */
export const markSelected = (rowsId: string, key: string, id: string | null): void => {
  for (const row of Array.from($(rowsId).children)) {
    if (row instanceof HTMLElement) row.className = row.dataset[key] === id ? "selected" : ""
  }
}

const openBatch = (id: string): void => {
  closeCampaign()
  if (ui.source !== null) ui.source.close()
  ui.source = null
  ui.batchId = id
  ui.batch = null
  ui.items = []
  clear($("events"))
  clear($("item-rows"))
  say("")
  $("batch").hidden = false
  markSelected("batch-rows", "batchId", id)
  const parent = campaignOf(id)
  const link = $("batch-campaign", HTMLAnchorElement)
  link.hidden = parent === null
  if (parent !== null) link.href = "#campaign=" + encodeURIComponent(parent)
  refreshBatch().then(() => {
    if (ui.batch !== null && ui.batch.id === id) followBatch(Math.max(0, ui.batch.lastSeq - 25))
  })
  loadItems(false)
}

/** Follows the open batch's events after sequence `after`. */
export const followBatch = (after: number): void => {
  if (ui.source !== null) ui.source.close()
  const id = ui.batchId
  if (id === null) return
  ui.source = followEvents<BatchEvent.Encoded>(
    "/batches/" + encodeURIComponent(id) + "/events",
    Tags.batchEvents,
    after,
    (event) => {
      if (id === ui.batchId) onEvent(event)
    },
    (status) => {
      if (id === ui.batchId) showLive(status, ui.batch !== null && isTerminal(ui.batch.state))
    }
  )
}

/** Reads the open batch and its progress again and renders them. */
export const refreshBatch = (): Promise<void> => {
  const id = ui.batchId
  if (id === null) return Promise.resolve()
  return Promise.all([rpc("GetBatch", { batchId: id }), rpc("GetProgress", { batchId: id })]).then(([b, p]) => {
    if (id !== ui.batchId) return
    ui.batch = b
    renderBatch(b, p)
  }, failed)
}

const byActor = (s: { readonly actor: string; readonly note: string }): string =>
  "by " + s.actor + (s.note ? ": " + s.note : "")

const describeState = (s: BatchState): string => {
  switch (s._tag) {
    case "Pending":
      return ""
    case "Running":
      return "round " + s.round + ", since " + formatTime(s.since)
    case "Paused": {
      const r = s.reason
      switch (r._tag) {
        case "PausedByUser":
          return "by " + r.actor + (r.note ? ": " + r.note : "")
        case "CircuitBreakerOpen":
          return "circuit breaker: " + r.consecutiveFailures + " consecutive failures"
        default:
          return absurd(r)
      }
    }
    case "AwaitingReview":
      return "waiting for a person to approve or reject"
    case "Completed":
      return s.approvedBy ? "approved by " + s.approvedBy : ""
    case "Failed": {
      const f = s.reason
      switch (f._tag) {
        case "ItemFailedFinally":
          return "item " + f.itemKey + " failed: " + formatItemError(f.error)
        case "ErrorBudgetExceeded":
          return "error budget exceeded: " + f.failed + " of " + f.settled + " failed"
        default:
          return absurd(f)
      }
    }
    case "Cancelled":
    case "Rejected":
      return byActor(s)
    default:
      return absurd(s)
  }
}

const renderBatch = (b: BatchView, p: Progress): void => {
  setTitle("batch", b.workflow, b.id, b.state._tag)
  setText("batch-detail", describeState(b.state))
  renderBar($("batch-bar"), b.counts)
  const n = total(b.counts)
  const done = settled(b.counts)
  setText("settled", String(done))
  setText("total", String(n))
  setText("percent", percent(done, n))
  setText("throughput", p.itemsPerSecond.toFixed(1) + " items/s")
  const steps = p.steps
  ui.stepsPerItem = steps !== undefined && steps.declared !== undefined && n > 0 ? steps.declared / n : 0
  setText(
    "steps",
    steps === undefined ? "–" : steps.completed + (steps.declared === undefined ? "" : " / " + steps.declared)
  )
  // the stage breakdown: completed items per durable step, in the declared order
  setText(
    "stages",
    steps === undefined ? "" : steps.byStep.map((s) => s.step + " " + s.completed + (ui.stepsPerItem ? " / " + n : ""))
      .join(" · ")
  )
  setText("eta", isTerminal(b.state) || b.state._tag === "AwaitingReview" ? "done" : formatDuration(p.etaSeconds))
  setText("latency", formatMs(p.p50Ms) + " / " + formatMs(p.p95Ms))
  setText("round", "round" in b.state ? String(b.state.round) : "–")
  renderCounts(b.counts)
  enableButtons("action", batchAllows)
  const errors = $("errors")
  clear(errors)
  for (const e of p.latestErrors) {
    errors.appendChild(
      h(
        "li",
        null,
        h("span", { className: "tag" }, e.itemKey),
        "attempt " + e.attempt + " · " + formatItemError(e.error)
      )
    )
  }
  if (p.latestErrors.length === 0) errors.appendChild(h("li", { className: "muted" }, "none"))
}

/** Renders the count tiles, each a filter of the item table. */
export const renderCounts = (counts: Counts): void => {
  const el = $("counts")
  clear(el)
  for (const field of Tags.itemCountFields) {
    const state = Tags.itemCountStates[field]
    const tile = h(
      "button",
      { className: "count c-" + field + (ui.filter === state ? " active" : "") },
      h("strong", null, String(counts[field])),
      h("span", null, stateLabels[field])
    )
    tile.addEventListener("click", () => setFilter(ui.filter === state ? "" : state))
    el.appendChild(tile)
  }
}

/* ---- start ---- */

const start = (): void => {
  $("auth").hidden = true
  ui.started = true
  loadBatches()
  route()
}

const isFilter = (value: string): value is "" | Tags.ItemState =>
  value === "" || Tags.itemStates.some((state) => state === value)

/** Wires the batch list and view, and starts the page (or asks for a token). */
export const init = (): void => {
  const filter = $("filter", HTMLSelectElement)
  const all = h("option", null, "all states")
  all.value = ""
  filter.appendChild(all)
  for (const field of Tags.itemCountFields) {
    const option = h("option", null, stateLabels[field])
    option.value = Tags.itemCountStates[field]
    filter.appendChild(option)
  }
  filter.addEventListener("change", () => {
    if (isFilter(filter.value)) setFilter(filter.value)
  })
  $("more").addEventListener("click", () => loadItems(true))
  wireButtons(
    "action",
    (action) => action === "retry" ? retryFailed() : isBatchAction(action) ? command(action) : Promise.resolve(),
    failed,
    batchAllows
  )
  $("auth-form").addEventListener("submit", (e) => {
    e.preventDefault()
    auth.token = $("auth-token", HTMLInputElement).value.trim()
    if (auth.token === "") return
    storeToken(auth.token)
    start()
  })
  window.addEventListener("hashchange", route)
  setInterval(() => {
    const following = ui.source !== null && ui.source.readyState !== EventSource.CLOSED
    if (ui.started && ui.batch !== null && !following && !isTerminal(ui.batch.state)) scheduleRefresh()
  }, 3000)
  if (auth.token === "") showAuth("")
  else start()
}
