import { Ids } from "@effect-batch/domain"
import type { BatchOrchestrator } from "@effect-batch/server"
import { EffectBatch, Worker, WorkflowRegistry } from "@effect-batch/server"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"

export const tenant = Schema.decodeSync(Ids.TenantId)("acme")
export const caller = { tenant, actor: "tester" }

/**
 * The orchestrator over an already provided database, with the given workflows, built inside the
 * current test so that it runs on the test's clock.
 */
export const orchestrator = (
  ...workflows: ReadonlyArray<WorkflowRegistry.AnyWorkflow>
) =>
  EffectBatch.layer.pipe(
    Layer.provide(WorkflowRegistry.layer(...workflows)),
    Layer.provide(Worker.layerConfig({ pollInterval: Duration.millis(100) }))
  )

/** Lets real I/O (the database) make progress while the test clock stands still. */
export const realPause = (millis = 2) =>
  Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))

/**
 * Advances the test clock in steps until `done` holds, letting database I/O complete between steps.
 */
export const advanceUntil = <E, R>(
  done: Effect.Effect<boolean, E, R>,
  options: { readonly step?: number; readonly maxSteps?: number } = {}
) =>
  Effect.gen(function*() {
    const step = options.step ?? 100
    const maxSteps = options.maxSteps ?? 2_000
    for (let i = 0; i < maxSteps; i++) {
      if (yield* done) return
      yield* realPause()
      yield* TestClock.adjust(step)
    }
    return yield* Effect.dieMessage(`condition not reached after ${maxSteps} steps of ${step} ms`)
  })

/** Every event of a batch stored so far, in order. */
export const allEvents = (o: BatchOrchestrator.BatchOrchestrator["Type"], id: Ids.BatchId) =>
  Effect.gen(function*() {
    const batch = yield* o.get(caller, id)
    return yield* o.events(caller, id, 0).pipe(
      Stream.take(batch.lastSeq),
      Stream.runCollect,
      Effect.map(Chunk.toReadonlyArray)
    )
  })
