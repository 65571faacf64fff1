/**
 * The batch view's head and numbers: its state described, its bar, throughput, ETA, steps, latency,
 * round, count tiles (each a filter of the item table) and latest errors, and which of its buttons
 * its state allows.
 *
 * @since 0.5.0
 */
import * as Tags from "@effect-batch/domain/Tags"
import type { BatchView } from "./App.js"
import { ui } from "./App.js"
import type { Answer } from "./Client.js"
import type { BatchAction } from "./Controls.js"
import { batchCommands, enableButtons, setFilter } from "./Controls.js"
import type { Counts } from "./Dom.js"
import {
  $,
  absurd,
  clear,
  formatDuration,
  formatItemError,
  formatMs,
  formatTime,
  h,
  percent,
  renderBar,
  setText,
  setTitle,
  settled,
  stateLabels,
  total
} from "./Dom.js"

type Progress = Answer<"GetProgress">
type BatchState = BatchView["state"]

type Action = BatchAction | "retry"

/** The command each button (its `data-action`) runs. */
const actionCommands: { readonly [K in Action]: Tags.BatchCommand } = { ...batchCommands, retry: "RetryFailed" }

const isAction = (action: string): action is Action => Object.hasOwn(actionCommands, action)

/** Whether the button's action is a batch command. */
export const isBatchAction = (action: string): action is BatchAction => Object.hasOwn(batchCommands, action)

const terminal: ReadonlySet<string> = new Set(Tags.batchTerminalStates)

/** Whether the batch state ends its event stream. */
export const isTerminal = (state: BatchState): boolean => terminal.has(state._tag)

/** Whether the open batch's state allows the button's action. */
export const batchAllows = (action: string): boolean =>
  ui.batch !== null && isAction(action) && Tags.batchAllowed[ui.batch.state._tag].includes(actionCommands[action])

const byActor = (s: { readonly actor: string; readonly note: string }): string =>
  "by " + s.actor + (s.note ? ": " + s.note : "")

const describeState = (s: BatchState): string => {
  switch (s._tag) {
    case "Pending":
      return ""
    case "Running":
      return "round " + s.round + ", since " + formatTime(s.since)
    case "Paused": {
      const r = s.reason
      switch (r._tag) {
        case "PausedByUser":
          return "by " + r.actor + (r.note ? ": " + r.note : "")
        case "CircuitBreakerOpen":
          return "circuit breaker: " + r.consecutiveFailures + " consecutive failures"
        case "SlowedDown":
          return "slowed down: " + r.throughput.toFixed(1) + " items per " + r.window + " against " +
            r.baselineThroughput.toFixed(1) + " at first"
        default:
          return absurd(r)
      }
    }
    case "AwaitingReview":
      return "waiting for a person to approve or reject"
    case "Completed":
      return s.approvedBy ? "approved by " + s.approvedBy : ""
    case "Failed": {
      const f = s.reason
      switch (f._tag) {
        case "ItemFailedFinally":
          return "item " + f.itemKey + " failed: " + formatItemError(f.error)
        case "ErrorBudgetExceeded":
          return "error budget exceeded: " + f.failed + " of " + f.settled + " failed"
        default:
          return absurd(f)
      }
    }
    case "Cancelled":
    case "Rejected":
      return byActor(s)
    default:
      return absurd(s)
  }
}

/** Renders the open batch and its progress. */
export const renderBatch = (b: BatchView, p: Progress): void => {
  setTitle("batch", b.workflow, b.id, b.state._tag)
  setText("batch-detail", describeState(b.state))
  renderBar($("batch-bar"), b.counts)
  const n = total(b.counts)
  const done = settled(b.counts)
  setText("settled", String(done))
  setText("total", String(n))
  setText("percent", percent(done, n))
  setText("throughput", p.itemsPerSecond.toFixed(1) + " items/s")
  const steps = p.steps
  ui.stepsPerItem = steps !== undefined && steps.declared !== undefined && n > 0 ? steps.declared / n : 0
  setText(
    "steps",
    steps === undefined ? "–" : steps.completed + (steps.declared === undefined ? "" : " / " + steps.declared)
  )
  // the stage breakdown: completed items per durable step, in the declared order
  setText(
    "stages",
    steps === undefined ? "" : steps.byStep.map((s) => s.step + " " + s.completed + (ui.stepsPerItem ? " / " + n : ""))
      .join(" · ")
  )
  setText("eta", isTerminal(b.state) || b.state._tag === "AwaitingReview" ? "done" : formatDuration(p.etaSeconds))
  setText("latency", formatMs(p.p50Ms) + " / " + formatMs(p.p95Ms))
  setText("round", "round" in b.state ? String(b.state.round) : "–")
  renderCounts(b.counts)
  enableButtons("action", batchAllows)
  const errors = $("errors")
  clear(errors)
  for (const e of p.latestErrors) {
    errors.appendChild(
      h(
        "li",
        null,
        h("span", { className: "tag" }, e.itemKey),
        "attempt " + e.attempt + " · " + formatItemError(e.error)
      )
    )
  }
  if (p.latestErrors.length === 0) errors.appendChild(h("li", { className: "muted" }, "none"))
}

/** Renders the count tiles, each a filter of the item table. */
export const renderCounts = (counts: Counts): void => {
  const el = $("counts")
  clear(el)
  for (const field of Tags.itemCountFields) {
    const state = Tags.itemCountStates[field]
    const tile = h(
      "button",
      { className: "count c-" + field + (ui.filter === state ? " active" : "") },
      h("strong", null, String(counts[field])),
      h("span", null, stateLabels[field])
    )
    tile.addEventListener("click", () => setFilter(ui.filter === state ? "" : state))
    el.appendChild(tile)
  }
}
