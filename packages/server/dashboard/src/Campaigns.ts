/**
 * The tenant's campaigns (polled) and one campaign's view, followed over its event stream
 * (`GET /campaigns/:id/events`, resumed with `Last-Event-ID`) and polled while it runs for its
 * batches' own progress: the roll-up of items and batches, throughput, ETA, the batches as a grid
 * (each opens its batch view), the quarantined items and the live events. Every server string goes
 * through `textContent`.
 *
 * The state descriptions, the event details and the batch phases are exhaustive over the domain's
 * unions, so a new campaign state, event or batch phase does not compile until the page renders it.
 *
 * @since 0.5.0
 */
import type { CampaignEvent, CampaignViews } from "@effect-batch/domain"
import * as Tags from "@effect-batch/domain/Tags"
import { closeBatch, failedIn, markSelected, sayIn, selectBatch, showLive, ui } from "./App.js"
import { enableCampaignActions } from "./CampaignControls.js"
import type { Answer } from "./Client.js"
import { followEvents, rpc } from "./Client.js"
import { feedLine } from "./Controls.js"
import {
  $,
  absurd,
  badge,
  barOf,
  clear,
  formatDuration,
  formatTime,
  h,
  percent,
  renderBar,
  renderList,
  renderSegments,
  setText,
  setTitle,
  settled,
  total
} from "./Dom.js"

/** A campaign as the server encodes it. */
export type CampaignView = Answer<"GetCampaign">
type CampaignProgress = Answer<"GetCampaignProgress">
type CampaignBatches = Answer<"ListCampaignBatches">
type CampaignState = CampaignView["state"]
type CampaignEventEncoded = typeof CampaignEvent.CampaignEvent.Encoded

const MAX_SHOWN_BATCHES = 1000

/** The state of the open campaign. */
export const campaignUi: {
  id: string | null
  campaign: CampaignView | null
  shown: number
  source: EventSource | null
  seenSeq: number
  refreshTimer: ReturnType<typeof setTimeout> | null
  last: { readonly id: string; readonly batchIds: ReadonlyArray<string> } | null
} = { id: null, campaign: null, shown: 100, source: null, seenSeq: 0, refreshTimer: null, last: null }

const terminal: ReadonlySet<string> = new Set(Tags.campaignTerminalStates)

/**
 * How many batches the campaign runs at once: its config's encoding marks the field optional (it has a
 * default, 1), the server's answers always carry it.
 */
export const concurrencyOf = (c: CampaignView): number => c.config.concurrency ?? 1

/** Whether the campaign's state ends its event stream. */
export const campaignEnded = (c: CampaignView): boolean => terminal.has(c.state._tag)

const byActor = (s: { readonly actor: string; readonly note?: string }): string =>
  "by " + s.actor + (s.note ? ": " + s.note : "")

const describeCampaignFailure = (r: Extract<CampaignState, { readonly _tag: "Failed" }>["reason"]): string => {
  switch (r._tag) {
    case "TooManyFailedBatches":
      return "too many failed batches: " + r.failed + " of " + r.settled + " settled"
    case "ItemFailureRatioExceeded":
      return "too many failed items: " + r.failed + " of " + r.settled + " settled"
    default:
      return absurd(r)
  }
}

const describeCampaignState = (s: CampaignState): string => {
  switch (s._tag) {
    case "Running":
      return "round " + s.round + ", since " + formatTime(s.since)
    case "Paused":
      return byActor(s) + " — no new batch starts"
    case "AwaitingReview":
      return "every batch settled; waiting for a person to approve or reject"
    case "Completed":
      return s.approvedBy ? "approved by " + s.approvedBy : "every batch settled"
    case "Failed":
      return describeCampaignFailure(s.reason)
    case "Cancelled":
    case "Rejected":
      return byActor(s)
    default:
      return absurd(s)
  }
}

type Phase = Exclude<keyof typeof CampaignViews.BatchCounts.fields, "total" | "done">

/** Each phase's colour and label. */
const phases: { readonly [K in Phase]: readonly [className: string, label: string] } = {
  completed: ["s-succeeded", "completed"],
  failed: ["s-failed", "failed"],
  rejected: ["s-quarantined", "rejected"],
  cancelled: ["s-skipped", "cancelled"],
  active: ["s-running", "running, paused or awaiting review"],
  requeue: ["s-retryScheduled", "to run again"],
  pending: ["s-queued", "not started"]
}

const phaseList = ["completed", "failed", "rejected", "cancelled", "active", "requeue", "pending"] as const

/** The batch bar's segments, in this order. */
const phaseOrder: ReadonlyArray<Phase> = phaseList satisfies Tags.Every<Phase, typeof phaseList>

/** The campaign this batch belongs to, when it is among the batches of the campaign opened last. */
export const campaignOf = (batchId: string): string | null => {
  const last = campaignUi.last
  return last !== null && last.batchIds.includes(batchId) ? last.id : null
}

/* ---- the campaign list, polled every 2 s ---- */

const loadCampaigns = (): void => {
  if (!ui.started) return
  rpc("ListCampaigns", { limit: 50 }).then((page) => {
    $("campaigns").hidden = page.items.length === 0
    renderList("campaign-rows", page.items, "campaignId", campaignUi.id, (c) => [
      h("td", null, c.workflow),
      h("td", { className: "mono", title: c.id }, c.id.slice(0, 8)),
      h("td", null, badge(c.state._tag)),
      h("td", null, barOf(c.counts)),
      h("td", { className: "mono" }, settled(c.counts) + " / " + c.total),
      h("td", { className: "mono" }, c.batches.done + " / " + c.batches.total),
      h("td", { className: "muted" }, formatTime(c.createdAt))
    ], selectCampaign)
  }, failedIn("message"))
}

const selectCampaign = (id: string): void => {
  window.location.hash = "#campaign=" + encodeURIComponent(id)
}

/* ---- one campaign ---- */

/** Opens the campaign view of id. */
export const openCampaign = (id: string): void => {
  closeBatch()
  closeCampaign()
  campaignUi.id = id
  campaignUi.shown = 100
  campaignUi.seenSeq = 0
  for (const list of ["campaign-events", "campaign-batches", "campaign-quarantined"]) clear($(list))
  sayIn("campaign-message", "")
  $("campaign").hidden = false
  markSelected("campaign-rows", "campaignId", id)
  refreshCampaign()
}

/** Closes the campaign view. */
export const closeCampaign = (): void => {
  if (campaignUi.source !== null) campaignUi.source.close()
  campaignUi.source = null
  campaignUi.id = null
  campaignUi.campaign = null
  $("campaign").hidden = true
  markSelected("campaign-rows", "campaignId", null)
}

/** Follows the campaign's events after `after`; EventSource resumes by itself with Last-Event-ID. */
const followCampaign = (after: number): void => {
  if (campaignUi.source !== null) campaignUi.source.close()
  const id = campaignUi.id
  if (id === null) return
  campaignUi.source = followEvents<CampaignEventEncoded>(
    "/campaigns/" + encodeURIComponent(id) + "/events",
    Tags.campaignEvents,
    after,
    (event) => {
      if (id === campaignUi.id) onCampaignEvent(event)
    },
    (status) => {
      if (id === campaignUi.id) showLive(status, campaignUi.campaign !== null && campaignEnded(campaignUi.campaign))
    }
  )
}

/** What the feed says of a campaign event after its tag. */
const campaignEventDetail = (e: CampaignEventEncoded): string => {
  switch (e._tag) {
    case "CampaignBatchStarted":
      return "batch " + e.index
    case "CampaignBatchSettled":
      return "batch " + e.index + (e.state ? " " + e.state : "")
    case "CampaignProgress":
      return e.batchesDone + " / " + e.batchesTotal + " batches done"
    case "CampaignRedriven":
      return e.items + " item(s) of " + e.batches + " batch(es), round " + e.round
    case "CampaignPaused":
    case "CampaignResumed":
    case "CampaignApproved":
    case "CampaignRejected":
    case "CampaignCancelled":
    case "CampaignItemsReleased":
      return byActor(e)
    case "CampaignCreated":
    case "CampaignStarted":
    case "CampaignReviewRequested":
    case "CampaignCompleted":
    case "CampaignFailed":
    case "CampaignConfigChanged":
      return ""
    default:
      return absurd(e)
  }
}

const onCampaignEvent = (event: CampaignEventEncoded): void => {
  campaignUi.seenSeq = Math.max(campaignUi.seenSeq, event.seq)
  feedLine("campaign-events", event, campaignEventDetail(event))
  scheduleCampaignRefresh()
}

const scheduleCampaignRefresh = (): void => {
  if (campaignUi.refreshTimer !== null) return
  campaignUi.refreshTimer = setTimeout(() => {
    campaignUi.refreshTimer = null
    refreshCampaign()
  }, 400)
}

/**
 * Reads the campaign, its progress and its first batches, renders them, and follows its events when
 * nothing does (first from a few events back; after a redrive from the last event seen).
 */
export const refreshCampaign = (): Promise<void> => {
  const id = campaignUi.id
  if (id === null) return Promise.resolve()
  return Promise.all([
    rpc("GetCampaign", { campaignId: id }),
    rpc("GetCampaignProgress", { campaignId: id }),
    rpc("ListCampaignBatches", { campaignId: id, limit: campaignUi.shown })
  ]).then(([c, p, batches]) => {
    if (id !== campaignUi.id) return
    campaignUi.campaign = c
    campaignUi.last = { id, batchIds: batches.items.map((entry) => entry.batch.id) }
    renderCampaign(c, p)
    renderCampaignBatches(c, batches)
    const source = campaignUi.source
    if (source === null) followCampaign(Math.max(0, c.lastSeq - 25))
    else if (source.readyState === EventSource.CLOSED && !campaignEnded(c)) followCampaign(campaignUi.seenSeq)
  }, failedIn("campaign-message"))
}

const renderCampaign = (c: CampaignView, p: CampaignProgress): void => {
  setTitle("campaign", c.workflow, c.id, c.state._tag)
  setText("campaign-detail", describeCampaignState(c.state))
  renderBar($("campaign-bar"), c.counts)
  renderSegments(
    $("campaign-batch-bar"),
    phaseOrder.map((phase) => ({ className: phases[phase][0], value: c.batches[phase], label: phases[phase][1] })),
    c.batches.total
  )
  const done = settled(c.counts)
  setText("campaign-settled", String(done))
  setText("campaign-total", String(c.total))
  setText("campaign-percent", percent(done, c.total))
  setText("campaign-batches-done", String(c.batches.done))
  setText("campaign-batches-total", String(c.batches.total))
  setText("campaign-batches-percent", percent(c.batches.done, c.batches.total))
  setText("campaign-throughput", p.itemsPerSecond.toFixed(1) + " items/s")
  setText(
    "campaign-eta",
    campaignEnded(c) || c.state._tag === "AwaitingReview" ? "done" : formatDuration(p.etaSeconds)
  )
  setText("campaign-round", "round" in c.state ? String(c.state.round) : "–")
  setText("campaign-active", c.batches.active + " / " + concurrencyOf(c))
  const concurrency = $("campaign-concurrency", HTMLInputElement)
  if (document.activeElement !== concurrency) concurrency.value = String(concurrencyOf(c))
  enableCampaignActions()
  renderQuarantined(p.quarantined)
}

const renderCampaignBatches = (c: CampaignView, page: CampaignBatches): void => {
  const grid = $("campaign-batches")
  clear(grid)
  for (const entry of page.items) {
    const b = entry.batch
    const tile = h(
      "button",
      { className: "tile", dataset: { batchId: b.id, index: String(entry.index), state: b.state._tag } },
      h("span", { className: "tile-head" }, h("strong", null, "#" + entry.index), badge(b.state._tag)),
      barOf(b.counts),
      h("span", { className: "mono muted" }, settled(b.counts) + " / " + total(b.counts))
    )
    tile.addEventListener("click", () => selectBatch(b.id))
    grid.appendChild(tile)
  }
  setText(
    "campaign-shown",
    page.items.length < c.batches.total ? "the first " + page.items.length + " of " + c.batches.total : ""
  )
  $("campaign-more").hidden = page.nextCursor === undefined || campaignUi.shown >= MAX_SHOWN_BATCHES
}

const renderQuarantined = (q: CampaignProgress["quarantined"]): void => {
  setText("campaign-quarantined-count", String(q.count))
  const list = $("campaign-quarantined")
  clear(list)
  for (const item of q.items) {
    const line = h(
      "li",
      { dataset: { batchId: item.batchId } },
      h("span", { className: "tag" }, "batch " + item.batchIndex),
      item.key + " — " + item.reason
    )
    line.addEventListener("click", () => selectBatch(item.batchId))
    list.appendChild(line)
  }
  if (q.count > q.items.length) {
    list.appendChild(h("li", { className: "muted" }, "… and " + (q.count - q.items.length) + " more"))
  }
  if (q.count === 0) list.appendChild(h("li", { className: "muted" }, "none"))
}

/** Wires the campaign list and view, and polls them. */
export const init = (): void => {
  $("campaign-more").addEventListener("click", () => {
    campaignUi.shown = Math.min(MAX_SHOWN_BATCHES, campaignUi.shown + 100)
    refreshCampaign()
  })
  loadCampaigns()
  setInterval(loadCampaigns, 2000)
  // a running batch's progress makes no campaign event: the grid is read again while the campaign runs
  setInterval(() => {
    if (ui.started && campaignUi.campaign !== null && !campaignEnded(campaignUi.campaign)) scheduleCampaignRefresh()
  }, 1500)
}
