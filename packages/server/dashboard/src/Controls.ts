/**
 * The item table, the live event feed, the buttons and the confirmation dialog (retry-failed shows
 * its dry run there first), shared by the batch and campaign views. Every server string goes through
 * `textContent`.
 *
 * @since 0.5.0
 */
import type { BatchEvent } from "@effect-batch/domain"
import type * as Tags from "@effect-batch/domain/Tags"
import { failed, followBatch, refreshBatch, say, ui } from "./App.js"
import { renderCounts } from "./BatchView.js"
import type { Answer } from "./Client.js"
import { rpc } from "./Client.js"
import { $, absurd, badge, clear, formatItemError, formatMs, formatTime, h, setText } from "./Dom.js"

/** An item as the item table shows it. */
export type ItemView = Answer<"ListItems">["items"][number]

/* ---- the item table ---- */

/** Shows only the items in state tag ("" for all). */
export const setFilter = (tag: "" | Tags.ItemState): void => {
  ui.filter = tag
  $("filter", HTMLSelectElement).value = tag
  if (ui.batch !== null) renderCounts(ui.batch.counts)
  loadItems(false)
}

/** Reads the item table again (as many rows as it shows), or its next page. */
export const loadItems = (append: boolean): void => {
  const id = ui.batchId
  if (id === null) return
  const filter = ui.filter
  const cursor = ui.cursor
  rpc("ListItems", {
    batchId: id,
    limit: append ? 100 : Math.min(1000, Math.max(100, ui.items.length)),
    ...(filter ? { state: filter } : {}),
    ...(append && cursor ? { cursor } : {})
  }).then((page) => {
    if (id !== ui.batchId || filter !== ui.filter) return
    ui.items = append ? ui.items.concat(page.items) : [...page.items]
    ui.cursor = page.nextCursor || null
    const rows = $("item-rows")
    clear(rows)
    for (const item of ui.items) rows.appendChild(itemRow(item))
    if (ui.items.length === 0) rows.appendChild(h("tr", null, h("td", { className: "muted" }, "no item")))
    $("more").hidden = ui.cursor === null
  }, failed)
}

const itemDetail = (s: ItemView["state"]): { readonly attempts: string; readonly error: string } => {
  switch (s._tag) {
    case "Queued":
      return { attempts: "", error: "" }
    case "Running":
      return { attempts: String(s.attempt), error: "" }
    case "RetryScheduled":
      return {
        attempts: String(s.attempt),
        error: formatItemError(s.lastError) + " (next at " + formatTime(s.nextAttemptAt) + ")"
      }
    case "Succeeded":
      return { attempts: String(s.attempts), error: "" }
    case "Failed":
      return { attempts: String(s.attempts), error: formatItemError(s.error) }
    case "Quarantined":
      return { attempts: String(s.attempts), error: s.reason + " — " + formatItemError(s.error) }
    case "Skipped":
      return { attempts: "", error: s.reason }
    default:
      return absurd(s)
  }
}

const itemRow = (item: ItemView): HTMLTableRowElement => {
  const s = item.state
  const { attempts, error } = itemDetail(s)
  return h(
    "tr",
    null,
    h("td", { className: "mono", title: item.key }, item.key),
    h("td", null, badge(s._tag)),
    h("td", null, attempts),
    h("td", null, String(item.round)),
    h(
      "td",
      null,
      item.steps === undefined ? "" : ui.stepsPerItem ? item.steps + " / " + ui.stepsPerItem : String(item.steps)
    ),
    h("td", null, item.durationMs === undefined ? "" : formatMs(item.durationMs)),
    h("td", { className: "err" }, error)
  )
}

/* ---- events ---- */

/** Puts an event first in the feed feedId, which keeps the latest 40. */
export const feedLine = (
  feedId: string,
  event: { readonly seq: number; readonly _tag: string },
  detail: string
): void => {
  const feed = $(feedId)
  feed.insertBefore(
    h("li", null, h("span", { className: "tag" }, "#" + event.seq + " " + event._tag), detail),
    feed.firstChild
  )
  while (feed.children.length > 40 && feed.lastChild) feed.removeChild(feed.lastChild)
}

/** What the feed says of a batch event after its tag. */
const eventDetail = (event: BatchEvent.Encoded): string => {
  switch (event._tag) {
    case "BatchCreated":
    case "BatchStarted":
    case "BatchPaused":
    case "BatchResumed":
    case "ReviewRequested":
    case "BatchApproved":
    case "BatchRejected":
    case "BatchCompleted":
    case "BatchFailed":
    case "BatchCancelled":
    case "BatchRedriven":
    case "ConfigChanged":
    case "Throttled":
      return ""
    case "ItemSucceeded":
      return event.itemKey + " in " + formatMs(event.durationMs)
    case "ItemFailed":
    case "ItemRetryScheduled":
      return event.itemKey + " — " + formatItemError(event.error)
    case "SlowdownDetected":
    case "SlowdownRecovered":
      return event.throughput.toFixed(1) + " items per " + event.window + " (baseline " +
        event.baselineThroughput.toFixed(1) + ")"
    case "ItemStarted":
    case "ItemTimedOut":
    case "StepCompleted":
    case "StepsDiscarded":
    case "ItemQuarantined":
    case "ItemReleased":
    case "ItemSkipped":
      return event.itemKey
    default:
      return absurd(event)
  }
}

/** Shows a batch event in the feed and refreshes the batch soon. */
export const onEvent = (event: BatchEvent.Encoded): void => {
  feedLine("events", event, eventDetail(event))
  scheduleRefresh()
}

/** Refreshes the batch at most every 400 ms and the item table at most every 1.5 s while events arrive. */
export const scheduleRefresh = (): void => {
  if (ui.refreshTimer === null) {
    ui.refreshTimer = setTimeout(() => {
      ui.refreshTimer = null
      refreshBatch()
    }, 400)
  }
  if (ui.itemsTimer === null) {
    ui.itemsTimer = setTimeout(() => {
      ui.itemsTimer = null
      loadItems(false)
    }, 1500)
  }
}

/* ---- buttons ---- */

const buttons = (attr: string) => document.querySelectorAll<HTMLButtonElement>("button[data-" + attr + "]")

/** Enables each button[data-(attr)=action] when allows(action). */
export const enableButtons = (attr: string, allows: (action: string) => boolean): void =>
  buttons(attr).forEach((button) => {
    button.disabled = !allows(button.getAttribute("data-" + attr) ?? "")
  })

/**
 * Wires each button[data-(attr)=action]: disabled until allowed, and while run(action) is under way;
 * a failure goes to onError.
 */
export const wireButtons = (
  attr: string,
  run: (action: string) => Promise<unknown>,
  onError: (e: unknown) => void,
  allows: (action: string) => boolean
): void =>
  buttons(attr).forEach((button) => {
    button.disabled = true
    button.addEventListener("click", () => {
      const action = button.getAttribute("data-" + attr) ?? ""
      button.disabled = true
      run(action).catch(onError).then(() => {
        button.disabled = !allows(action)
      })
    })
  })

/** Shows the dialog with title, text and keys; resolves to whether the person said yes (yes is its label). */
const confirmDialog = (
  title: string,
  text: string,
  keys: ReadonlyArray<string>,
  yes: string | null
): Promise<boolean> => {
  const dialog = $("confirm", HTMLDialogElement)
  setText("confirm-title", title)
  setText("confirm-text", text)
  const list = $("confirm-list")
  clear(list)
  for (const k of keys.slice(0, 100)) list.appendChild(h("li", null, k))
  if (keys.length > 100) list.appendChild(h("li", { className: "muted" }, "… and " + (keys.length - 100) + " more"))
  list.hidden = keys.length === 0
  $("confirm-yes").hidden = yes === null
  setText("confirm-yes", yes || "")
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      $("confirm-yes").removeEventListener("click", onYes)
      $("confirm-no").removeEventListener("click", onNo)
      dialog.removeEventListener("cancel", onNo)
      dialog.close()
      resolve(answer)
    }
    const onYes = () => done(true)
    const onNo = () => done(false)
    $("confirm-yes").addEventListener("click", onYes)
    $("confirm-no").addEventListener("click", onNo)
    dialog.addEventListener("cancel", onNo)
    dialog.showModal()
  })
}

/** "3 items", "1 item": a count and its noun (its plural given when not noun + "s"). */
export const plural = (n: number, noun: string, nouns?: string): string =>
  n + " " + (n === 1 ? noun : nouns || noun + "s")

/** A question: its title, its text and the label of yes. */
export type Question = readonly [title: string, text: string, yes: string]

/** Asks question when there is one; runs run() on yes. */
export const askThen = (question: Question | undefined, run: () => Promise<unknown>): Promise<unknown> => {
  const ask = question ? confirmDialog(question[0], question[1], [], question[2]) : Promise.resolve(true)
  return ask.then((ok) => ok ? run() : undefined)
}

/**
 * Shows a dry run's result: count failed items (keys lists them) that the redrive would run again,
 * what then happens (outcome), and asks before run() does it; with nothing to retry, says so.
 */
export const confirmRedrive = (
  count: number,
  keys: ReadonlyArray<string>,
  outcome: string,
  yes: string,
  run: () => Promise<unknown>
): Promise<unknown> => {
  if (count === 0) return confirmDialog("Nothing to retry", "No failed item would run again.", [], null)
  return confirmDialog(
    "Retry " + plural(count, "failed item") + "?",
    "A dry run found these items; " + outcome,
    keys,
    yes
  )
    .then((ok) => ok ? run() : undefined)
}

/** The batch commands of the buttons (their `data-action`) and the RPC each calls. */
export const batchCommands = {
  pause: "Pause",
  resume: "Resume",
  cancel: "Cancel",
  approve: "Approve",
  reject: "Reject"
} as const satisfies Record<string, Tags.BatchCommand>

/** A batch command button's action. */
export type BatchAction = keyof typeof batchCommands

const batchQuestions: Partial<Record<BatchAction, Question>> = {
  cancel: ["Cancel this batch?", "Queued items will be skipped. This cannot be undone.", "Cancel batch"],
  reject: ["Reject the results?", "The batch ends as Rejected; its failed items can be retried later.", "Reject"]
}

/** Runs a batch command (after its question, if it has one). */
export const command = (action: BatchAction): Promise<unknown> => {
  const id = ui.batchId
  if (id === null) return Promise.resolve()
  const note = $("note", HTMLInputElement)
  const tag = batchCommands[action]
  return askThen(batchQuestions[action], () =>
    rpc(tag, { batchId: id, note: note.value }).then((b) => {
      note.value = ""
      say(tag + ": the batch is now " + b.state._tag + ".")
      return refreshBatch()
    }))
}

/** Shows retry-failed's dry run, then re-queues the failed items on yes. */
export const retryFailed = (): Promise<unknown> => {
  const id = ui.batchId
  if (id === null) return Promise.resolve()
  return rpc("RetryFailed", { batchId: id, dryRun: true }).then((plan) =>
    confirmRedrive(
      plan.count,
      plan.items,
      "they will be re-queued for a new round.",
      "Re-queue " + plan.count,
      () =>
        rpc("RetryFailed", { batchId: id, dryRun: false }).then((done) => {
          say("Re-queued " + plural(done.count, "item") + ".")
          return refreshBatch().then(() => {
            if (ui.batch !== null) followBatch(ui.batch.lastSeq)
            loadItems(false)
          })
        })
    )
  )
}
