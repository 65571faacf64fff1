/**
 * The dashboard's campaigns: the tenant's campaigns (polled) and one campaign's view, followed over
 * its event stream (`GET /campaigns/:id/events`, resumed with `Last-Event-ID`) and polled while it
 * runs for its batches' own progress: the roll-up of items and batches, throughput, ETA, the batches
 * as a grid (each opens its batch view), the quarantined items and the live events. Plain browser
 * JavaScript; every server string goes through `textContent`.
 *
 * The state descriptions and the batch phases are tables over the domain's unions, so a new
 * campaign state or batch phase does not compile until the page renders it.
 *
 * @since 0.4.0
 */
import { CampaignEvent, CampaignState, type CampaignViews } from "@effect-batch/domain"

/** How each state is described: a JavaScript expression over the state `s`. */
const describeState: { readonly [K in CampaignState.Tag]: string } = {
  Running: `"round " + s.round + ", since " + formatTime(s.since)`,
  Paused: `byActor(s) + " — no new batch starts"`,
  AwaitingReview: `"every batch settled; waiting for a person to approve or reject"`,
  Completed: `s.approvedBy ? "approved by " + s.approvedBy : "every batch settled"`,
  Failed: `describeCampaignFailure(s.reason)`,
  Cancelled: `byActor(s)`,
  Rejected: `byActor(s)`
}

/** How each failure reason is described: a JavaScript expression over the reason `r`. */
const describeFailure: { readonly [K in CampaignState.CampaignFailureReason["_tag"]]: string } = {
  TooManyFailedBatches: `"too many failed batches: " + r.failed + " of " + r.settled + " settled"`,
  ItemFailureRatioExceeded: `"too many failed items: " + r.failed + " of " + r.settled + " settled"`
}

type Phase = Exclude<keyof typeof CampaignViews.BatchCounts.fields, "total" | "done">

/** The batch bar's segments, in this order: each phase's colour and label. */
const phases: { readonly [K in Phase]: readonly [className: string, label: string] } = {
  completed: ["s-succeeded", "completed"],
  failed: ["s-failed", "failed"],
  rejected: ["s-quarantined", "rejected"],
  cancelled: ["s-skipped", "cancelled"],
  active: ["s-running", "running, paused or awaiting review"],
  requeue: ["s-retryScheduled", "to run again"],
  pending: ["s-queued", "not started"]
}

const cases = (table: Readonly<Record<string, string>>) =>
  Object.entries(table).map(([tag, expression]) => `    case ${JSON.stringify(tag)}: return ${expression};`).join("\n")

/**
 * Browser JavaScript, run after `App.script` in the same function scope.
 *
 * @since 0.4.0
 */
export const script = String.raw`
var CAMPAIGN_EVENT_TAGS = ${JSON.stringify(CampaignEvent.tags)};
var CAMPAIGN_TERMINAL = ${JSON.stringify(CampaignState.terminalTags)};
var BATCH_PHASES = ${
  JSON.stringify(Object.entries(phases).map(([field, [className, label]]) => [field, className, label]))
};
var MAX_SHOWN_BATCHES = 1000;
var campaignUi = { id: null, campaign: null, shown: 100, source: null, seenSeq: 0, refreshTimer: null, last: null };

function campaignEnded(c) { return CAMPAIGN_TERMINAL.indexOf(c.state._tag) >= 0; }

function byActor(s) { return "by " + s.actor + (s.note ? ": " + s.note : ""); }

function describeCampaignState(s) {
  switch (s._tag) {
${cases(describeState)}
    default: return "";
  }
}

function describeCampaignFailure(r) {
  switch (r._tag) {
${cases(describeFailure)}
    default: return r._tag;
  }
}

/** The campaign this batch belongs to, when it is among the batches of the campaign opened last. */
function campaignOf(batchId) {
  var last = campaignUi.last;
  return last !== null && last.batchIds.indexOf(batchId) >= 0 ? last.id : null;
}

/* ---- the campaign list, polled every 2 s ---- */

function loadCampaigns() {
  if (!ui.started) return;
  rpc("ListCampaigns", { limit: 50 }).then(function(page) {
    $("campaigns").hidden = page.items.length === 0;
    renderList("campaign-rows", page.items, "campaignId", campaignUi.id, function(c) {
      return [h("td", null, c.workflow),
        h("td", { className: "mono", title: c.id }, c.id.slice(0, 8)),
        h("td", null, badge(c.state._tag)),
        h("td", null, barOf(c.counts)),
        h("td", { className: "mono" }, settled(c.counts) + " / " + c.total),
        h("td", { className: "mono" }, c.batches.done + " / " + c.batches.total),
        h("td", { className: "muted" }, formatTime(c.createdAt))];
    }, selectCampaign);
  }, failed);
}

function selectCampaign(id) { window.location.hash = "#campaign=" + encodeURIComponent(id); }

/* ---- one campaign ---- */

function openCampaign(id) {
  closeBatch();
  closeCampaign();
  campaignUi.id = id;
  campaignUi.shown = 100;
  campaignUi.seenSeq = 0;
  ["campaign-events", "campaign-batches", "campaign-quarantined"].forEach(function(list) { clear($(list)); });
  sayIn("campaign-message", "");
  $("campaign").hidden = false;
  markSelected("campaign-rows", "campaignId", id);
  refreshCampaign();
}

function closeCampaign() {
  if (campaignUi.source !== null) campaignUi.source.close();
  campaignUi.source = null;
  campaignUi.id = null;
  campaignUi.campaign = null;
  $("campaign").hidden = true;
  markSelected("campaign-rows", "campaignId", null);
}

/** Follows the campaign's events after "after"; EventSource resumes by itself with Last-Event-ID. */
function followCampaign(after) {
  if (campaignUi.source !== null) campaignUi.source.close();
  var id = campaignUi.id;
  campaignUi.source = followEvents("/campaigns/" + encodeURIComponent(id) + "/events", CAMPAIGN_EVENT_TAGS, after,
    function(event) { if (id === campaignUi.id) onCampaignEvent(event); },
    function(status) {
      if (id === campaignUi.id) showLive(status, campaignUi.campaign !== null && campaignEnded(campaignUi.campaign));
    });
}

function campaignEventDetail(e) {
  if (e.index !== undefined) return "batch " + e.index + (e.state ? " " + e.state : "");
  if (e._tag === "CampaignProgress") return e.batchesDone + " / " + e.batchesTotal + " batches done";
  if (e._tag === "CampaignRedriven") return e.items + " item(s) of " + e.batches + " batch(es), round " + e.round;
  if (e.actor !== undefined) return byActor(e);
  return "";
}

function onCampaignEvent(event) {
  campaignUi.seenSeq = Math.max(campaignUi.seenSeq, event.seq);
  feedLine("campaign-events", event, campaignEventDetail(event));
  scheduleCampaignRefresh();
}

function scheduleCampaignRefresh() {
  if (campaignUi.refreshTimer !== null) return;
  campaignUi.refreshTimer = setTimeout(function() { campaignUi.refreshTimer = null; refreshCampaign(); }, 400);
}

/**
 * Reads the campaign, its progress and its first batches, renders them, and follows its events when
 * nothing does (first from a few events back; after a redrive from the last event seen).
 */
function refreshCampaign() {
  var id = campaignUi.id;
  if (id === null) return Promise.resolve();
  return Promise.all([
    rpc("GetCampaign", { campaignId: id }),
    rpc("GetCampaignProgress", { campaignId: id }),
    rpc("ListCampaignBatches", { campaignId: id, limit: campaignUi.shown })
  ]).then(function(r) {
    if (id !== campaignUi.id) return;
    var c = r[0];
    campaignUi.campaign = c;
    campaignUi.last = { id: id, batchIds: r[2].items.map(function(entry) { return entry.batch.id; }) };
    renderCampaign(c, r[1]);
    renderCampaignBatches(c, r[2]);
    var source = campaignUi.source;
    if (source === null) followCampaign(Math.max(0, c.lastSeq - 25));
    else if (source.readyState === EventSource.CLOSED && !campaignEnded(c)) followCampaign(campaignUi.seenSeq);
  }, failedIn("campaign-message"));
}

function renderCampaign(c, p) {
  setTitle("campaign", c.workflow, c.id, c.state._tag);
  setText("campaign-detail", describeCampaignState(c.state));
  renderBar($("campaign-bar"), c.counts);
  renderSegments($("campaign-batch-bar"), BATCH_PHASES.map(function(phase) {
    return { className: phase[1], value: c.batches[phase[0]], label: phase[2] };
  }), c.batches.total);
  var done = settled(c.counts);
  setText("campaign-settled", String(done));
  setText("campaign-total", String(c.total));
  setText("campaign-percent", percent(done, c.total));
  setText("campaign-batches-done", String(c.batches.done));
  setText("campaign-batches-total", String(c.batches.total));
  setText("campaign-batches-percent", percent(c.batches.done, c.batches.total));
  setText("campaign-throughput", p.itemsPerSecond.toFixed(1) + " items/s");
  setText("campaign-eta", campaignEnded(c) || c.state._tag === "AwaitingReview" ? "done" : formatDuration(p.etaSeconds));
  setText("campaign-round", c.state.round === undefined ? "–" : String(c.state.round));
  setText("campaign-active", c.batches.active + " / " + c.config.concurrency);
  var concurrency = $("campaign-concurrency");
  if (document.activeElement !== concurrency) concurrency.value = String(c.config.concurrency);
  enableCampaignActions();
  renderQuarantined(p.quarantined);
}

function renderCampaignBatches(c, page) {
  var grid = $("campaign-batches");
  clear(grid);
  page.items.forEach(function(entry) {
    var b = entry.batch;
    var tile = h("button", { className: "tile", dataset: { batchId: b.id, index: String(entry.index), state: b.state._tag } },
      h("span", { className: "tile-head" }, h("strong", null, "#" + entry.index), badge(b.state._tag)),
      barOf(b.counts),
      h("span", { className: "mono muted" }, settled(b.counts) + " / " + total(b.counts)));
    tile.addEventListener("click", function() { selectBatch(b.id); });
    grid.appendChild(tile);
  });
  setText("campaign-shown", page.items.length < c.batches.total ? "the first " + page.items.length + " of " + c.batches.total : "");
  $("campaign-more").hidden = page.nextCursor === undefined || campaignUi.shown >= MAX_SHOWN_BATCHES;
}

function renderQuarantined(q) {
  setText("campaign-quarantined-count", String(q.count));
  var list = $("campaign-quarantined");
  clear(list);
  q.items.forEach(function(item) {
    var line = h("li", { dataset: { batchId: item.batchId } },
      h("span", { className: "tag" }, "batch " + item.batchIndex), item.key + " — " + item.reason);
    line.addEventListener("click", function() { selectBatch(item.batchId); });
    list.appendChild(line);
  });
  if (q.count > q.items.length) list.appendChild(h("li", { className: "muted" }, "… and " + (q.count - q.items.length) + " more"));
  if (q.count === 0) list.appendChild(h("li", { className: "muted" }, "none"));
}

document.addEventListener("DOMContentLoaded", function() {
  $("campaign-more").addEventListener("click", function() {
    campaignUi.shown = Math.min(MAX_SHOWN_BATCHES, campaignUi.shown + 100);
    refreshCampaign();
  });
  loadCampaigns();
  setInterval(loadCampaigns, 2000);
  // a running batch's progress makes no campaign event: the grid is read again while the campaign runs
  setInterval(function() {
    if (ui.started && campaignUi.campaign !== null && !campaignEnded(campaignUi.campaign)) scheduleCampaignRefresh();
  }, 1500);
});
`
