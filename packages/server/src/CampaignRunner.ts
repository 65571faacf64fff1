/**
 * The campaign runner of this process: it steps every campaign that has work (starts child batches
 * as the campaign's concurrency allows, announces the ones that settled, fails or settles the
 * campaign), carries cancellations to the children, and runs the settlement hook once every child
 * has stopped. It wakes on any batch's state change (in any process), on campaign hints, and polls.
 *
 * @since 0.4.0
 */
import { CampaignState, Errors } from "@effect-batch/domain"
import type { BatchState, CampaignId, CampaignViews } from "@effect-batch/domain"
import { BatchRepo } from "@effect-batch/tables/BatchRepo"
import type { CampaignRecord } from "@effect-batch/tables/CampaignRecord"
import { CampaignRepo } from "@effect-batch/tables/CampaignRepo"
import { ItemReader } from "@effect-batch/tables/ItemReader"
import { ItemRepo } from "@effect-batch/tables/ItemRepo"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { BatchEvents } from "./BatchEvents.js"
import { BatchOrchestrator } from "./BatchOrchestrator.js"
import { CampaignEvents } from "./CampaignEvents.js"
import { results } from "./CampaignRunner/Results.js"
import * as Step from "./CampaignRunner/Step.js"
import * as Storage from "./internal/Storage.js"
import { Worker, WorkerConfig } from "./Worker.js"

/**
 * A durable hook run once per settlement of a campaign (Completed, Failed, Rejected), after every
 * child batch has stopped, with the merged results ordered by (batch index, key). It runs inside the
 * transaction that marks it done: writes it makes through the same database commit with that mark,
 * so a crash before the commit runs it again and a crash after it does not.
 *
 * @since 0.4.0
 */
export class CampaignSettledHook extends Context.Reference<CampaignSettledHook>()(
  "@effect-batch/CampaignSettledHook",
  {
    defaultValue: (): (
      campaign: CampaignRecord,
      results: Stream.Stream<CampaignViews.CampaignResult, Errors.StorageUnavailable>
    ) => Effect.Effect<void, unknown> =>
    () => Effect.void
  }
) {}

const activeTags: ReadonlyArray<BatchState.Tag> = ["Running", "Paused", "AwaitingReview"]

/**
 * The campaign runner.
 *
 * @since 0.4.0
 */
export class CampaignRunner extends Effect.Service<CampaignRunner>()("@effect-batch/CampaignRunner", {
  scoped: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const repo = yield* CampaignRepo
    const reader = yield* ItemReader
    const batchEvents = yield* BatchEvents
    const campaignEvents = yield* CampaignEvents
    const worker = yield* Worker
    const orchestrator = yield* BatchOrchestrator
    const options = yield* WorkerConfig
    const hook = yield* CampaignSettledHook
    const { step } = Step.make({ sql, repo, batches: yield* BatchRepo, items: yield* ItemRepo })
    const queue = yield* Queue.unbounded<CampaignId.CampaignId>()
    const queued = new Set<string>()

    const kick = (id: CampaignId.CampaignId) =>
      Effect.suspend(() => {
        if (queued.has(id)) return Effect.void
        queued.add(id)
        return Queue.offer(queue, id)
      }).pipe(Effect.asVoid)

    /**
     * Cancels the children a stopped campaign leaves running: every unsettled one of a cancelled
     * campaign, the active ones of a campaign failed with `onExceeded: "cancel"`.
     */
    const cascade = (campaign: CampaignRecord) =>
      Effect.gen(function*() {
        const tags: ReadonlyArray<BatchState.Tag> = campaign.state._tag === "Cancelled"
          ? ["Pending", ...activeTags]
          : campaign.state._tag === "Failed" && campaign.config.tolerance.onExceeded === "cancel"
          ? activeTags
          : []
        if (tags.length === 0) return
        const note = campaign.state._tag === "Cancelled" ? "the campaign was cancelled" : "the campaign failed"
        for (const child of yield* repo.children.inStates(campaign.id, tags)) {
          yield* orchestrator.cancel({ tenant: campaign.tenant, actor: Step.campaignActor }, child.record.id, note)
            .pipe(
              Effect.catchTags({
                InvalidTransition: () => Effect.void,
                VersionConflict: () => Effect.void,
                BatchNotFound: () => Effect.void
              })
            )
        }
      })

    /**
     * Runs a campaign's pending hook if every child has stopped, and marks it done, in one transaction
     * holding the campaign row. With `wait`, waits for another transaction holding it.
     */
    const runHook = (id: CampaignId.CampaignId, wait: boolean) =>
      Effect.gen(function*() {
        const locked = yield* repo.lock(id, { skipLocked: !wait })
        if (Option.isNone(locked)) return false
        const campaign = locked.value
        if (campaign.hookState !== "pending" || !CampaignState.settledTags.includes(campaign.state._tag)) return false
        const rollup = yield* repo.children.rollup(id)
        if (rollup.active > 0) return false
        yield* hook(campaign, Storage.decideStream("the campaign's results")(results(repo, reader, id)))
        yield* repo.markHookDone(id)
        return true
      }).pipe(
        sql.withTransaction,
        Effect.withSpan("CampaignRunner.runHook", { attributes: { campaignId: id } })
      )

    const handle = (id: CampaignId.CampaignId) =>
      Effect.gen(function*() {
        const stepped = yield* step(id)
        if (Option.isNone(stepped)) return
        const { appended, campaign, idle, started } = stepped.value
        if (appended) yield* campaignEvents.committed(id, campaign.seq)
        for (const child of started) {
          yield* batchEvents.committed(child.id, child.seq)
          yield* worker.run(child.id)
        }
        yield* cascade(campaign)
        if (campaign.hookState === "pending" && idle) {
          yield* runHook(id, false).pipe(
            Effect.catchAllCause((cause) =>
              Effect.logError("campaign settlement hook failed; it runs again later", cause)
            )
          )
        }
      }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("campaign step failed; it runs again", cause)),
        Effect.annotateLogs({ campaignId: id })
      )

    const drives = options.enabled && options.campaigns
    if (drives) {
      yield* Queue.take(queue).pipe(
        Effect.tap((id) => Effect.sync(() => queued.delete(id))),
        Effect.flatMap(handle),
        Effect.forever,
        Effect.forkScoped
      )
      const poll = repo.active(1_000).pipe(
        Effect.flatMap(Effect.forEach(kick, { discard: true })),
        Effect.catchAllCause((cause) => Effect.logWarning("campaign poll failed", cause)),
        Effect.zipRight(Effect.sleep(options.pollInterval)),
        Effect.forever
      )
      yield* Effect.forkScoped(poll)
      yield* batchEvents.commands.pipe(
        Stream.runForEach((batchId) =>
          repo.campaignOf(batchId).pipe(
            Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: kick })),
            Effect.catchAllCause((cause) =>
              Effect.logWarning("looking up the campaign of a commanded batch failed; the poll finds it", cause)
            )
          )
        ),
        Effect.forkScoped
      )
      yield* campaignEvents.allHints.pipe(Stream.runForEach(kick), Effect.forkScoped)
    }

    /** Runs a settled campaign's pending hook now, if every child has stopped and this process runs hooks. */
    const runPendingHook = (id: CampaignId.CampaignId) =>
      drives
        ? runHook(id, true).pipe(
          Effect.asVoid,
          Effect.catchAllCause((cause) =>
            Effect.logError("campaign settlement hook failed; it runs again later", cause)
          )
        )
        : Effect.void

    return { kick, runPendingHook } as const
  }),
  dependencies: [CampaignEvents.Default]
}) {}
