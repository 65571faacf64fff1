/**
 * Two-level progress of a campaign on the command line: batches done / total and items done /
 * total, with the item rate and an ETA.
 *
 * @since 0.4.0
 */
import { ItemCounts } from "@effect-batch/domain"
import type { CampaignEvent, CampaignViews } from "@effect-batch/domain"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as ProgressBar from "./ProgressBar.js"

/**
 * One line, e.g.
 * `batches [######....] 120/352 | items  34% 1200/3518 ok 1190 failed 10 | 45.0/s ETA 51s | Running`.
 *
 * @since 0.4.0
 */
export const render = (progress: CampaignViews.CampaignProgress, width = 20): string => {
  const b = progress.batches
  const filled = b.total === 0 ? width : Math.round((b.done / b.total) * width)
  const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`
  const done = ItemCounts.settled(progress.counts)
  const percent = `${String(progress.total === 0 ? 100 : Math.floor((done / progress.total) * 100)).padStart(3)}%`
  const c = progress.counts
  const parts = [
    `ok ${c.succeeded}`,
    `failed ${c.failed}`,
    ...(c.quarantined > 0 ? [`quarantined ${c.quarantined}`] : []),
    ...(c.skipped > 0 ? [`skipped ${c.skipped}`] : []),
    `running ${c.running}`
  ]
  const eta = progress.etaSeconds === undefined ? "ETA --" : `ETA ${ProgressBar.formatSeconds(progress.etaSeconds)}`
  return `batches ${bar} ${b.done}/${b.total} (${b.active} running) | items ${percent} ${done}/${progress.total} ${
    parts.join(" ")
  } | ${progress.itemsPerSecond.toFixed(1)}/s ${eta} | ${progress.state._tag}`
}

/**
 * Draws the campaign's progress until its event stream ends (its terminal event) or `stopAt` holds.
 * Returns the last progress drawn.
 *
 * @since 0.4.0
 */
export const watch = <E1, E2>(options: {
  readonly events: Stream.Stream<CampaignEvent.CampaignEvent, E1>
  readonly progress: Effect.Effect<CampaignViews.CampaignProgress, E2>
  readonly output: { readonly isTTY?: boolean | undefined; write(s: string): unknown }
  readonly stopAt?: (event: CampaignEvent.CampaignEvent) => boolean
}): Effect.Effect<CampaignViews.CampaignProgress, E1 | E2> =>
  Effect.gen(function*() {
    const drawer = ProgressBar.makeDrawer(options.output, options.output.isTTY === true ? 250 : 2_000)
    const draw = (force: boolean) =>
      Effect.gen(function*() {
        const progress = yield* options.progress
        drawer.draw(render(progress), yield* Clock.currentTimeMillis, force)
        return progress
      })
    yield* draw(true)
    // between campaign events the items move too: redraw on events and every second
    yield* options.events.pipe(
      Stream.takeUntil((event) => options.stopAt?.(event) ?? false),
      Stream.groupedWithin(10_000, "1 second"),
      Stream.runForEach(() => draw(false)),
      Effect.raceFirst(Effect.forever(Effect.zipRight(Effect.sleep("1 second"), draw(false))))
    )
    const last = yield* draw(true)
    drawer.done()
    return last
  })
