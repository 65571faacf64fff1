/**
 * The last part of the dashboard's script: the batch list (polled), the batch view (followed over
 * SSE), and the start-up. Plain browser JavaScript; every server string goes through `textContent`
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

function showAuth(message) {
  $("auth").hidden = false;
  setText("auth-error", message || "");
  if (ui.listTimer !== null) { clearTimeout(ui.listTimer); ui.listTimer = null; }
  ui.started = false;
}

function failed(e) {
  if (e instanceof RpcError && e.status === 401) {
    forgetToken();
    token = "";
    showAuth("The token was not accepted.");
    return;
  }
  var el = $("message");
  el.className = "message error";
  el.textContent = describeError(e);
}

function say(text) {
  var el = $("message");
  el.className = "message";
  el.textContent = text;
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
  var rows = $("batch-rows");
  clear(rows);
  $("batches-empty").hidden = batches.length > 0;
  batches.forEach(function(b) {
    var bar = h("div", { className: "bar" });
    renderBar(bar, b.counts);
    var row = h("tr", { dataset: { batchId: b.id } },
      h("td", null, b.workflow),
      h("td", { className: "mono", title: b.id }, b.id.slice(0, 8)),
      h("td", null, badge(b.state._tag)),
      h("td", null, bar),
      h("td", { className: "mono" }, settled(b.counts) + " / " + total(b.counts)),
      h("td", { className: "muted" }, formatTime(b.createdAt)));
    if (b.id === ui.batchId) row.className = "selected";
    row.addEventListener("click", function() { selectBatch(b.id); });
    rows.appendChild(row);
  });
}

function selectBatch(id) { window.location.hash = "#batch=" + encodeURIComponent(id); }

function route() {
  var match = /^#batch=(.+)$/.exec(window.location.hash);
  var id = match ? decodeURIComponent(match[1]) : null;
  if (id !== null && id !== ui.batchId) openBatch(id);
}

/* ---- one batch ---- */

function openBatch(id) {
  if (ui.source !== null) ui.source.close();
  ui.source = null;
  ui.batchId = id;
  ui.batch = null;
  ui.items = [];
  clear($("events"));
  clear($("item-rows"));
  say("");
  $("batch").hidden = false;
  Array.prototype.forEach.call($("batch-rows").children, function(row) {
    row.className = row.dataset.batchId === id ? "selected" : "";
  });
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
    if (id !== ui.batchId) return;
    var live = $("live");
    live.dataset.live = status === "open" ? "on" : "off";
    live.textContent = status === "open" ? "live" : status === "retrying" ? "reconnecting…" :
      (ui.batch !== null && isTerminal(ui.batch.state) ? "settled" : "polling");
  });
}

function refreshBatch() {
  var id = ui.batchId;
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
  setText("batch-title", b.workflow + " ");
  $("batch-title").appendChild(h("code", null, b.id));
  var state = $("batch-state");
  state.className = "badge b-" + (KNOWN_BADGES.indexOf(b.state._tag) >= 0 ? b.state._tag : "unknown");
  state.dataset.state = b.state._tag;
  state.textContent = b.state._tag;
  setText("batch-detail", describeState(b.state));
  renderBar($("batch-bar"), b.counts);
  var n = total(b.counts);
  var done = settled(b.counts);
  setText("settled", String(done));
  setText("total", String(n));
  setText("percent", n > 0 ? "(" + Math.floor(100 * done / n) + "%)" : "");
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
  Object.keys(ALLOWED).forEach(function(action) {
    document.querySelector("button[data-action=" + action + "]").disabled = ALLOWED[action].indexOf(b.state._tag) < 0;
  });
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
  document.querySelectorAll("button[data-action]").forEach(function(button) {
    button.disabled = true;
    button.addEventListener("click", function() {
      var action = button.dataset.action;
      button.disabled = true;
      (action === "retry" ? retryFailed() : command(action)).catch(failed).then(function() {
        if (ui.batch !== null) button.disabled = ALLOWED[action].indexOf(ui.batch.state._tag) < 0;
      });
    });
  });
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
