/**
 * The dashboard's shared limiters panel: the tenant's limiters with their state across the fleet
 * (permits in the window, hold after a 429, throttles, processes, effective concurrency), polled
 * while the page is signed in and shown only when the tenant has any.
 *
 * @since 0.4.0
 */

/**
 * Browser JavaScript, run after `App.script` in the same function scope.
 *
 * @since 0.4.0
 */
export const script = String.raw`
function heldBack(limiter) {
  if (limiter.heldBackUntil === null) return "no";
  var left = Date.parse(limiter.heldBackUntil) - Date.now();
  return left > 0 ? "for " + Math.ceil(left / 1000) + " s" : "no";
}

function renderLimiters(limiters) {
  $("limiters").hidden = limiters.length === 0;
  var rows = $("limiter-rows");
  rows.replaceChildren();
  limiters.forEach(function(l) {
    var row = h("tr", { dataset: { limiter: l.name } },
      h("td", { className: "mono" }, l.name),
      h("td", null, l.permitsInWindow + "/" + l.limit + " per " + l.interval),
      h("td", null, l.available),
      h("td", null, heldBack(l)),
      h("td", null, l.throttles),
      h("td", null, l.processes),
      h("td", null, l.effectiveConcurrency));
    rows.appendChild(row);
  });
}

function loadLimiters() {
  if (!ui.started) return;
  rpc("ListLimiters", {}).then(renderLimiters, function() {});
}

document.addEventListener("DOMContentLoaded", function() {
  loadLimiters();
  setInterval(loadLimiters, 2000);
});
`
