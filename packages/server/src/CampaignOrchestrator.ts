/**
 * Campaigns — batches of batches: submit a large item list split into child batches run with the
 * campaign's own concurrency, follow it at both levels, command it, read its merged results.
 *
 * @since 0.4.0
 */
import {
  BatchState,
  CampaignConfig,
  CampaignErrors,
  CampaignId,
  CampaignState,
  CampaignViews,
  Errors,
  ItemCounts
} from "@effect-batch/domain"
import type { CampaignEvent, Ids, ItemState } from "@effect-batch/domain"
import { toView as batchView } from "@effect-batch/tables/BatchRecord"
import { type CampaignRecord, toView } from "@effect-batch/tables/CampaignRecord"
import { CampaignRepo } from "@effect-batch/tables/CampaignRepo"
import { ItemReader } from "@effect-batch/tables/ItemReader"
import { ItemRepo } from "@effect-batch/tables/ItemRepo"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { BatchOrchestrator, type Caller, type EncodedItem, OrchestratorLimits } from "./BatchOrchestrator.js"
import { CampaignEvents } from "./CampaignEvents.js"
import * as Commands from "./CampaignOrchestrator/Commands.js"
import * as Machine from "./CampaignOrchestrator/Machine.js"
import { CampaignRunner } from "./CampaignRunner.js"
import { results } from "./CampaignRunner/Results.js"
import * as Storage from "./internal/Storage.js"
import { encodeItems, idempotencyKeyOf, runnableOf, toStream } from "./internal/Submission.js"
import { validatedItems } from "./internal/ValidateItems.js"
import type * as Workflow from "./Workflow.js"
import { WorkflowRegistry } from "./WorkflowRegistry.js"

/** @since 0.4.0 */
export type SubmitError =
  | Errors.InvalidItems
  | Errors.EmptyBatch
  | CampaignErrors.InvalidCampaignConfig
  | Errors.WorkflowNotFound
  | Errors.LimitExceeded
  | Errors.StorageUnavailable

/** @since 0.4.0 */
export type CommandError = Machine.DecidedError

/** @since 0.4.0 */
export type LookupError = CampaignErrors.CampaignNotFound | Errors.StorageUnavailable

/**
 * Options of a campaign submission: its caller and an idempotency key (submitting twice with the
 * same key returns the same campaign).
 *
 * @since 0.4.0
 */
export interface SubmitOptions extends Caller {
  readonly idempotencyKey?: string | undefined
}

/**
 * The campaign orchestrator.
 *
 * @since 0.4.0
 */
export class CampaignOrchestrator extends Context.Tag("@effect-batch/CampaignOrchestrator")<CampaignOrchestrator, {
  /**
   * Validates every item with the workflow's input schema (one invalid item rejects the campaign,
   * naming each; nothing is stored), stores them in bulk split into batches of `batchSize` in input
   * order, and starts the campaign.
   */
  readonly submitCampaign: <I, IE, O, OE, E, EE, R>(
    workflow: Workflow.Workflow<I, IE, O, OE, E, EE, R>,
    items:
      | Iterable<{ readonly key: string; readonly input: I }>
      | Stream.Stream<{ readonly key: string; readonly input: I }>,
    config: CampaignConfig.CampaignConfig | undefined,
    options: SubmitOptions
  ) => Effect.Effect<CampaignViews.CampaignView, SubmitError>
  /** Like `submitCampaign`, with a workflow name, encoded inputs and an encoded config (the RPC's path). */
  readonly submitEncoded: (
    workflow: Ids.WorkflowName,
    items: Iterable<EncodedItem> | Stream.Stream<EncodedItem>,
    config: unknown,
    options: SubmitOptions
  ) => Effect.Effect<CampaignViews.CampaignView, SubmitError>
  readonly get: (caller: Caller, id: CampaignId.CampaignId) => Effect.Effect<CampaignViews.CampaignView, LookupError>
  /** Waits until the campaign waits for review or is terminal, and returns it. */
  readonly await: (caller: Caller, id: CampaignId.CampaignId) => Effect.Effect<CampaignViews.CampaignView, LookupError>
  /** A page of the tenant's campaigns, newest first. */
  readonly list: (caller: Caller, options: {
    readonly state?: CampaignState.Tag | undefined
    readonly limit: number
    readonly cursor?: string | undefined
  }) => Effect.Effect<
    { readonly items: ReadonlyArray<CampaignViews.CampaignView>; readonly nextCursor?: string },
    Errors.InvalidRequest | Errors.StorageUnavailable
  >
  /** A page of the campaign's batches in index order, after index `after`. */
  readonly batches: (caller: Caller, id: CampaignId.CampaignId, options: {
    readonly after: number
    readonly limit: number
  }) => Effect.Effect<
    { readonly items: ReadonlyArray<CampaignViews.CampaignBatch>; readonly nextCursor?: string },
    LookupError
  >
  /** The done set: the campaign's settled batches, by id and index, derived from their rows. */
  readonly doneBatches: (
    caller: Caller,
    id: CampaignId.CampaignId
  ) => Effect.Effect<ReadonlyArray<{ readonly batchId: Ids.BatchId; readonly index: number }>, LookupError>
  /** Batches and items done, rate, ETA, quarantined items. */
  readonly progress: (
    caller: Caller,
    id: CampaignId.CampaignId
  ) => Effect.Effect<CampaignViews.CampaignProgress, LookupError>
  /** Every item's outcome ordered by (batch index, key), whatever the completion order. */
  readonly results: (
    caller: Caller,
    id: CampaignId.CampaignId,
    options?: { readonly state?: ItemState.Tag | undefined }
  ) => Stream.Stream<CampaignViews.CampaignResult, LookupError>
  /** Every input key has exactly one outcome: none missing, none duplicated. */
  readonly mergeCheck: (
    caller: Caller,
    id: CampaignId.CampaignId
  ) => Effect.Effect<CampaignState.MergeCheck, LookupError>
  /** The campaign's events after `after`: the replay, then live, ending after its terminal event. */
  readonly events: (
    caller: Caller,
    id: CampaignId.CampaignId,
    after: number
  ) => Stream.Stream<CampaignEvent.CampaignEvent, LookupError>
  /** No new batch starts; with `cascade`, the running batches are paused too. */
  readonly pause: (
    caller: Caller,
    id: CampaignId.CampaignId,
    options?: { readonly note?: string; readonly cascade?: boolean }
  ) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  /** Starts batches again, and resumes the batches a person paused. */
  readonly resume: (
    caller: Caller,
    id: CampaignId.CampaignId
  ) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  /** Stops the campaign and cancels every unsettled child batch. */
  readonly cancel: (
    caller: Caller,
    id: CampaignId.CampaignId,
    note?: string
  ) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  readonly approve: (
    caller: Caller,
    id: CampaignId.CampaignId,
    note?: string
  ) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  readonly reject: (
    caller: Caller,
    id: CampaignId.CampaignId,
    note?: string
  ) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  /**
   * Re-runs only the failed items of the failed or partially failed batches of a settled campaign
   * (or, with `dryRun`, says which it would); the batches start again as the concurrency allows.
   */
  readonly retryFailed: (
    caller: Caller,
    id: CampaignId.CampaignId,
    options: { readonly dryRun: boolean }
  ) => Effect.Effect<CampaignViews.CampaignRetryPlan, CommandError>
  /** Releases every quarantined item of the campaign back into its batch's queue. */
  readonly releaseQuarantined: (
    caller: Caller,
    id: CampaignId.CampaignId
  ) => Effect.Effect<{ readonly released: number }, CommandError>
  /** Changes the concurrency or the tolerance, also while the campaign runs. */
  readonly updateConfig: (
    caller: Caller,
    id: CampaignId.CampaignId,
    patch: CampaignConfig.CampaignPatch
  ) => Effect.Effect<CampaignViews.CampaignView, CommandError>
}>() {}

const newCampaignId = Schema.decodeSync(CampaignId.CampaignId)
const newBatchId = Schema.decodeSync(CampaignViews.CampaignBatch.fields.batch.fields.id)
const waiting: ReadonlyArray<CampaignState.Tag> = ["AwaitingReview", ...CampaignState.terminalTags]

/** The item rate is measured over this window. */
const rateWindowMs = 60_000

/**
 * Builds the campaign orchestrator.
 *
 * @since 0.4.0
 */
export const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const repo = yield* CampaignRepo
  const items = yield* ItemRepo
  const reader = yield* ItemReader
  const events = yield* CampaignEvents
  const runner = yield* CampaignRunner
  const batches = yield* BatchOrchestrator
  const registry = yield* WorkflowRegistry
  const limits = yield* OrchestratorLimits
  const actorOf = (caller: Caller) => caller.actor ?? caller.tenant
  const machine = Machine.make({ sql, repo, events, runner })
  const commands = Commands.make({ sql, repo, items, batches, events, runner, machine, actorOf })

  const viewOf = (record: CampaignRecord) => Effect.map(repo.children.rollup(record.id), (r) => toView(record, r))
  const found = (caller: Caller, id: CampaignId.CampaignId) => repo.getOrFail(caller.tenant, id)
  const get = (caller: Caller, id: CampaignId.CampaignId) => Effect.flatMap(found(caller, id), viewOf)

  const submitWith = (
    runnable: Workflow.Runnable,
    input: Iterable<EncodedItem> | Stream.Stream<EncodedItem>,
    config: CampaignConfig.CampaignConfig,
    options: SubmitOptions
  ) =>
    Effect.gen(function*() {
      const idempotencyKey = yield* idempotencyKeyOf(options.idempotencyKey)
      const checked = yield* validatedItems(runnable, toStream(input), limits)
      const now = yield* Clock.currentTimeMillis
      const at = DateTime.unsafeMake(now)
      const { created, record } = yield* repo.create({
        id: newCampaignId(crypto.randomUUID()),
        tenant: options.tenant,
        workflow: runnable.name,
        idempotencyKey,
        config,
        state: new CampaignState.Running({ since: at, round: 1 }),
        childState: new BatchState.Pending({ since: at }),
        newBatchId: () => newBatchId(crypto.randomUUID()),
        items: checked,
        childEvent: (total) => ({ _tag: "BatchCreated", workflow: runnable.name, total, config: config.batchConfig }),
        events: (total, count) => [
          { _tag: "CampaignCreated", workflow: runnable.name, total, batches: count, config },
          { _tag: "CampaignStarted", round: 1 }
        ],
        now
      })
      if (created) {
        yield* events.committed(record.id, record.seq)
        yield* runner.kick(record.id)
      }
      return yield* viewOf(record)
    }).pipe(Effect.withSpan("CampaignOrchestrator.submit", { attributes: { workflow: runnable.name } }))

  const progress = (caller: Caller, id: CampaignId.CampaignId) =>
    Effect.gen(function*() {
      const record = yield* found(caller, id)
      const rollup = yield* repo.children.rollup(id)
      const now = yield* Clock.currentTimeMillis
      const recent = yield* repo.children.finishedSince(id, now - rateWindowMs)
      const rate = recent / (rateWindowMs / 1_000)
      const left = ItemCounts.pending(rollup.counts)
      const quarantined = yield* repo.children.quarantined(id, 100)
      const view = toView(record, rollup)
      return CampaignViews.CampaignProgress.make({
        campaignId: id,
        state: record.state,
        total: record.total,
        batches: view.batches,
        counts: rollup.counts,
        itemsPerSecond: rate,
        ...(rate > 0 ? { etaSeconds: left / rate } : {}),
        quarantined: {
          count: rollup.counts.quarantined,
          items: quarantined.map((q) =>
            CampaignViews.QuarantinedItem.make({
              batchId: q.batch_id,
              batchIndex: q.campaign_index,
              key: q.key,
              reason: q.reason ?? ""
            })
          )
        }
      })
    })

  const decide = Storage.decide("a campaign request")
  const decideStream = Storage.decideStream("a campaign stream")

  return CampaignOrchestrator.of({
    submitCampaign: (workflow, input, config, options) =>
      Effect.gen(function*() {
        const runnable = yield* runnableOf(registry, workflow.name)
        const encoded = encodeItems(workflow, input)
        return yield* submitWith(runnable, encoded, config ?? CampaignConfig.CampaignConfig.make({}), options)
      }).pipe(decide),
    submitEncoded: (workflow, input, config, options) =>
      Effect.gen(function*() {
        const runnable = yield* runnableOf(registry, workflow)
        const decoded = yield* CampaignConfig.decode(config ?? {}).pipe(
          Effect.mapError((e) =>
            new CampaignErrors.InvalidCampaignConfig({ message: ParseResult.TreeFormatter.formatErrorSync(e) })
          )
        )
        return yield* submitWith(runnable, input, decoded, options)
      }).pipe(decide),
    get: (caller, id) => decide(get(caller, id)),
    await: (caller, id) =>
      Effect.gen(function*() {
        let view = yield* get(caller, id)
        while (!waiting.includes(view.state._tag)) {
          yield* Effect.sleep("100 millis")
          view = yield* get(caller, id)
        }
        return view
      }).pipe(decide),
    list: (caller, options) =>
      Effect.gen(function*() {
        const page = yield* repo.list(caller.tenant, options)
        const views = yield* Effect.forEach(page.items, viewOf)
        return { items: views, ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }) }
      }).pipe(decide),
    batches: (caller, id, options) =>
      Effect.gen(function*() {
        yield* found(caller, id)
        const page = yield* repo.children.page(id, options.after, options.limit + 1)
        const shown = page.slice(0, options.limit)
        const last = shown[shown.length - 1]
        return {
          items: shown.map((c) => CampaignViews.CampaignBatch.make({ index: c.index, batch: batchView(c.record) })),
          ...(page.length > options.limit && last !== undefined ? { nextCursor: String(last.index) } : {})
        }
      }).pipe(decide),
    doneBatches: (caller, id) => decide(Effect.zipRight(found(caller, id), repo.children.doneSet(id))),
    progress: (caller, id) => decide(progress(caller, id)),
    results: (caller, id, options) =>
      decideStream(Stream.unwrap(Effect.as(found(caller, id), results(repo, reader, id, options?.state)))),
    mergeCheck: (caller, id) =>
      decide(Effect.flatMap(found(caller, id), (record) => repo.children.mergeCheck(id, record.total))),
    events: (caller, id, after) => decideStream(Stream.unwrap(Effect.as(found(caller, id), events.events(id, after)))),
    pause: (caller, id, options) =>
      decide(Effect.flatMap(
        commands.pause(caller, id, { note: options?.note ?? "", cascade: options?.cascade ?? false }),
        viewOf
      )),
    resume: (caller, id) => decide(Effect.flatMap(commands.resume(caller, id), viewOf)),
    cancel: (caller, id, note = "") => decide(Effect.flatMap(commands.cancel(caller, id, note), viewOf)),
    approve: (caller, id, note = "") => decide(Effect.flatMap(commands.approve(caller, id, note), viewOf)),
    reject: (caller, id, note = "") => decide(Effect.flatMap(commands.reject(caller, id, note), viewOf)),
    retryFailed: (caller, id, options) => decide(commands.retryFailed(caller, id, options)),
    releaseQuarantined: (caller, id) => decide(commands.releaseQuarantined(caller, id)),
    updateConfig: (caller, id, patch) => decide(Effect.flatMap(commands.updateConfig(caller, id, patch), viewOf))
  })
})

/**
 * The campaign orchestrator layer.
 *
 * @since 0.4.0
 */
export const layer = Layer.effect(CampaignOrchestrator, make)
