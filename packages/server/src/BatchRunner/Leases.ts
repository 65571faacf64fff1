/**
 * Lease renewal of one batch in this process: renews its share row (the lease on every item it
 * holds) and renegotiates its share. Every commit and claim renews it too; this covers long attempts
 * and idle periods, and asks again often while the process gets less than it could use (a process
 * that joins gets its fair share as the others give back).
 */
import { ItemRepo } from "@effect-batch/tables/ItemRepo"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Run } from "./Run.js"

/** How often a process that gets less than it could use asks again. */
const starvingEveryMs = 100

export const make = (options: { readonly run: Run; readonly applyShare: (slots: number) => void }) =>
  Effect.gen(function*() {
    const { run } = options
    const items = yield* ItemRepo
    // whole milliseconds: on a test clock this sleep moves the time, which is stored as bigint
    const everyMs = Math.max(250, Math.round(run.leaseMs / 3))
    while (true) {
      const request = run.shareRequest(yield* Clock.currentTimeMillis)
      const starving = run.record.state._tag === "Running" && run.slots.share() < request.wanted
      yield* Effect.raceFirst(
        Effect.sleep(Duration.millis(starving ? starvingEveryMs : everyMs)),
        run.renewAsked
      )
      const result = yield* items.renew(run.shareRequest(yield* Clock.currentTimeMillis)).pipe(
        Effect.catchAll((e) => Effect.as(Effect.logWarning("renewing the lease failed", e), Option.none()))
      )
      if (Option.isSome(result)) {
        options.applyShare(result.value.slots)
        run.seen(result.value.version)
      }
    }
  }).pipe(Effect.annotateLogs({ fiber: "leases" }))
