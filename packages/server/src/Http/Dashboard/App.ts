/**
 * The application part of the dashboard's script: the batch list (polled), the batch view (followed
 * over SSE), the address's routing to a batch or a campaign, and the start-up. Plain browser JavaScript; every server string goes through `textContent`
 * (the `h` helper of `Client.ts`), and handlers are attached with `addEventListener`.
 *
 * @since 0.1.0
 */

/**
 * Browser JavaScript, run after `Client.script` and `Controls.script` in the same function scope.
 *
 * @since 0.1.0
 */
export const script = String.raw`
var TERMINAL = ["Completed", "Failed", "Cancelled", "Rejected"];
var ALLOWED = {
  pause: ["Running"], resume: ["Paused"], cancel: ["Pending", "Running", "Paused", "AwaitingReview"],
  approve: ["AwaitingReview"], reject: ["AwaitingReview"], retry: ["Completed", "Failed", "Rejected"]
};
var COMMANDS = { pause: "Pause", resume: "Resume", cancel: "Cancel", approve: "Approve", reject: "Reject" };
var ui = { batchId: null, batch: null, source: null, filter: "", items: [], cursor: null, refreshTimer: null,
  itemsTimer: null, listTimer: null, started: false, stepsPerItem: 0 };

function isTerminal(state) { return TERMINAL.indexOf(state._tag) >= 0; }

function batchAllows(action) { return ui.batch !== null && ALLOWED[action].indexOf(ui.batch.state._tag) >= 0; }

function showAuth(message) {
  $("auth").hidden = false;
  setText("auth-error", message || "");
  if (ui.listTimer !== null) { clearTimeout(ui.listTimer); ui.listTimer = null; }
  ui.started = false;
}

/** A failure handler that writes to the message line with this id (or asks for a token again on a 401). */
function failedIn(id) {
  return function(e) {
    if (e instanceof RpcError && e.status === 401) {
      forgetToken();
      token = "";
      showAuth("The token was not accepted.");
      return;
    }
    var el = $(id);
    el.className = "message error";
    el.textContent = describeError(e);
  };
}

var failed = failedIn("message");

function sayIn(id, text) {
  var el = $(id);
  el.className = "message";
  el.textContent = text;
}

function say(text) { sayIn("message", text); }

/** The header's indicator for the followed stream; "settled" once it has ended for good. */
function showLive(status, ended) {
  var live = $("live");
  live.dataset.live = status === "open" ? "on" : "off";
  live.textContent = status === "open" ? "live" : status === "retrying" ? "reconnecting…" :
    ended ? "settled" : "polling";
}

/* ---- the batch list, polled every 2 s ---- */

function loadBatches() {
  ui.listTimer = null;
  return rpc("ListBatches", { limit: 50 }).then(function(page) {
    renderBatches(page.items);
    if (ui.batchId === null && page.items.length > 0 && !window.location.hash) selectBatch(page.items[0].id);
  }, failed).then(function() {
    if (ui.started) ui.listTimer = setTimeout(loadBatches, 2000);
  });
}

function renderBatches(batches) {
  $("batches-empty").hidden = batches.length > 0;
  renderList("batch-rows", batches, "batchId", ui.batchId, function(b) {
    return [h("td", null, b.workflow),
      h("td", { className: "mono", title: b.id }, b.id.slice(0, 8)),
      h("td", null, badge(b.state._tag)),
      h("td", null, barOf(b.counts)),
      h("td", { className: "mono" }, settled(b.counts) + " / " + total(b.counts)),
      h("td", { className: "muted" }, formatTime(b.createdAt))];
  }, selectBatch);
}

function selectBatch(id) { window.location.hash = "#batch=" + encodeURIComponent(id); }

/** Opens what the address names: #batch=ID or #campaign=ID, unless it is already open. */
function route() {
  var match = /^#(batch|campaign)=(.+)$/.exec(window.location.hash);
  if (match === null) return;
  var id = decodeURIComponent(match[2]);
  if (match[1] === "campaign") {
    if (id !== campaignUi.id) openCampaign(id);
  } else if (id !== ui.batchId) openBatch(id);
}

/* ---- one batch ---- */

function closeBatch() {
  if (ui.source !== null) ui.source.close();
  ui.source = null;
  ui.batchId = null;
  ui.batch = null;
  $("batch").hidden = true;
  markSelected("batch-rows", "batchId", null);
}

/** Marks the row of the list body rowsId whose data-(key) is id as selected. */
function markSelected(rowsId, key, id) {
  Array.prototype.forEach.call($(rowsId).children, function(row) {
    row.className = row.dataset[key] === id ? "selected" : "";
  });
}

function openBatch(id) {
  closeCampaign();
  if (ui.source !== null) ui.source.close();
  ui.source = null;
  ui.batchId = id;
  ui.batch = null;
  ui.items = [];
  clear($("events"));
  clear($("item-rows"));
  say("");
  $("batch").hidden = false;
  markSelected("batch-rows", "batchId", id);
  var parent = campaignOf(id);
  $("batch-campaign").hidden = parent === null;
  if (parent !== null) $("batch-campaign").href = "#campaign=" + encodeURIComponent(parent);
  refreshBatch().then(function() {
    if (ui.batch !== null && ui.batch.id === id) followBatch(Math.max(0, ui.batch.lastSeq - 25));
  });
  loadItems(false);
}

function followBatch(after) {
  if (ui.source !== null) ui.source.close();
  var id = ui.batchId;
  ui.source = follow(id, after, function(event) {
    if (id === ui.batchId) onEvent(event);
  }, function(status) {
    if (id === ui.batchId) showLive(status, ui.batch !== null && isTerminal(ui.batch.state));
  });
}

function refreshBatch() {
  var id = ui.batchId;
  if (id === null) return Promise.resolve();
  return Promise.all([rpc("GetBatch", { batchId: id }), rpc("GetProgress", { batchId: id })]).then(function(r) {
    if (id !== ui.batchId) return;
    ui.batch = r[0];
    renderBatch(r[0], r[1]);
  }, failed);
}

/** Refreshes the batch at most every 400 ms and the item table at most every 1.5 s while events arrive. */
function scheduleRefresh() {
  if (ui.refreshTimer === null) {
    ui.refreshTimer = setTimeout(function() { ui.refreshTimer = null; refreshBatch(); }, 400);
  }
  if (ui.itemsTimer === null) {
    ui.itemsTimer = setTimeout(function() { ui.itemsTimer = null; loadItems(false); }, 1500);
  }
}

function describeState(s) {
  switch (s._tag) {
    case "Running": return "round " + s.round + ", since " + formatTime(s.since);
    case "Paused": {
      var r = s.reason;
      if (r._tag === "PausedByUser") return "by " + r.actor + (r.note ? ": " + r.note : "");
      if (r._tag === "CircuitBreakerOpen") return "circuit breaker: " + r.consecutiveFailures + " consecutive failures";
      return "maintenance" + (r.note ? ": " + r.note : "");
    }
    case "AwaitingReview": return "waiting for a person to approve or reject";
    case "Completed": return s.approvedBy ? "approved by " + s.approvedBy : "";
    case "Failed": {
      var f = s.reason;
      if (f._tag === "ItemFailedFinally") return "item " + f.itemKey + " failed: " + formatItemError(f.error);
      if (f._tag === "ErrorBudgetExceeded") return "error budget exceeded: " + f.failed + " of " + f.settled + " failed";
      return f.message;
    }
    case "Cancelled": return "by " + s.actor + (s.note ? ": " + s.note : "");
    case "Rejected": return "by " + s.actor + (s.note ? ": " + s.note : "");
    default: return "";
  }
}

function renderBatch(b, p) {
  setTitle("batch", b.workflow, b.id, b.state._tag);
  setText("batch-detail", describeState(b.state));
  renderBar($("batch-bar"), b.counts);
  var n = total(b.counts);
  var done = settled(b.counts);
  setText("settled", String(done));
  setText("total", String(n));
  setText("percent", percent(done, n));
  setText("throughput", p.itemsPerSecond.toFixed(1) + " items/s");
  ui.stepsPerItem = p.steps !== undefined && p.steps.declared !== undefined && n > 0 ? p.steps.declared / n : 0;
  setText("steps", p.steps === undefined ? "–" :
    p.steps.completed + (p.steps.declared === undefined ? "" : " / " + p.steps.declared));
  // the stage breakdown: completed items per durable step, in the declared order
  setText("stages", p.steps === undefined ? "" : p.steps.byStep.map(function(s) {
    return s.step + " " + s.completed + (ui.stepsPerItem ? " / " + n : "");
  }).join(" · "));
  setText("eta", isTerminal(b.state) || b.state._tag === "AwaitingReview" ? "done" : formatDuration(p.etaSeconds));
  setText("latency", formatMs(p.p50Ms) + " / " + formatMs(p.p95Ms));
  setText("round", b.state.round === undefined ? "–" : String(b.state.round));
  renderCounts(b.counts);
  enableButtons("action", batchAllows);
  var errors = $("errors");
  clear(errors);
  p.latestErrors.forEach(function(e) {
    errors.appendChild(h("li", null, h("span", { className: "tag" }, e.itemKey),
      "attempt " + e.attempt + " · " + formatItemError(e.error)));
  });
  if (p.latestErrors.length === 0) errors.appendChild(h("li", { className: "muted" }, "none"));
}

function renderCounts(counts) {
  var el = $("counts");
  clear(el);
  STATE_FIELDS.forEach(function(field) {
    var tile = h("button", { className: "count c-" + field + (ui.filter === STATE_TAGS[field] ? " active" : "") },
      h("strong", null, String(counts[field] || 0)), h("span", null, STATE_LABELS[field]));
    tile.addEventListener("click", function() { setFilter(ui.filter === STATE_TAGS[field] ? "" : STATE_TAGS[field]); });
    el.appendChild(tile);
  });
}

/* ---- start ---- */

function start() {
  $("auth").hidden = true;
  ui.started = true;
  loadBatches();
  route();
}

document.addEventListener("DOMContentLoaded", function() {
  var filter = $("filter");
  filter.appendChild(h("option", null, "all states"));
  filter.firstChild.value = "";
  STATE_FIELDS.forEach(function(field) {
    var option = h("option", null, STATE_LABELS[field]);
    option.value = STATE_TAGS[field];
    filter.appendChild(option);
  });
  filter.addEventListener("change", function() { setFilter(filter.value); });
  $("more").addEventListener("click", function() { loadItems(true); });
  wireButtons("action", function(action) { return action === "retry" ? retryFailed() : command(action); }, failed,
    batchAllows);
  $("auth-form").addEventListener("submit", function(e) {
    e.preventDefault();
    token = $("auth-token").value.trim();
    if (token === "") return;
    storeToken(token);
    start();
  });
  window.addEventListener("hashchange", route);
  setInterval(function() {
    var following = ui.source !== null && ui.source.readyState !== EventSource.CLOSED;
    if (ui.started && ui.batch !== null && !following && !isTerminal(ui.batch.state)) scheduleRefresh();
  }, 3000);
  if (token === "") showAuth(""); else start();
});
`
