/**
 * Announces a batch's committed events to subscribers here and in other processes. Followers in this
 * process hear of each commit at once (a local hint costs nothing); each announcement to the others is
 * a `pg_notify`, so those are coalesced to at most one per interval.
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
  let here = seq
  let elsewhere = seq
  const signal = Signal.make()
  const announceHere = Effect.suspend(() => {
    if (latest <= here) return Effect.void
    here = latest
    return events.committedHere(batchId, latest)
  })
  const announceElsewhere = Effect.suspend(() => {
    if (latest <= elsewhere) return Effect.void
    elsewhere = latest
    return events.committedElsewhere(batchId, latest)
  })
  return {
    committed: (next) => {
      if (next > latest) {
        latest = next
        signal.notify()
      }
    },
    flush: Effect.zipRight(announceHere, announceElsewhere),
    run: Effect.zipRight(
      signal.wait(() => latest > here).pipe(Effect.zipRight(announceHere), Effect.forever, Effect.forkScoped),
      signal.wait(() => latest > elsewhere).pipe(
        Effect.zipRight(announceElsewhere),
        Effect.zipRight(Effect.sleep(interval)),
        Effect.forever
      )
    ).pipe(Effect.scoped, Effect.annotateLogs({ fiber: "announcer" }))
  }
}
