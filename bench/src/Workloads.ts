/**
 * Orchestrator workloads: batches submitted through `BatchOrchestrator.submitEncoded` and awaited, every
 * outcome durably recorded, and the ceilings they are compared with.
 */
import type { Ids } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import { BatchOrchestrator, EffectBatch, Worker, Workflow, WorkflowRegistry } from "@effect-batch/server"
import type { TestDatabase } from "@effect-batch/tables"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { performance } from "node:perf_hooks"
import { freshDatabase, itemKey, newBatchId, processCpuMs, report, since, type Sizing, tenant } from "./Harness.js"
import { defineUnbound, unbound } from "./Limiter.js"

class NeverFails extends Schema.TaggedError<NeverFails>()("NeverFails", {}) {}

const Input = Schema.Struct({ n: Schema.Number })

/** Does nothing: measures the orchestrator itself. */
export const noop = Workflow.make({
  name: "noop",
  input: Input,
  output: Schema.Null,
  error: NeverFails,
  run: () => Effect.succeed(null)
})

/** Sleeps 10 ms: measures how well slow work keeps the concurrency busy. */
export const sleepy = Workflow.make({
  name: "sleepy",
  input: Input,
  output: Schema.Null,
  error: NeverFails,
  run: () => Effect.as(Effect.sleep("10 millis"), null)
})

/** W1's no-op work as three durable no-op steps: measures what a step costs. */
export const stepped = Workflow.make({
  name: "stepped",
  input: Input,
  output: Schema.Null,
  error: NeverFails,
  steps: ["one", "two", "three"],
  run: (_, ctx) =>
    ctx.step("one", Effect.succeed(1), { output: Schema.Number }).pipe(
      Effect.zipRight(ctx.step("two", Effect.succeed(2), { output: Schema.Number })),
      Effect.zipRight(ctx.step("three", Effect.succeed(null), { output: Schema.Null }))
    )
})

/** W1's no-op work through a rate limiter named `fast` (the batch's own, or the tenant's shared one). */
export const limitedNoop = Workflow.make({
  name: "limited-noop",
  input: Input,
  output: Schema.Null,
  error: NeverFails,
  run: (_, ctx) => ctx.limit("fast")(Effect.succeed(null))
})

const decodeKey = Schema.decodeSync(ItemKey)

export const items = (count: number) => Array.from({ length: count }, (_, i) => ({ key: itemKey(i), input: { n: i } }))

/** The orchestrator with its worker over a database layer. */
export const orchestrator = (database: TestDatabase.TestDatabase, worker: Partial<Worker.WorkerOptions> = {}) =>
  EffectBatch.layer.pipe(
    Layer.provide(WorkflowRegistry.layer(noop, sleepy, stepped, limitedNoop)),
    Layer.provide(Worker.layerConfig(worker)),
    Layer.provide(database)
  )

/** Submits `count` items to `workflow` and awaits the batch: the total and the run phase (after the insert). */
export const submitAndAwait = (
  workflow: Ids.WorkflowName,
  count: number,
  concurrency: number,
  config: Record<string, unknown> = {}
) =>
  Effect.gen(function*() {
    const o = yield* BatchOrchestrator.BatchOrchestrator
    const input = items(count)
    const cpu0 = processCpuMs()
    const start = performance.now()
    const batch = yield* o.submitEncoded(workflow, input, { ...config, concurrency }, { tenant })
    const submitted = performance.now()
    const elu0 = performance.eventLoopUtilization()
    const done = yield* o.await({ tenant }, batch.id)
    const end = performance.now()
    const elu = performance.eventLoopUtilization(elu0).utilization
    if (done.state._tag !== "Completed" || done.counts.succeeded !== count) {
      return yield* Effect.dieMessage(`batch ended ${done.state._tag} with ${done.counts.succeeded}/${count}`)
    }
    return {
      batchId: batch.id,
      totalMs: end - start,
      runMs: end - submitted,
      submitMs: submitted - start,
      nodeCpuUsPerItem: (processCpuMs() - cpu0) * 1000 / count,
      eventLoopUtilization: elu
    }
  })

/**
 * W1 (no-op items) or W2 (10 ms items) in this process, `repeat` times on one orchestrator (a warm
 * long-lived worker reports its later runs). On Postgres, also the server's CPU per item.
 */
export const workload = (
  options: Sizing & {
    readonly name: "w1" | "w1-steps" | "w1-private-limiter" | "w1-shared-limiter" | "w2"
    readonly repeat: number
  }
) =>
  Effect.gen(function*() {
    const { layer, serverCpu, url } = yield* freshDatabase(options.db)
    const context = yield* Layer.build(orchestrator(layer))
    const workflow = {
      "w1": noop.name,
      "w1-steps": stepped.name,
      "w1-private-limiter": limitedNoop.name,
      "w1-shared-limiter": limitedNoop.name,
      "w2": sleepy.name
    }[options.name]
    const config = options.name === "w1-private-limiter" ? { rateLimits: { fast: unbound } } : {}
    if (options.name === "w1-shared-limiter") yield* Effect.provide(defineUnbound, context)
    for (let run = 1; run <= options.repeat; run++) {
      const server0 = yield* serverCpu
      const result = yield* Effect.provide(
        submitAndAwait(workflow, options.items, options.concurrency, config),
        context
      )
      const serverUs = ((yield* serverCpu) - server0) * 1000 / options.items
      const ideal = options.name === "w2" ? options.items * 10 / options.concurrency : 0
      yield* report({
        bench: options.name,
        db: options.db,
        variant: options.repeat > 1 ? `run ${run} of ${options.repeat}` : "fresh process",
        items: options.items,
        ms: result.totalMs,
        extra: {
          run,
          itemsPerSecond: Math.round(options.items / result.totalMs * 1000),
          runPhaseItemsPerSecond: Math.round(options.items / result.runMs * 1000),
          submitMs: Math.round(result.submitMs),
          runMs: Math.round(result.runMs),
          nodeCpuUsPerItem: Math.round(result.nodeCpuUsPerItem),
          eventLoopUtilization: Math.round(result.eventLoopUtilization * 100) / 100,
          mainThreadUsPerItem: Math.round(result.eventLoopUtilization * result.runMs * 1000 / options.items),
          ...(url === undefined ? {} : { serverCpuUsPerItem: Math.round(serverUs) }),
          ...(ideal > 0 ? { efficiency: ideal / result.runMs, efficiencyTotal: ideal / result.totalMs } : {})
        }
      })
    }
  }).pipe(Effect.scoped)

/** The same no-op work in memory with `Effect.forEach` at the concurrency: no persistence at all. */
export const inMemory = (options: { readonly items: number; readonly concurrency: number }) =>
  Effect.gen(function*() {
    const runnable = yield* Workflow.toRunnable(noop)
    const batchId = newBatchId()
    const input = items(options.items)
    const start = performance.now()
    yield* Effect.forEach(
      input,
      (item, i) =>
        runnable.run(item.input, {
          batchId,
          itemKey: decodeKey(item.key),
          attempt: 1,
          round: i,
          limit: () => (effect) => effect,
          step: (_name, effect) => effect
        }).pipe(Effect.either),
      { concurrency: options.concurrency, discard: true }
    )
    const ms = since(start)
    yield* report({
      bench: "ceiling",
      variant: "in-memory Effect.forEach",
      items: options.items,
      ms,
      extra: { itemsPerSecond: Math.round(options.items / ms * 1000) }
    })
  })
