/**
 * The first half of the dashboard's script: the token, the RPC client (`POST /rpc`, NDJSON), the event
 * stream, DOM helpers that only ever insert text, and formatters. Plain browser JavaScript.
 *
 * @since 0.1.0
 */
import { BatchEvent } from "@effect-batch/domain"

/**
 * Browser JavaScript, run inside the page script's function scope (see `App.ts`).
 *
 * @since 0.1.0
 */
export const script = String.raw`
"use strict";
var TOKEN_KEY = "effect_batch_token";

/** The token from ?token= (then removed from the address bar), else this tab's, else the cookie. */
function loadToken() {
  var url = new URL(window.location.href);
  var fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    storeToken(fromUrl);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
    return fromUrl;
  }
  var stored = window.sessionStorage.getItem(TOKEN_KEY);
  if (stored) return stored;
  var cookies = document.cookie ? document.cookie.split("; ") : [];
  for (var i = 0; i < cookies.length; i++) {
    var eq = cookies[i].indexOf("=");
    if (cookies[i].slice(0, eq) === TOKEN_KEY) return decodeURIComponent(cookies[i].slice(eq + 1));
  }
  return "";
}

/** Keeps the token for this tab and as the cookie the event stream accepts. */
function storeToken(token) {
  window.sessionStorage.setItem(TOKEN_KEY, token);
  document.cookie = TOKEN_KEY + "=" + encodeURIComponent(token) + "; Path=/; SameSite=Strict";
}

function forgetToken() {
  window.sessionStorage.removeItem(TOKEN_KEY);
  document.cookie = TOKEN_KEY + "=; Path=/; SameSite=Strict; Max-Age=0";
}

var token = loadToken();

/** An RPC or HTTP failure: the server's typed error (its _tag and fields) or a transport problem. */
function RpcError(tag, message, status, fields) {
  this.tag = tag;
  this.message = message;
  this.status = status;
  this.fields = fields || {};
}

/** A readable sentence for a typed error. */
function describeError(e) {
  if (!(e instanceof RpcError)) return String(e && e.message ? e.message : e);
  var f = e.fields;
  switch (e.tag) {
    case "InvalidTransition": return "Cannot " + f.command + " a " + (f.subject || "batch") + " that is " + f.state + ".";
    case "BatchNotFound": return "This batch does not exist (or belongs to another tenant).";
    case "CampaignNotFound": return "This campaign does not exist (or belongs to another tenant).";
    case "VersionConflict": return "It changed meanwhile; try again.";
    case "Unauthorized": return "The token is missing or unknown.";
    case "StorageUnavailable": return "The database is unavailable; try again shortly.";
    default: return e.message || e.tag;
  }
}

/** The first typed failure of an encoded Cause, else its first defect. */
function causeError(cause) {
  var stack = [cause];
  var defect = null;
  while (stack.length > 0) {
    var c = stack.shift();
    if (!c) continue;
    if (c._tag === "Fail") {
      var error = c.error || {};
      return new RpcError(error._tag || "Error", error.message || "", 200, error);
    }
    if (c._tag === "Die" && defect === null) defect = c.defect;
    if (c._tag === "Sequential" || c._tag === "Parallel") stack.push(c.left, c.right);
  }
  var text = defect && typeof defect === "object" ? defect.message : defect;
  return new RpcError("Defect", String(text || "the request was interrupted"), 200, {});
}

var nextRequestId = 1;

/**
 * Calls one RPC: POSTs one NDJSON request line and reads the NDJSON answer: "Chunk" lines (the values
 * of a streaming RPC), then one "Exit" line (Success with the value, or Failure with an encoded Cause);
 * a "Defect" line is a protocol failure. Resolves to the value, or the chunks' values for a stream.
 */
function rpc(tag, payload) {
  var id = String(nextRequestId++);
  var line = JSON.stringify({ _tag: "Request", id: id, tag: tag, payload: payload, headers: [] }) + "\n";
  return fetch("/rpc", {
    method: "POST",
    headers: { "content-type": "application/ndjson", authorization: "Bearer " + token },
    body: line,
    cache: "no-store"
  }).then(function(response) {
    return response.text().then(function(text) {
      if (!response.ok) {
        var body = {};
        try { body = JSON.parse(text); } catch (ignored) { body = {}; }
        throw new RpcError(body._tag || "HttpError", body.message || "HTTP " + response.status, response.status, body);
      }
      var chunks = [];
      var lines = text.split("\n");
      for (var i = 0; i < lines.length; i++) {
        if (lines[i].trim() === "") continue;
        var message = JSON.parse(lines[i]);
        if (message._tag === "Chunk" && message.requestId === id) {
          for (var j = 0; j < message.values.length; j++) chunks.push(message.values[j]);
        } else if (message._tag === "Exit" && message.requestId === id) {
          if (message.exit._tag === "Success") return chunks.length > 0 ? chunks : message.exit.value;
          throw causeError(message.exit.cause);
        } else if (message._tag === "Defect") {
          throw causeError({ _tag: "Die", defect: message.defect });
        }
      }
      throw new RpcError("Protocol", "the server ended the answer without a result", response.status, {});
    });
  });
}

var EVENT_TAGS = ${JSON.stringify(BatchEvent.tags)};

/**
 * Follows an event stream (the route at path, e.g. "/batches/ID/events") from sequence "after",
 * listening to the event names in tags; the browser reconnects by itself with Last-Event-ID.
 * onEvent gets each decoded event; onStatus gets "open", "retrying" or "closed".
 */
function followEvents(path, tags, after, onEvent, onStatus) {
  var source = new EventSource(path + "?after=" + after + "&token=" + encodeURIComponent(token));
  var handler = function(e) {
    var event;
    try { event = JSON.parse(e.data); } catch (ignored) { return; }
    onEvent(event);
  };
  for (var i = 0; i < tags.length; i++) source.addEventListener(tags[i], handler);
  source.onopen = function() { onStatus("open"); };
  source.onerror = function() { onStatus(source.readyState === EventSource.CLOSED ? "closed" : "retrying"); };
  return source;
}

/** Follows a batch's events (see followEvents). */
function follow(batchId, after, onEvent, onStatus) {
  return followEvents("/batches/" + encodeURIComponent(batchId) + "/events", EVENT_TAGS, after, onEvent, onStatus);
}

/** An element with text content only: h("td", { className: "x" }, "text", child, ...). */
function h(tag, props) {
  var el = document.createElement(tag);
  if (props) {
    if (props.className) el.className = props.className;
    if (props.title) el.title = props.title;
    if (props.dataset) for (var k in props.dataset) el.dataset[k] = props.dataset[k];
  }
  for (var i = 2; i < arguments.length; i++) {
    var child = arguments[i];
    if (child === null || child === undefined) continue;
    el.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
  return el;
}

function $(id) { return document.getElementById(id); }

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

function setText(id, text) { $(id).textContent = text; }

var STATE_FIELDS = ["queued", "running", "retryScheduled", "succeeded", "failed", "quarantined", "skipped"];
var STATE_TAGS = { queued: "Queued", running: "Running", retryScheduled: "RetryScheduled", succeeded: "Succeeded",
  failed: "Failed", quarantined: "Quarantined", skipped: "Skipped" };
var STATE_LABELS = { queued: "queued", running: "running", retryScheduled: "retry scheduled",
  succeeded: "succeeded", failed: "failed", quarantined: "quarantined", skipped: "skipped" };
var KNOWN_BADGES = ["Pending", "Running", "Paused", "AwaitingReview", "Completed", "Failed", "Cancelled",
  "Rejected", "Queued", "RetryScheduled", "Succeeded", "Quarantined", "Skipped"];

/** Makes el the badge of a state tag (its colour, data-state and text). */
function setBadge(el, tag) {
  el.className = "badge" + (KNOWN_BADGES.indexOf(tag) >= 0 ? " b-" + tag : "");
  el.dataset.state = tag;
  el.textContent = tag;
  return el;
}

function badge(tag) { return setBadge(document.createElement("span"), tag); }

/** The head of a view: "(prefix)-title" the workflow and the id, "(prefix)-state" the state's badge. */
function setTitle(prefix, workflow, id, stateTag) {
  setText(prefix + "-title", workflow + " ");
  $(prefix + "-title").appendChild(h("code", null, id));
  setBadge($(prefix + "-state"), stateTag);
}

/**
 * Fills the list body rowsId with one row per item (its id in data-(key)), cells(item) its cells;
 * the row of selectedId is marked, and a click on a row calls open(id).
 */
function renderList(rowsId, items, key, selectedId, cells, open) {
  var rows = $(rowsId);
  clear(rows);
  items.forEach(function(item) {
    var row = h("tr", null);
    row.dataset[key] = item.id;
    cells(item).forEach(function(cell) { row.appendChild(cell); });
    if (item.id === selectedId) row.className = "selected";
    row.addEventListener("click", function() { open(item.id); });
    rows.appendChild(row);
  });
}

function total(counts) {
  var n = 0;
  for (var i = 0; i < STATE_FIELDS.length; i++) n += counts[STATE_FIELDS[i]] || 0;
  return n;
}

function settled(counts) {
  return (counts.succeeded || 0) + (counts.failed || 0) + (counts.quarantined || 0) + (counts.skipped || 0);
}

/** Fills a .bar with one segment per { className, value, label }, in order, each its share of n. */
function renderSegments(el, segments, n) {
  clear(el);
  segments.forEach(function(s) {
    if (s.value === 0 || n === 0) return;
    var seg = h("span", { className: s.className, title: s.value + " " + s.label });
    seg.style.width = (100 * s.value / n).toFixed(2) + "%";
    el.appendChild(seg);
  });
}

/** Fills a .bar with one segment per item state, settled states first. */
var BAR_ORDER = ["succeeded", "failed", "quarantined", "skipped", "running", "retryScheduled", "queued"];
function renderBar(el, counts) {
  renderSegments(el, BAR_ORDER.map(function(field) {
    return { className: "s-" + field, value: counts[field] || 0, label: STATE_LABELS[field] };
  }), total(counts));
}

/** A small .bar of item counts. */
function barOf(counts) {
  var bar = h("div", { className: "bar" });
  renderBar(bar, counts);
  return bar;
}

/** "(42%)" of done over n, or nothing when n is 0. */
function percent(done, n) { return n > 0 ? "(" + Math.floor(100 * done / n) + "%)" : ""; }

function formatDuration(seconds) {
  if (seconds === undefined || seconds === null) return "–";
  var s = Math.round(seconds);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function formatMs(ms) {
  if (ms === undefined || ms === null) return "–";
  return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s";
}

function formatTime(iso) {
  var d = new Date(iso);
  return isNaN(d.getTime()) ? "" : d.toLocaleTimeString();
}

function formatItemError(error) {
  if (!error) return "";
  return (error.tag ? error.tag : error.category) + ": " + error.message;
}
`
