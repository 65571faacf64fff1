/**
 * The shared limiters panel: the tenant's limiters with their state across the fleet (permits in the
 * window, hold after a 429, throttles, processes, effective concurrency), polled while the page is
 * signed in and shown only when the tenant has any.
 *
 * @since 0.5.0
 */
import { ui } from "./App.js"
import type { Answer } from "./Client.js"
import { rpc } from "./Client.js"
import { $, h } from "./Dom.js"

type Limiter = Answer<"ListLimiters">[number]

const heldBack = (limiter: Limiter): string => {
  if (limiter.heldBackUntil === null) return "no"
  const left = Date.parse(limiter.heldBackUntil) - Date.now()
  return left > 0 ? "for " + Math.ceil(left / 1000) + " s" : "no"
}

const renderLimiters = (limiters: ReadonlyArray<Limiter>): void => {
  $("limiters").hidden = limiters.length === 0
  const rows = $("limiter-rows")
  rows.replaceChildren()
  for (const l of limiters) {
    rows.appendChild(h(
      "tr",
      { dataset: { limiter: l.name } },
      h("td", { className: "mono" }, l.name),
      h("td", null, l.permitsInWindow + "/" + l.limit + " per " + l.interval),
      h("td", null, l.available),
      h("td", null, heldBack(l)),
      h("td", null, l.throttles),
      h("td", null, l.processes),
      h("td", null, l.effectiveConcurrency)
    ))
  }
}

const loadLimiters = (): void => {
  if (!ui.started) return
  // the panel is an extra: a failed poll leaves it as it was until the next one
  rpc("ListLimiters").then(renderLimiters, () => undefined)
}

/** Polls the limiters panel. */
export const init = (): void => {
  loadLimiters()
  setInterval(loadLimiters, 2000)
}
