/**
 * Announces a batch's committed events to subscribers here and in other processes. Each announcement
 * is a `pg_notify`, so they are coalesced to at most one per interval.
 */
import type { Ids } from "@effect-batch/domain"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { BatchEvents } from "../BatchEvents.js"
import * as Signal from "./Signal.js"

const interval = Duration.millis(20)

export interface Announcer {
  /** events up to `seq` are committed */
  readonly committed: (seq: number) => void
  /** announces what is left now */
  readonly flush: Effect.Effect<void>
  readonly run: Effect.Effect<never>
}

export const make = (events: BatchEvents, batchId: Ids.BatchId, seq: number): Announcer => {
  let latest = seq
  let announced = seq
  const signal = Signal.make()
  const flush = Effect.suspend(() => {
    if (latest <= announced) return Effect.void
    announced = latest
    return events.committed(batchId, latest)
  })
  return {
    committed: (next) => {
      if (next > latest) {
        latest = next
        signal.notify()
      }
    },
    flush,
    run: signal.wait(() => latest > announced).pipe(
      Effect.zipRight(flush),
      Effect.zipRight(Effect.sleep(interval)),
      Effect.forever,
      Effect.annotateLogs({ fiber: "announcer" })
    )
  }
}
