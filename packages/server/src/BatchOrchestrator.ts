/**
 * The orchestrator: submit batches of items to typed workflows, follow them, command them.
 *
 * @since 0.1.0
 */
import { BatchCommand, BatchConfig, BatchEvent, BatchState, Errors, ItemCounts, Views } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import { toView } from "@effect-batch/tables/BatchRecord"
import { BatchRepo } from "@effect-batch/tables/BatchRepo"
import { EventLog } from "@effect-batch/tables/EventLog"
import { ItemReader } from "@effect-batch/tables/ItemReader"
import { ItemRepo } from "@effect-batch/tables/ItemRepo"
import { StepRepo } from "@effect-batch/tables/StepRepo"
import { TrendRepo } from "@effect-batch/tables/TrendRepo"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { BatchEvents } from "./BatchEvents.js"
import { BatchStateMachine } from "./internal/BatchStateMachine.js"
import type * as Fanout from "./internal/Fanout.js"
import { progressOf, windowMs } from "./internal/Progress.js"
import * as Redrives from "./internal/Redrives.js"
import * as Storage from "./internal/Storage.js"
import * as Submission from "./internal/Submission.js"
import { encodeItems, idempotencyKeyOf, runnableOf as runnableFrom, toStream } from "./internal/Submission.js"
import * as Trends from "./internal/Trends.js"
import { validatedItems } from "./internal/ValidateItems.js"
import { Worker } from "./Worker.js"
import type * as Workflow from "./Workflow.js"
import { WorkflowRegistry } from "./WorkflowRegistry.js"

/**
 * Size limits enforced on submission.
 *
 * @since 0.1.0
 */
export interface Limits {
  readonly maxItemsPerBatch: number
  readonly maxBytesPerItem: number
}

/**
 * The orchestrator's limits. Defaults: 1,000,000 items per batch, 256 KiB per item input.
 *
 * @since 0.1.0
 */
export class OrchestratorLimits extends Context.Reference<OrchestratorLimits>()("@effect-batch/OrchestratorLimits", {
  defaultValue: (): Limits => ({ maxItemsPerBatch: 1_000_000, maxBytesPerItem: 256 * 1024 })
}) {}

/**
 * Who submits or commands, and for which tenant.
 *
 * @since 0.1.0
 */
export interface Caller {
  readonly tenant: Ids.TenantId
  readonly actor?: string | undefined
}

/**
 * Options of a submission.
 *
 * @since 0.1.0
 */
export interface SubmitOptions extends Caller {
  /** submitting twice with the same key returns the same batch */
  readonly idempotencyKey?: string | undefined
}

/**
 * An item as submitted: its key and its encoded input (decoded by the workflow's input schema).
 *
 * @since 0.1.0
 */
export type EncodedItem = Submission.EncodedItem

/** @since 0.1.0 */
export type SubmitError =
  | Errors.InvalidItems
  | Errors.EmptyBatch
  | Errors.InvalidBatchConfig
  | Errors.WorkflowNotFound
  | Errors.LimitExceeded
  | Errors.StorageUnavailable

/** @since 0.1.0 */
export type CommandError =
  | Errors.BatchNotFound
  | Errors.InvalidTransition
  | Errors.VersionConflict
  | Errors.StorageUnavailable

/**
 * The orchestrator.
 *
 * @since 0.1.0
 */
export class BatchOrchestrator extends Context.Tag("@effect-batch/BatchOrchestrator")<BatchOrchestrator, {
  /** Validates every item (an invalid item rejects the whole batch; nothing is stored), stores and starts it. */
  readonly submit: <I, IE, O, OE, E, EE, R>(
    workflow: Workflow.Workflow<I, IE, O, OE, E, EE, R>,
    items:
      | Iterable<{ readonly key: string; readonly input: I }>
      | Stream.Stream<{ readonly key: string; readonly input: I }>,
    config: BatchConfig.BatchConfig | undefined,
    options: SubmitOptions
  ) => Effect.Effect<Views.BatchView, SubmitError>
  /** Like `submit`, with a workflow name, encoded inputs and an encoded config (the RPC's path). */
  readonly submitEncoded: (
    workflow: Ids.WorkflowName,
    items: Iterable<EncodedItem> | Stream.Stream<EncodedItem>,
    config: unknown,
    options: SubmitOptions
  ) => Effect.Effect<Views.BatchView, SubmitError>
  /** The batch, as clients see it. */
  readonly get: (
    caller: Caller,
    batchId: Ids.BatchId
  ) => Effect.Effect<Views.BatchView, Errors.BatchNotFound | Errors.StorageUnavailable>
  /** Waits until the batch settles (or waits for review) and returns it. */
  readonly await: (
    caller: Caller,
    batchId: Ids.BatchId
  ) => Effect.Effect<Views.BatchView, Errors.BatchNotFound | Errors.StorageUnavailable>
  readonly pause: (caller: Caller, batchId: Ids.BatchId, note?: string) => Effect.Effect<Views.BatchView, CommandError>
  readonly resume: (caller: Caller, batchId: Ids.BatchId) => Effect.Effect<Views.BatchView, CommandError>
  /** Stops the batch for good: in-flight attempts are interrupted, unsettled items are `Skipped`. */
  readonly cancel: (caller: Caller, batchId: Ids.BatchId, note?: string) => Effect.Effect<Views.BatchView, CommandError>
  readonly approve: (
    caller: Caller,
    batchId: Ids.BatchId,
    note?: string
  ) => Effect.Effect<Views.BatchView, CommandError>
  readonly reject: (caller: Caller, batchId: Ids.BatchId, note?: string) => Effect.Effect<Views.BatchView, CommandError>
  /** Re-queues the failed items of a settled batch (or, with `dryRun`, says which it would). */
  readonly retryFailed: (
    caller: Caller,
    batchId: Ids.BatchId,
    options: { readonly dryRun: boolean }
  ) => Effect.Effect<Views.RedrivePlan, CommandError>
  /** Releases quarantined items (all, or the given keys) back into the queue. */
  readonly releaseQuarantined: (
    caller: Caller,
    batchId: Ids.BatchId,
    keys?: ReadonlyArray<Ids.ItemKey>
  ) => Effect.Effect<{ readonly released: number }, CommandError>
  /**
   * Runs items of a settled batch again from a named durable step: the stored outputs of that step
   * and of the steps each item completed after it are discarded (a `StepsDiscarded` event per item),
   * and the items are queued again, whatever their outcome. Items that never stored the step run
   * again from their first incomplete step.
   */
  readonly rerunFromStep: (
    caller: Caller,
    batchId: Ids.BatchId,
    options: { readonly keys: ReadonlyArray<Ids.ItemKey>; readonly step: string }
  ) => Effect.Effect<{ readonly requeued: number; readonly discarded: number }, CommandError>
  /** Changes concurrency, rate limits, error budget or breaker of a batch, also while it runs. */
  readonly updateConfig: (
    caller: Caller,
    batchId: Ids.BatchId,
    patch: BatchConfig.ConfigPatch
  ) => Effect.Effect<Views.BatchView, CommandError>
  /** The batch's events after `after`: the replay, then live, with no gap and no duplicate. */
  readonly events: (
    caller: Caller,
    batchId: Ids.BatchId,
    after: number
  ) => Stream.Stream<BatchEvent.BatchEvent, Errors.BatchNotFound | Errors.StorageUnavailable>
  /**
   * Like `events`, delivered to `sink` through the batch's one fan-out in this process (for many
   * subscribers: no stream per subscriber), ending the sink after the batch's latest terminal event or
   * the event at `endAt`. Runs until then or until the scope closes.
   */
  readonly subscribe: (
    caller: Caller,
    batchId: Ids.BatchId,
    after: number,
    sink: Fanout.Sink<BatchEvent.BatchEvent>,
    endAt?: number
  ) => Effect.Effect<void, Errors.BatchNotFound | Errors.StorageUnavailable, Scope.Scope>
  /** Every item's result in key order, streamed. */
  readonly results: (
    caller: Caller,
    batchId: Ids.BatchId
  ) => Stream.Stream<Views.ItemResult, Errors.BatchNotFound | Errors.StorageUnavailable>
  /** Counts, throughput, ETA, item durations and the latest errors. */
  readonly progress: (
    caller: Caller,
    batchId: Ids.BatchId
  ) => Effect.Effect<Views.Progress, Errors.BatchNotFound | Errors.StorageUnavailable>
  /** The slowdown trends: the latest sampled windows, the baseline and the status. */
  readonly trends: (
    caller: Caller,
    batchId: Ids.BatchId
  ) => Effect.Effect<Views.Trends, Errors.BatchNotFound | Errors.StorageUnavailable>
  /** A page of the tenant's batches, newest first. */
  readonly list: (caller: Caller, options: {
    readonly state?: BatchState.Tag | undefined
    readonly limit: number
    readonly cursor?: string | undefined
  }) => Effect.Effect<
    { readonly items: ReadonlyArray<Views.BatchView>; readonly nextCursor?: string },
    Errors.InvalidRequest | Errors.StorageUnavailable
  >
  /** A page of a batch's items in key order. */
  readonly listItems: (caller: Caller, batchId: Ids.BatchId, options: {
    readonly state?: import("@effect-batch/domain").ItemState.Tag | undefined
    readonly limit: number
    readonly cursor?: string | undefined
  }) => Effect.Effect<
    { readonly items: ReadonlyArray<Views.ItemView>; readonly nextCursor?: string },
    Errors.BatchNotFound | Errors.StorageUnavailable
  >
}>() {}

const newBatchId = Schema.decodeSync(Views.BatchView.fields.id)

const settledOrWaiting: ReadonlyArray<BatchState.Tag> = [
  "AwaitingReview",
  "Completed",
  "Failed",
  "Cancelled",
  "Rejected"
]

/**
 * Builds the orchestrator from its repositories, the state machine, the event fan-out and the worker.
 *
 * @since 0.1.0
 */
export const make = Effect.gen(function*() {
  const repo = yield* BatchRepo
  const items = yield* ItemRepo
  const reader = yield* ItemReader
  const machine = yield* BatchStateMachine
  const events = yield* BatchEvents
  const worker = yield* Worker
  const registry = yield* WorkflowRegistry
  const stepRepo = yield* StepRepo
  const eventLog = yield* EventLog
  const trendRepo = yield* TrendRepo
  const limits = yield* OrchestratorLimits

  const actorOf = (caller: Caller) => caller.actor ?? caller.tenant

  const submitWith = (
    runnable: Workflow.Runnable,
    input: Iterable<EncodedItem> | Stream.Stream<EncodedItem>,
    config: BatchConfig.BatchConfig,
    options: SubmitOptions
  ) =>
    Effect.gen(function*() {
      const idempotencyKey = yield* idempotencyKeyOf(options.idempotencyKey)
      const checked = yield* validatedItems(runnable, toStream(input), limits)
      const now = yield* Clock.currentTimeMillis
      const at = DateTime.unsafeMake(now)
      const { created, record } = yield* repo.create({
        id: newBatchId(crypto.randomUUID()),
        tenant: options.tenant,
        workflow: runnable.name,
        idempotencyKey,
        config,
        state: new BatchState.Running({ since: at, round: 1 }),
        items: checked,
        events: (total) => [
          { _tag: "BatchCreated", workflow: runnable.name, total, config },
          { _tag: "BatchStarted", round: 1 }
        ],
        now
      })
      if (created) {
        yield* events.committed(record.id, record.seq)
        yield* worker.kick(record.id)
      }
      return toView(record)
    }).pipe(Effect.withSpan("BatchOrchestrator.submit", { attributes: { workflow: runnable.name } }))

  const runnableOf = (name: Ids.WorkflowName) => runnableFrom(registry, name)

  const decodeConfig = (config: unknown) =>
    BatchConfig.decode(config ?? {}).pipe(
      Effect.mapError((e) => new Errors.InvalidBatchConfig({ message: ParseResult.TreeFormatter.formatErrorSync(e) }))
    )

  const command = (
    caller: Caller,
    batchId: Ids.BatchId,
    build: (record: BatchRecord, at: DateTime.Utc) => BatchCommand.BatchCommand,
    during?: (record: BatchRecord, now: number) => Effect.Effect<void, SqlError>
  ) =>
    worker.hold(batchId).pipe(
      Effect.zipRight(machine.execute({
        tenant: caller.tenant,
        batchId,
        command: (record, at) => Effect.succeed(build(record, at)),
        during: during === undefined ? undefined : (record, _, now) => during(record, now)
      })),
      // the runner here reads the batch again, whether the command committed or not
      Effect.ensuring(worker.kick(batchId)),
      Effect.map(toView)
    )

  /** The batch's durable steps: completed in all and per name (in the declared order), and declared. */
  const stepsOf = (batchId: Ids.BatchId, names: ReadonlyArray<string>, record: BatchRecord) =>
    Effect.map(stepRepo.countsForBatch(batchId), (counts) => {
      const rank = (step: string) => {
        const i = names.indexOf(step)
        return i < 0 ? names.length : i
      }
      const byStep = [...counts].sort((a, b) => rank(a.step) - rank(b.step))
      return {
        completed: byStep.reduce((n, c) => n + c.completed, 0),
        declared: names.length * ItemCounts.total(record.counts),
        byStep
      }
    })

  const get = (caller: Caller, batchId: Ids.BatchId) => Effect.map(repo.getOrFail(caller.tenant, batchId), toView)

  const eventsOf = (caller: Caller, batchId: Ids.BatchId, after: number) =>
    Stream.unwrap(Effect.as(repo.getOrFail(caller.tenant, batchId), events.events(batchId, after)))

  const decideCommand = Storage.decide("a command")

  const redrives = Redrives.make({ repo, items, stepRepo, eventLog, worker, command, actorOf })

  return BatchOrchestrator.of({
    submit: (workflow, input, config, options) =>
      Effect.gen(function*() {
        const runnable = yield* runnableOf(workflow.name)
        const encoded = encodeItems(workflow, input)
        return yield* submitWith(runnable, encoded, config ?? BatchConfig.BatchConfig.make({}), options)
      }).pipe(Storage.decide("submit")),
    submitEncoded: (workflow, input, config, options) =>
      Effect.gen(function*() {
        const runnable = yield* runnableOf(workflow)
        const decoded = yield* decodeConfig(config)
        return yield* submitWith(runnable, input, decoded, options)
      }).pipe(Storage.decide("submit")),
    get: (caller, batchId) => Storage.decide("get")(get(caller, batchId)),
    await: (caller, batchId) =>
      Effect.gen(function*() {
        // Hints say when to look again (subscribed before the first read, so none is missed); reading
        // the batch row is cheaper than following every event of a large batch.
        const next = yield* events.changes(batchId)
        let record = yield* repo.getOrFail(caller.tenant, batchId)
        while (!settledOrWaiting.includes(record.state._tag)) {
          yield* next
          record = yield* repo.getOrFail(caller.tenant, batchId)
        }
        return toView(record)
      }).pipe(Effect.scoped, Storage.decide("await")),
    pause: (caller, batchId, note = "") =>
      decideCommand(command(caller, batchId, (_, at) =>
        new BatchCommand.Pause({
          at,
          reason: new BatchState.PausedByUser({ actor: actorOf(caller), note })
        }))),
    resume: (caller, batchId) =>
      decideCommand(command(caller, batchId, (_, at) => new BatchCommand.Resume({ at, actor: actorOf(caller) }))),
    cancel: (caller, batchId, note = "") =>
      decideCommand(command(
        caller,
        batchId,
        (_, at) => new BatchCommand.Cancel({ at, actor: actorOf(caller), note }),
        (record, now) => Effect.asVoid(items.skipRemaining({ batchId: record.id, reason: "cancelled", now }))
      )),
    approve: (caller, batchId, note = "") =>
      decideCommand(
        command(caller, batchId, (_, at) => new BatchCommand.Approve({ at, actor: actorOf(caller), note }))
      ),
    reject: (caller, batchId, note = "") =>
      decideCommand(command(caller, batchId, (_, at) => new BatchCommand.Reject({ at, actor: actorOf(caller), note }))),
    retryFailed: (caller, batchId, options) => decideCommand(redrives.retryFailed(caller, batchId, options)),
    releaseQuarantined: (caller, batchId, keys) => decideCommand(redrives.releaseQuarantined(caller, batchId, keys)),
    rerunFromStep: (caller, batchId, options) => decideCommand(redrives.rerunFromStep(caller, batchId, options)),
    updateConfig: (caller, batchId, patch) =>
      decideCommand(command(caller, batchId, (_, at) => new BatchCommand.UpdateConfig({ at, patch }))),
    events: (caller, batchId, after) => Storage.decideStream("events")(eventsOf(caller, batchId, after)),
    subscribe: (caller, batchId, after, sink, endAt) =>
      Effect.zipRight(
        Storage.decide("events")(repo.getOrFail(caller.tenant, batchId)),
        events.subscribe(batchId, after, sink, endAt)
      ),
    results: (caller, batchId) =>
      Stream.unwrap(Effect.as(repo.getOrFail(caller.tenant, batchId), reader.results(batchId))).pipe(
        Storage.decideStream("results")
      ),
    progress: (caller, batchId) =>
      Effect.gen(function*() {
        const record = yield* repo.getOrFail(caller.tenant, batchId)
        const now = yield* Clock.currentTimeMillis
        const stats = yield* reader.stats(batchId, { now, windowMs })
        const names = Option.flatMap(registry.get(record.workflow), (w) => Option.fromNullable(w.steps))
        const steps = Option.isSome(names) ? yield* stepsOf(batchId, names.value, record) : undefined
        return progressOf(record, { ...stats, steps }, now)
      }).pipe(Storage.decide("progress")),
    trends: (caller, batchId) =>
      Effect.gen(function*() {
        const record = yield* repo.getOrFail(caller.tenant, batchId)
        const stored = yield* trendRepo.get(caller.tenant, batchId, Trends.windowsShown)
        if (Option.isNone(stored)) return yield* new Errors.BatchNotFound({ batchId })
        return Trends.toTrends(record, stored.value)
      }).pipe(Storage.decide("trends")),
    list: (caller, options) =>
      Effect.map(repo.list(caller.tenant, options), (page) => ({
        items: page.items.map(toView),
        ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor })
      })).pipe(Storage.decide("list")),
    listItems: (caller, batchId, options) =>
      Effect.zipRight(repo.getOrFail(caller.tenant, batchId), reader.list(batchId, options)).pipe(
        Storage.decide("listItems")
      )
  })
})

/**
 * The orchestrator layer. Needs the repositories (`BatchRepo`, `ItemRepo`, `ItemReader`, `EventLog`, `StepRepo`),
 * the state machine, the event fan-out, the worker and a workflow registry.
 *
 * @since 0.1.0
 */
export const layer = Layer.effect(BatchOrchestrator, make)
