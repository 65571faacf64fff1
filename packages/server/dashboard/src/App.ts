/**
 * The batch list (polled), the batch view (followed over SSE), the address's routing to a batch or a
 * campaign, and the start-up (the batch view's numbers are in `BatchView.ts`). Every server string goes
 * through `textContent` (the `h` helper of `Dom.ts`), and handlers are attached with `addEventListener`.
 *
 * @since 0.5.0
 */
import type { BatchEvent } from "@effect-batch/domain"
import * as Tags from "@effect-batch/domain/Tags"
import { batchAllows, isBatchAction, isTerminal, renderBatch } from "./BatchView.js"
import { campaignOf, campaignUi, closeCampaign, openCampaign } from "./Campaigns.js"
import type { Answer, Status } from "./Client.js"
import { auth, describeError, followEvents, forgetToken, rpc, RpcError, storeToken } from "./Client.js"
import type { ItemView } from "./Controls.js"
import { command, loadItems, onEvent, retryFailed, scheduleRefresh, setFilter, wireButtons } from "./Controls.js"
import { $, badge, barOf, clear, formatTime, h, renderList, setText, settled, stateLabels, total } from "./Dom.js"
import { renderTrends } from "./Trends.js"

/** A batch as the server encodes it. */
export type BatchView = Answer<"GetBatch">

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
  return Promise.all([
    rpc("GetBatch", { batchId: id }),
    rpc("GetProgress", { batchId: id }),
    rpc("GetTrends", { batchId: id })
  ]).then(([b, p, t]) => {
    if (id !== ui.batchId) return
    ui.batch = b
    renderBatch(b, p)
    renderTrends(t)
  }, failed)
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
