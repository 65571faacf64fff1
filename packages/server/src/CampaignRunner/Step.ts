/**
 * One step of a campaign, in one transaction holding the campaign row: announce the children that
 * settled, then, for a running campaign, decide from the children's rows (pure `CampaignPolicy`) to
 * fail it, settle it, or start the next children. A child starts under that lock with a version
 * check, so no child starts twice, whichever process steps the campaign.
 */
import {
  BatchCommand,
  CampaignCommand,
  CampaignPolicy,
  CampaignState,
  CampaignTransition,
  Summary,
  Transition
} from "@effect-batch/domain"
import type { CampaignEvent, CampaignId, Ids } from "@effect-batch/domain"
import type { BatchRepo } from "@effect-batch/tables/BatchRepo"
import type { CampaignRecord } from "@effect-batch/tables/CampaignRecord"
import type { CampaignRepo } from "@effect-batch/tables/CampaignRepo"
import type { Child } from "@effect-batch/tables/CampaignRepo/Children"
import type { ItemRepo } from "@effect-batch/tables/ItemRepo"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** The actor of the changes a campaign makes to its children. */
export const campaignActor = "campaign"

/** What a step did, for what follows its commit. */
export interface Stepped {
  readonly campaign: CampaignRecord
  /** no child is Running, Paused or waiting for review (so a settled campaign's hook may run) */
  readonly idle: boolean
  /** the children started, with their last event sequence */
  readonly started: ReadonlyArray<{ readonly id: Ids.BatchId; readonly seq: number }>
  readonly appended: boolean
}

export const make = (deps: {
  readonly sql: SqlClient.SqlClient
  readonly repo: CampaignRepo
  readonly batches: BatchRepo
  readonly items: ItemRepo
}) => {
  const { batches, items, repo, sql } = deps

  /** Starts a pending child, or redrives a settled one marked for it, in the caller's transaction. */
  const startChild = (child: Child, now: number) =>
    Effect.gen(function*() {
      const at = DateTime.unsafeMake(now)
      const record = child.record
      const from = child.requeue
      const command = from === undefined
        ? new BatchCommand.Start({ at })
        : new BatchCommand.RetryFailed({
          at,
          actor: campaignActor,
          requeued: (from.includes("failed") ? record.counts.failed : 0) +
            (from.includes("quarantined") ? record.counts.quarantined : 0)
        })
      const next = yield* Effect.orDie(Transition.transition(record.state, command))
      return yield* batches.changeState({
        batchId: record.id,
        tenant: record.tenant,
        expectedVersion: record.version,
        state: next.state,
        events: next.events,
        now,
        during: from === undefined ? undefined : items.requeue({
          batchId: record.id,
          from,
          round: record.round + 1,
          actor: campaignActor,
          now
        }).pipe(Effect.zipRight(repo.children.clearRequeue(record.id)))
      })
    })

  const settledEvents = (settled: ReadonlyArray<Child>, rollup: CampaignPolicy.Rollup) =>
    settled.length === 0 ? [] : [
      ...settled.map((c): CampaignEvent.Draft => ({
        _tag: "CampaignBatchSettled",
        batchId: c.record.id,
        index: c.index,
        state: c.record.state._tag,
        summary: Summary.fromCounts(c.record.counts)
      })),
      {
        _tag: "CampaignProgress" as const,
        batchesDone: CampaignPolicy.done(rollup),
        batchesTotal: rollup.batches,
        counts: rollup.counts
      }
    ]

  const changeTo = (
    campaign: CampaignRecord,
    command: CampaignCommand.CampaignCommand,
    now: number
  ) =>
    Effect.gen(function*() {
      const next = yield* Effect.orDie(CampaignTransition.transition(campaign.state, command))
      return yield* repo.changeState({
        campaignId: campaign.id,
        tenant: campaign.tenant,
        expectedVersion: campaign.version,
        state: next.state,
        events: next.events,
        now,
        hookState: CampaignState.settledTags.includes(next.state._tag) ? "pending" : undefined
      })
    })

  /**
   * Decides and acts for a running campaign. `announce` appends the settlements the step found,
   * with the given events after them, in one statement: before a settlement or a failure of the
   * campaign, together with the starts.
   */
  const drive = (
    campaign: CampaignRecord,
    rollup: CampaignPolicy.Rollup,
    now: number,
    announce: (after: ReadonlyArray<CampaignEvent.Draft>) => Effect.Effect<void, SqlError>
  ) =>
    Effect.gen(function*() {
      const at = DateTime.unsafeMake(now)
      const decision = CampaignPolicy.decide(campaign.config, rollup)
      const summary = () =>
        Effect.map(
          repo.children.mergeCheck(campaign.id, campaign.total),
          (merge) => CampaignPolicy.summaryOf(rollup, merge)
        )
      switch (decision._tag) {
        case "Fail":
          yield* announce([])
          return {
            campaign: yield* changeTo(
              campaign,
              new CampaignCommand.Fail({ at, reason: decision.reason, summary: yield* summary() }),
              now
            ),
            started: []
          }
        case "Settle":
          yield* announce([])
          return {
            campaign: yield* changeTo(
              campaign,
              new CampaignCommand.Settle({ at, summary: yield* summary(), review: campaign.config.review }),
              now
            ),
            started: []
          }
        case "Start": {
          const next = yield* repo.children.startable(campaign.id, decision.count)
          const started = yield* Effect.forEach(next, (child) =>
            Effect.map(startChild(child, now), (record) => ({ child, record })))
          yield* announce(started.map(({ child, record }): CampaignEvent.Draft => ({
            _tag: "CampaignBatchStarted",
            batchId: record.id,
            index: child.index,
            round: record.round
          })))
          return { campaign, started: started.map(({ record }) => ({ id: record.id, seq: record.seq })) }
        }
        case "Wait":
          yield* announce([])
          return { campaign, started: [] }
      }
    })

  /** One step of the campaign; `None` when another transaction holds it (that one steps it). */
  const step = (id: CampaignId.CampaignId) =>
    Effect.gen(function*() {
      const locked = yield* repo.lock(id, { skipLocked: true })
      if (Option.isNone(locked)) return Option.none<Stepped>()
      const campaign = locked.value
      const now = yield* Clock.currentTimeMillis
      // the roll-up first: a child that settles between the two reads is announced now and still
      // counted active, so no start ever outruns the announcements
      const rollup = yield* repo.children.rollup(id)
      const settled = yield* repo.children.unreported(id)
      const reported = settledEvents(settled, rollup)
      if (settled.length > 0) yield* repo.children.markReported(settled)
      const announce = (after: ReadonlyArray<CampaignEvent.Draft>) =>
        reported.length + after.length === 0 ? Effect.void : repo.append(id, [...reported, ...after], now)
      const done = campaign.state._tag === "Running"
        ? yield* drive(campaign, rollup, now, announce)
        : yield* Effect.as(announce([]), { campaign, started: [] })
      return Option.some<Stepped>({
        campaign: done.campaign,
        // a child started now is active
        idle: done.started.length === 0 && rollup.active === 0,
        started: done.started,
        appended: reported.length > 0 || done.started.length > 0 || done.campaign !== campaign
      })
    }).pipe(sql.withTransaction, Effect.withSpan("CampaignRunner.step", { attributes: { campaignId: id } }))

  return { step } as const
}
