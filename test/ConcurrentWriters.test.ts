import type { Ids } from "@effect-batch/domain"
import { BatchOrchestrator, EffectBatch, Worker, WorkflowRegistry } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { commandStorm, type CommandTally } from "./support/Commands.js"
import { CommandsDone, durableWork, workItems } from "./support/Durable.js"
import { caller } from "./support/Harness.js"
import { apiAt, assertCompletedOnce, freshDatabase, spawnWorker } from "./support/Processes.js"

/**
 * Several writers at once on one batch: each runs the batch's items (its own lease owner and share)
 * and commands it (pause, resume, a new concurrency) as fast as it can. Every command either applies
 * or is refused with `VersionConflict` (another writer was first, every time it tried) or
 * `InvalidTransition` (the batch was not in a state that takes it); the batch completes with its
 * counters equal to its item rows and its events numbered 1, 2, … without a gap or a repeat.
 */

/** How many items a batch has: the embedded database is one session, which every writer here shares. */
const itemsOn = { embedded: 200, postgres: 600 } as const
const writers = 3
const commandsPerWriter = 30
const gapMs = 20
const work = durableWork({ itemMs: 5 })

/** An orchestrator of its own (worker loop, runners, lease owner) over the database in context. */
const writer = (owner: string) =>
  EffectBatch.layer.pipe(
    Layer.provide(Layer.mergeAll(
      WorkflowRegistry.layer(work),
      Worker.layerConfig({ owner, pollInterval: Duration.millis(50) })
    ))
  )

/** Only the two refusals a concurrent writer may get; at least one command applied. */
const assertTallies = (tallies: ReadonlyArray<CommandTally>) => {
  for (const tally of tallies) {
    assert.deepStrictEqual(tally.other, [], "no command failed with anything but VersionConflict or InvalidTransition")
    assert.strictEqual(tally.applied + tally.versionConflict + tally.invalidTransition, commandsPerWriter)
  }
  assert.isAbove(tallies.reduce((n, t) => n + t.applied, 0), 0, "commands applied")
}

/**
 * Resumes the batch if the last command left it paused (another writer may still be first: then it
 * tries again), and waits until it completes.
 */
const finish = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
    yield* orchestrator.resume(caller, batchId).pipe(
      Effect.retry({ while: (e) => e._tag === "VersionConflict", schedule: Schedule.spaced("10 millis") }),
      Effect.catchTag("InvalidTransition", () => Effect.void)
    )
    const done = yield* orchestrator.await(caller, batchId).pipe(Effect.timeout("60 seconds"))
    assert.strictEqual(done.state._tag, "Completed")
  })

for (const [name, db] of TestDatabase.databases) {
  layer(db, { excludeTestServices: true, timeout: "120 seconds" })(
    `concurrent writers in one process (${name})`,
    (it) => {
      it.effect(
        "independent orchestrators command and run one batch at once: only VersionConflict or InvalidTransition refusals, counters equal the rows, events gapless",
        () =>
          Effect.gen(function*() {
            const contexts = yield* Effect.all(Array.from({ length: writers }, (_, n) => Layer.build(writer(`w${n}`))))
            const first = contexts[0]!
            const batch = yield* Effect.flatMap(
              BatchOrchestrator.BatchOrchestrator,
              (o) => o.submitEncoded(work.name, workItems(itemsOn[name]), { concurrency: 4 }, caller)
            ).pipe(Effect.provide(first))
            const tallies = yield* Effect.all(
              contexts.map((context) =>
                commandStorm(batch.id, { count: commandsPerWriter, gapMs }).pipe(Effect.provide(context))
              ),
              { concurrency: "unbounded" }
            )
            assertTallies(tallies)
            yield* finish(batch.id).pipe(Effect.provide(first))
            yield* assertCompletedOnce(batch.id, itemsOn[name]).pipe(Effect.provide(first))
          }).pipe(Effect.scoped),
        120_000
      )
    }
  )
}

describe("concurrent writers in several processes (Postgres)", () => {
  it.live(
    "worker processes command and run one batch at once: only VersionConflict or InvalidTransition refusals, counters equal the rows, events gapless",
    () =>
      Effect.gen(function*() {
        const url = yield* freshDatabase
        const api = yield* Layer.build(apiAt(url))
        const batch = yield* Effect.flatMap(
          BatchOrchestrator.BatchOrchestrator,
          (o) => o.submitEncoded(work.name, workItems(itemsOn.postgres), { concurrency: 4 }, caller)
        ).pipe(Effect.provide(api))
        const processes = yield* Effect.all(Array.from({ length: writers }, (_, n) =>
          spawnWorker({
            url,
            owner: `p${n}`,
            env: {
              ITEM_MS: "5",
              POLL_MS: "50",
              COMMAND_BATCH: batch.id,
              COMMANDS: String(commandsPerWriter),
              COMMAND_GAP_MS: String(gapMs)
            }
          })))
        const tallies = yield* Effect.all(
          processes.map((p) => p.waitFor((m): m is typeof CommandsDone.Type => m._tag === "CommandsDone")),
          { concurrency: "unbounded" }
        )
        assertTallies(tallies)
        yield* finish(batch.id).pipe(Effect.provide(api))
        yield* assertCompletedOnce(batch.id, itemsOn.postgres).pipe(Effect.provide(api))
      }).pipe(Effect.scoped),
    120_000
  )
})
