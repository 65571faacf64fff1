/**
 * A writer that commands one batch over and over (pause, resume, a new concurrency), for the tests of
 * concurrent writers: it counts how each command ended, by the error's tag.
 */
import { BatchConfig } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import { BatchOrchestrator } from "@effect-batch/server"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import { caller } from "./Harness.js"

/** How the commands of one writer ended: applied, refused with one of the two expected errors, or otherwise. */
export const CommandTally = Schema.Struct({
  applied: Schema.Number,
  versionConflict: Schema.Number,
  invalidTransition: Schema.Number,
  /** the tags of any other error */
  other: Schema.Array(Schema.String)
})
export type CommandTally = typeof CommandTally.Type

/** Runs `count` random commands on a batch, with a random pause of up to `gapMs` after each. */
export const commandStorm = (batchId: Ids.BatchId, options: { readonly count: number; readonly gapMs: number }) =>
  Effect.gen(function*() {
    const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
    const tally = { applied: 0, versionConflict: 0, invalidTransition: 0, other: new Array<string>() }
    for (let n = 0; n < options.count; n++) {
      const pick = yield* Random.nextIntBetween(0, 3)
      const command = pick === 0
        ? orchestrator.pause(caller, batchId)
        : pick === 1
        ? orchestrator.resume(caller, batchId)
        : orchestrator.updateConfig(
          caller,
          batchId,
          BatchConfig.ConfigPatch.make({ concurrency: yield* Random.nextIntBetween(1, 7) })
        )
      const result = yield* Effect.either(command)
      if (result._tag === "Right") tally.applied++
      else if (result.left._tag === "VersionConflict") tally.versionConflict++
      else if (result.left._tag === "InvalidTransition") tally.invalidTransition++
      else tally.other.push(result.left._tag)
      yield* Effect.sleep(yield* Random.nextIntBetween(0, options.gapMs + 1))
    }
    return tally satisfies CommandTally
  })
