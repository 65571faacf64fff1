/**
 * The campaign commands: each changes the campaign through the state machine, then carries the
 * command to the children that it concerns (pause, resume and cancel cascade; a redrive marks the
 * failed or partially failed children, which the runner starts again as the concurrency allows).
 */
import type { BatchState } from "@effect-batch/domain"
import { CampaignCommand, CampaignState, CampaignTransition, CampaignViews } from "@effect-batch/domain"
import type { CampaignConfig, CampaignId } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import type { CampaignRecord } from "@effect-batch/tables/CampaignRecord"
import type { CampaignRepo } from "@effect-batch/tables/CampaignRepo"
import type { Child } from "@effect-batch/tables/CampaignRepo/Children"
import type { ItemRepo } from "@effect-batch/tables/ItemRepo"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { BatchOrchestrator, Caller, CommandError as BatchCommandError } from "../BatchOrchestrator.js"
import type { CampaignEvents } from "../CampaignEvents.js"
import type { CampaignRunner } from "../CampaignRunner.js"
import type * as Machine from "./Machine.js"

const decodeKey = Schema.decodeSync(ItemKey)

/** Ignores a child that another writer changed first (it settled, or a person commanded it). */
const racing = <A, R>(effect: Effect.Effect<A, BatchCommandError, R>) =>
  effect.pipe(
    Effect.asVoid,
    Effect.catchTags({
      InvalidTransition: () => Effect.void,
      VersionConflict: () => Effect.void,
      BatchNotFound: () => Effect.void
    })
  )

export const make = (deps: {
  readonly sql: SqlClient.SqlClient
  readonly repo: CampaignRepo
  readonly items: ItemRepo
  readonly batches: BatchOrchestrator["Type"]
  readonly events: CampaignEvents
  readonly runner: CampaignRunner
  readonly machine: ReturnType<typeof Machine.make>
  readonly actorOf: (caller: Caller) => string
}) => {
  const { actorOf, batches, events, items, machine, repo, runner, sql } = deps

  const run = (
    caller: Caller,
    campaignId: CampaignId.CampaignId,
    command: Parameters<typeof machine.execute>[0]["command"],
    during?: Parameters<typeof machine.execute>[0]["during"]
  ) => machine.execute({ tenant: caller.tenant, campaignId, command, during })

  const eachChild = <E>(
    campaignId: CampaignId.CampaignId,
    tags: ReadonlyArray<BatchState.Tag>,
    f: (child: Child) => Effect.Effect<void, E>
  ) => Effect.flatMap(repo.children.inStates(campaignId, tags), Effect.forEach(f, { discard: true }))

  const pause = (
    caller: Caller,
    id: CampaignId.CampaignId,
    options: { readonly note: string; readonly cascade: boolean }
  ) =>
    Effect.gen(function*() {
      const record = yield* run(caller, id, (_, at) =>
        new CampaignCommand.Pause({ at, actor: actorOf(caller), note: options.note, cascade: options.cascade }))
      if (options.cascade) {
        yield* eachChild(id, ["Running"], (child) =>
          racing(batches.pause(caller, child.record.id, options.note)))
      }
      return record
    })

  /** Resumes the campaign and the children a person paused (not those the circuit breaker paused). */
  const resume = (caller: Caller, id: CampaignId.CampaignId) =>
    Effect.gen(function*() {
      const record = yield* run(caller, id, (_, at) => new CampaignCommand.Resume({ at, actor: actorOf(caller) }))
      yield* eachChild(id, ["Paused"], (child) =>
        child.record.state._tag === "Paused" && child.record.state.reason._tag === "PausedByUser"
          ? racing(batches.resume(caller, child.record.id))
          : Effect.void)
      return record
    })

  const cancel = (caller: Caller, id: CampaignId.CampaignId, note: string) =>
    Effect.gen(function*() {
      const record = yield* run(caller, id, (_, at) => new CampaignCommand.Cancel({ at, actor: actorOf(caller), note }))
      yield* eachChild(
        id,
        ["Pending", "Running", "Paused", "AwaitingReview"],
        (child) => racing(batches.cancel(caller, child.record.id, note))
      )
      return record
    })

  /** Per failed or partially failed child: its failed items (the first 100 keys) and how many. */
  const retryPlan = (record: CampaignRecord, dryRun: boolean) =>
    Effect.gen(function*() {
      const redrivable = yield* repo.children.redrivable(record.id, ["failed"])
      const planned = yield* Effect.forEach(redrivable, (child) =>
        Effect.map(items.keysInState({ batchId: child.record.id, state: "failed", limit: 100 }), ({ count, keys }) => ({
          batchId: child.record.id,
          index: child.index,
          count,
          keys: keys.map((k) =>
            decodeKey(k)
          )
        })))
      return CampaignViews.CampaignRetryPlan.make({
        dryRun,
        batches: planned,
        items: planned.reduce((n, b) => n + b.count, 0)
      })
    })

  const retryFailed = (caller: Caller, id: CampaignId.CampaignId, options: { readonly dryRun: boolean }) =>
    Effect.gen(function*() {
      const record = yield* repo.getOrFail(caller.tenant, id)
      if (!CampaignTransition.allowed[record.state._tag].includes("RetryFailed")) {
        return yield* CampaignTransition.invalid(record.state._tag, "RetryFailed")
      }
      const plan = yield* retryPlan(record, options.dryRun)
      if (options.dryRun) return plan
      yield* runner.runPendingHook(id)
      yield* run(
        caller,
        id,
        (_, at) =>
          new CampaignCommand.RetryFailed({
            at,
            actor: actorOf(caller),
            batches: plan.batches.length,
            items: plan.items
          }),
        () => repo.children.markRequeue(plan.batches.map((b) => b.batchId), ["failed"])
      )
      return plan
    })

  /**
   * Releases every quarantined item: those of running children at once, those of settled children
   * when the runner starts them again (a new round of a settled campaign).
   */
  const releaseQuarantined = (caller: Caller, id: CampaignId.CampaignId) =>
    Effect.gen(function*() {
      const record = yield* repo.getOrFail(caller.tenant, id)
      const settled = yield* repo.children.redrivable(id, ["quarantined"])
      const count = settled.reduce((n, c) => n + c.record.counts.quarantined, 0)
      const mark = () => repo.children.markRequeue(settled.map((c) => c.record.id), ["quarantined"])
      const tag = record.state._tag
      if (tag === "Running" || tag === "Paused") {
        let released = count
        yield* eachChild(id, ["Running", "Paused"], (child) =>
          child.record.counts.quarantined === 0 ?
            Effect.void :
            batches.releaseQuarantined(caller, child.record.id).pipe(
              Effect.map((r) => {
                released += r.released
              }),
              racing
            ))
        const now = yield* Clock.currentTimeMillis
        const seq = yield* mark().pipe(
          Effect.zipRight(repo.append(id, [{ _tag: "CampaignItemsReleased", actor: actorOf(caller), released }], now)),
          sql.withTransaction
        )
        yield* events.committed(id, seq)
        yield* runner.kick(id)
        return { released }
      }
      if (!CampaignState.settledTags.includes(tag)) {
        return yield* CampaignTransition.invalid(tag, "ReleaseQuarantined")
      }
      yield* runner.runPendingHook(id)
      yield* run(
        caller,
        id,
        (_, at) =>
          new CampaignCommand.RetryFailed({ at, actor: actorOf(caller), batches: settled.length, items: count }),
        mark
      )
      return { released: count }
    })

  const approve = (caller: Caller, id: CampaignId.CampaignId, note: string) =>
    run(caller, id, (_, at) => new CampaignCommand.Approve({ at, actor: actorOf(caller), note }))

  const reject = (caller: Caller, id: CampaignId.CampaignId, note: string) =>
    run(caller, id, (_, at) => new CampaignCommand.Reject({ at, actor: actorOf(caller), note }))

  const updateConfig = (caller: Caller, id: CampaignId.CampaignId, patch: CampaignConfig.CampaignPatch) =>
    run(caller, id, (_, at) => new CampaignCommand.UpdateConfig({ at, patch }))

  return { pause, resume, cancel, approve, reject, retryFailed, releaseQuarantined, updateConfig } as const
}
