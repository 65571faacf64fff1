/**
 * The middle part of the dashboard's script: the item table, the live event feed, the buttons and the
 * confirmation dialog (retry-failed shows its dry run there first), shared by the batch and campaign
 * views. Plain browser JavaScript; every server string goes through `textContent`.
 *
 * @since 0.1.0
 */

/**
 * Browser JavaScript, run after `Client.script` in the same function scope.
 *
 * @since 0.1.0
 */
export const script = String.raw`
/* ---- the item table ---- */

function setFilter(tag) {
  ui.filter = tag;
  $("filter").value = tag;
  if (ui.batch !== null) renderCounts(ui.batch.counts);
  loadItems(false);
}

function loadItems(append) {
  var id = ui.batchId;
  if (id === null) return;
  var payload = { batchId: id, limit: append ? 100 : Math.min(1000, Math.max(100, ui.items.length)) };
  if (ui.filter) payload.state = ui.filter;
  if (append && ui.cursor) payload.cursor = ui.cursor;
  var filter = ui.filter;
  rpc("ListItems", payload).then(function(page) {
    if (id !== ui.batchId || filter !== ui.filter) return;
    ui.items = append ? ui.items.concat(page.items) : page.items;
    ui.cursor = page.nextCursor || null;
    var rows = $("item-rows");
    clear(rows);
    ui.items.forEach(function(item) { rows.appendChild(itemRow(item)); });
    if (ui.items.length === 0) rows.appendChild(h("tr", null, h("td", { className: "muted" }, "no item")));
    $("more").hidden = ui.cursor === null;
  }, failed);
}

function itemRow(item) {
  var s = item.state;
  var attempts = s.attempts !== undefined ? s.attempts : s.attempt !== undefined ? s.attempt : "";
  var error = s._tag === "Failed" ? formatItemError(s.error)
    : s._tag === "Quarantined" ? s.reason + " — " + formatItemError(s.error)
    : s._tag === "RetryScheduled" ? formatItemError(s.lastError) + " (next at " + formatTime(s.nextAttemptAt) + ")"
    : s._tag === "Skipped" ? s.reason : "";
  return h("tr", null,
    h("td", { className: "mono", title: item.key }, item.key),
    h("td", null, badge(s._tag)),
    h("td", null, String(attempts)),
    h("td", null, String(item.round)),
    h("td", null, item.steps === undefined ? "" : ui.stepsPerItem ? item.steps + " / " + ui.stepsPerItem : String(item.steps)),
    h("td", null, item.durationMs === undefined ? "" : formatMs(item.durationMs)),
    h("td", { className: "err" }, error));
}

/* ---- events ---- */

/** Puts an event first in the feed feedId, which keeps the latest 40. */
function feedLine(feedId, event, detail) {
  var feed = $(feedId);
  feed.insertBefore(h("li", null, h("span", { className: "tag" }, "#" + event.seq + " " + event._tag), detail),
    feed.firstChild);
  while (feed.children.length > 40) feed.removeChild(feed.lastChild);
}

function onEvent(event) {
  var detail = event.itemKey !== undefined ? event.itemKey : "";
  if (event._tag === "ItemSucceeded") detail += " in " + formatMs(event.durationMs);
  if (event.error) detail += " — " + formatItemError(event.error);
  feedLine("events", event, detail);
  scheduleRefresh();
}

/* ---- buttons ---- */

/** Enables each button[data-(attr)=action] when allows(action). */
function enableButtons(attr, allows) {
  document.querySelectorAll("button[data-" + attr + "]").forEach(function(button) {
    button.disabled = !allows(button.getAttribute("data-" + attr));
  });
}

/**
 * Wires each button[data-(attr)=action]: disabled until allowed, and while run(action) is under way;
 * a failure goes to onError.
 */
function wireButtons(attr, run, onError, allows) {
  document.querySelectorAll("button[data-" + attr + "]").forEach(function(button) {
    button.disabled = true;
    button.addEventListener("click", function() {
      var action = button.getAttribute("data-" + attr);
      button.disabled = true;
      run(action).catch(onError).then(function() { button.disabled = !allows(action); });
    });
  });
}

function confirmDialog(title, text, keys, yes) {
  var dialog = $("confirm");
  setText("confirm-title", title);
  setText("confirm-text", text);
  var list = $("confirm-list");
  clear(list);
  keys.slice(0, 100).forEach(function(k) { list.appendChild(h("li", null, k)); });
  if (keys.length > 100) list.appendChild(h("li", { className: "muted" }, "… and " + (keys.length - 100) + " more"));
  list.hidden = keys.length === 0;
  $("confirm-yes").hidden = yes === null;
  setText("confirm-yes", yes || "");
  return new Promise(function(resolve) {
    var done = function(answer) {
      $("confirm-yes").removeEventListener("click", onYes);
      $("confirm-no").removeEventListener("click", onNo);
      dialog.removeEventListener("cancel", onNo);
      dialog.close();
      resolve(answer);
    };
    var onYes = function() { done(true); };
    var onNo = function() { done(false); };
    $("confirm-yes").addEventListener("click", onYes);
    $("confirm-no").addEventListener("click", onNo);
    dialog.addEventListener("cancel", onNo);
    dialog.showModal();
  });
}

/** "3 items", "1 item": a count and its noun (its plural given when not noun + "s"). */
function plural(n, noun, nouns) { return n + " " + (n === 1 ? noun : nouns || noun + "s"); }

/** Asks question ([title, text, yes label]) when there is one; runs run() on yes. */
function askThen(question, run) {
  var ask = question ? confirmDialog(question[0], question[1], [], question[2]) : Promise.resolve(true);
  return ask.then(function(ok) { return ok ? run() : undefined; });
}

/**
 * Shows a dry run's result: count failed items (keys lists them) that the redrive would run again,
 * what then happens (outcome), and asks before run() does it; with nothing to retry, says so.
 */
function confirmRedrive(count, keys, outcome, yes, run) {
  if (count === 0) return confirmDialog("Nothing to retry", "No failed item would run again.", [], null);
  return confirmDialog("Retry " + plural(count, "failed item") + "?", "A dry run found these items; " + outcome, keys, yes)
    .then(function(ok) { return ok ? run() : undefined; });
}

var BATCH_QUESTIONS = {
  cancel: ["Cancel this batch?", "Queued items will be skipped. This cannot be undone.", "Cancel batch"],
  reject: ["Reject the results?", "The batch ends as Rejected; its failed items can be retried later.", "Reject"]
};

function command(action) {
  var id = ui.batchId;
  var note = $("note").value;
  return askThen(BATCH_QUESTIONS[action], function() {
    return rpc(COMMANDS[action], { batchId: id, note: note }).then(function(b) {
      $("note").value = "";
      say(COMMANDS[action] + ": the batch is now " + b.state._tag + ".");
      return refreshBatch();
    });
  });
}

function retryFailed() {
  var id = ui.batchId;
  return rpc("RetryFailed", { batchId: id, dryRun: true }).then(function(plan) {
    return confirmRedrive(plan.count, plan.items, "they will be re-queued for a new round.", "Re-queue " + plan.count,
      function() {
        return rpc("RetryFailed", { batchId: id, dryRun: false }).then(function(done) {
          say("Re-queued " + plural(done.count, "item") + ".");
          return refreshBatch().then(function() { if (ui.batch !== null) followBatch(ui.batch.lastSeq); loadItems(false); });
        });
      });
  });
}

`
