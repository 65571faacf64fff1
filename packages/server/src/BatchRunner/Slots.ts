/**
 * The items this process leased for one batch and the slots it may run them in: the local queue the
 * claimer fills and the executors drain, with the share granted by the database and the adaptive
 * (AIMD) limit. Touched only synchronously, from the fibers of one runner.
 */
import type { ClaimedItem } from "@effect-batch/tables/ItemRepo"
import type * as Effect from "effect/Effect"
import * as Signal from "./Signal.js"

export interface Slots {
  /** leased items waiting to start */
  readonly size: () => number
  /** attempts executing now */
  readonly executing: () => number
  /** how many attempts may execute at once: the share, within the adaptive limit */
  readonly cap: () => number
  readonly share: () => number
  /** adds leased items and wakes the executors */
  readonly push: (items: ReadonlyArray<ClaimedItem>) => void
  /** takes the next item to start, if a slot is free and starting is allowed; counts it as executing */
  readonly tryStart: () => ClaimedItem | undefined
  /** an attempt finished: its slot is free at once */
  readonly finish: () => void
  /** removes every waiting item (to release its lease) */
  readonly drain: () => ReadonlyArray<ClaimedItem>
  /** the grant from the database; a larger one wakes the executors */
  readonly setShare: (slots: number) => void
  readonly setLimit: (limit: number) => void
  /** stops (or allows again) starting attempts, at once */
  readonly hold: (holding: boolean) => void
  readonly holding: () => boolean
  /** ends the executors once they are idle */
  readonly stop: () => void
  readonly stopped: () => boolean
  /** waits until an executor may start an item, or the executors are stopped */
  readonly startable: Effect.Effect<void>
}

export const make = (options: { readonly share: number; readonly limit: number }): Slots => {
  let queue: Array<ClaimedItem | undefined> = []
  let head = 0
  let executing = 0
  let share = options.share
  let limit = options.limit
  let holding = false
  let stopped = false
  const signal = Signal.make()
  const cap = () => Math.min(share, limit)
  const canStart = () => !holding && executing < cap() && head < queue.length
  return {
    size: () => queue.length - head,
    executing: () => executing,
    cap,
    share: () => share,
    push: (items) => {
      for (const item of items) queue.push(item)
      if (items.length > 0) signal.notify()
    },
    tryStart: () => {
      if (stopped || !canStart()) return undefined
      const item = queue[head]
      queue[head] = undefined
      head++
      if (head > 1024 && head * 2 > queue.length) {
        queue = queue.slice(head)
        head = 0
      }
      executing++
      return item
    },
    finish: () => {
      executing--
    },
    drain: () => {
      const items: Array<ClaimedItem> = []
      for (let i = head; i < queue.length; i++) {
        const item = queue[i]
        if (item !== undefined) items.push(item)
      }
      queue = []
      head = 0
      return items
    },
    setShare: (slots) => {
      const grew = slots > share
      share = slots
      if (grew) signal.notify()
    },
    setLimit: (next) => {
      const grew = next > limit
      limit = next
      if (grew) signal.notify()
    },
    hold: (next) => {
      holding = next
      if (!next) signal.notify()
    },
    holding: () => holding,
    stop: () => {
      stopped = true
      signal.notify()
    },
    stopped: () => stopped,
    startable: signal.wait(() => stopped || canStart())
  }
}
