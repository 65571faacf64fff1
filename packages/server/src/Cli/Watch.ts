/**
 * Follows a batch's events and redraws its progress bar.
 *
 * @since 0.1.0
 */
import type { BatchEvent, Views } from "@effect-batch/domain"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as ProgressBar from "./ProgressBar.js"

/**
 * Draws the progress of a batch until its event stream ends (the terminal event) or `stopAt` says so.
 * Returns the last progress drawn.
 *
 * @since 0.1.0
 */
export const watch = <E1, E2, R1, R2>(options: {
  readonly events: Stream.Stream<BatchEvent.BatchEvent, E1, R1>
  readonly progress: Effect.Effect<Views.Progress, E2, R2>
  readonly output: { readonly isTTY?: boolean | undefined; write(s: string): unknown }
  readonly stopAt?: (event: BatchEvent.BatchEvent) => boolean
}): Effect.Effect<Views.Progress, E1 | E2, R1 | R2> =>
  Effect.gen(function*() {
    const drawer = ProgressBar.makeDrawer(options.output, options.output.isTTY === true ? 250 : 2_000)
    const draw = (force: boolean) =>
      Effect.gen(function*() {
        const progress = yield* options.progress
        drawer.draw(ProgressBar.render(progress), yield* Clock.currentTimeMillis, force)
        return progress
      })
    yield* draw(true)
    yield* options.events.pipe(
      Stream.takeUntil((event) => options.stopAt?.(event) ?? false),
      Stream.groupedWithin(10_000, "250 millis"),
      Stream.runForEach(() => draw(false))
    )
    const last = yield* draw(true)
    drawer.done()
    return last
  })
