/**
 * Slowdown sampling of one batch in this process: a few times per window it asks the database to
 * sample the window that ended (`TrendRepo.sample`); whichever process running the batch is first
 * after the window's end samples it, the others find nothing to do. A status change it appended is
 * announced, and a detected slowdown pauses the batch under `pauseOnSlowdown`. Time is read from
 * Effect's `Clock`.
 */
import { BatchConfig, BatchState } from "@effect-batch/domain"
import type { TrendRepo } from "@effect-batch/tables/TrendRepo"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Run } from "./Run.js"

/** How often a batch without slowdown detection looks at its config again (a redrive may change it). */
const idleEveryMs = 5_000

/** Samples per window: a window ends at most a quarter of its length late. */
const samplesPerWindow = 4

export const make = (options: {
  readonly run: Run
  readonly trends: TrendRepo
  /** announces events committed up to `seq` */
  readonly committed: (seq: number) => void
  /** pauses the batch through the state machine */
  readonly pause: (reason: BatchState.PauseReason) => Effect.Effect<void>
}) =>
  Effect.gen(function*() {
    const { run, trends } = options
    while (true) {
      const config = BatchConfig.slowdownOf(run.record.config)
      // whole milliseconds: on a test clock this sleep moves the time, which is stored as bigint
      const everyMs = config === undefined
        ? idleEveryMs
        : Math.max(250, Math.round(Duration.toMillis(config.window) / samplesPerWindow))
      yield* Effect.sleep(Duration.millis(everyMs))
      if (config === undefined || run.record.state._tag !== "Running") continue
      const now = yield* Clock.currentTimeMillis
      const sampled = yield* trends.sample({ batchId: run.batchId, config, now }).pipe(
        Effect.catchAll((e) => Effect.as(Effect.logWarning("sampling the slowdown window failed", e), Option.none()))
      )
      if (Option.isNone(sampled) || Option.isNone(sampled.value.change)) continue
      const { change, seq } = sampled.value.change.value
      options.committed(seq)
      yield* Effect.logInfo(`${change._tag}`, change.figures)
      if (change._tag === "SlowdownDetected" && run.record.config.pauseOnSlowdown) {
        yield* options.pause(new BatchState.SlowedDown(change.figures))
      }
    }
  }).pipe(Effect.annotateLogs({ fiber: "trends" }))
