/**
 * The middle part of the dashboard's script: the item table, the live event feed, the buttons and the
 * confirmation dialog (retry-failed shows its dry run there first). Plain browser JavaScript; every
 * server string goes through `textContent`.
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

function onEvent(event) {
  var feed = $("events");
  var detail = event.itemKey !== undefined ? event.itemKey : "";
  if (event._tag === "ItemSucceeded") detail += " in " + formatMs(event.durationMs);
  if (event.error) detail += " — " + formatItemError(event.error);
  feed.insertBefore(h("li", null, h("span", { className: "tag" }, "#" + event.seq + " " + event._tag), detail),
    feed.firstChild);
  while (feed.children.length > 40) feed.removeChild(feed.lastChild);
  scheduleRefresh();
}

/* ---- buttons ---- */

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

function command(action) {
  var id = ui.batchId;
  var note = $("note").value;
  var ask = action === "cancel" || action === "reject"
    ? confirmDialog(action === "cancel" ? "Cancel this batch?" : "Reject the results?",
      action === "cancel" ? "Queued items will be skipped. This cannot be undone." :
        "The batch ends as Rejected; its failed items can be retried later.", [], action === "cancel" ? "Cancel batch" : "Reject")
    : Promise.resolve(true);
  return ask.then(function(ok) {
    if (!ok) return;
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
    if (plan.count === 0) return confirmDialog("Nothing to retry", "No failed item would be re-queued.", [], null);
    return confirmDialog("Retry " + plan.count + " failed item" + (plan.count === 1 ? "" : "s") + "?",
      "A dry run found these items; they will be re-queued for a new round.", plan.items,
      "Re-queue " + plan.count).then(function(ok) {
      if (!ok) return;
      return rpc("RetryFailed", { batchId: id, dryRun: false }).then(function(done) {
        say("Re-queued " + done.count + " item" + (done.count === 1 ? "" : "s") + ".");
        return refreshBatch().then(function() { if (ui.batch !== null) followBatch(ui.batch.lastSeq); loadItems(false); });
      });
    });
  });
}

`
