/**
 * The commands that put settled items back in the queue: a redrive of the failed items, a release of
 * quarantined ones, a re-run from a named durable step. Each runs a pending settlement hook first,
 * so that the settlement it leaves gets its own run.
 */
import { BatchCommand, BatchConfig, Errors, Transition, Views } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import type { BatchRepo } from "@effect-batch/tables/BatchRepo"
import type { EventLog } from "@effect-batch/tables/EventLog"
import type { ItemRepo } from "@effect-batch/tables/ItemRepo"
import type { StepRepo } from "@effect-batch/tables/StepRepo"
import type { SqlError } from "@effect/sql/SqlError"
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type { Caller, CommandError } from "../BatchOrchestrator.js"
import type { Worker } from "../Worker.js"

export const make = (deps: {
  readonly repo: BatchRepo
  readonly items: ItemRepo
  readonly stepRepo: StepRepo
  readonly eventLog: EventLog
  readonly worker: Worker
  readonly command: (
    caller: Caller,
    batchId: Ids.BatchId,
    build: (record: BatchRecord, at: DateTime.Utc) => BatchCommand.BatchCommand,
    during?: (record: BatchRecord, now: number) => Effect.Effect<void, SqlError>
  ) => Effect.Effect<Views.BatchView, CommandError | SqlError>
  readonly actorOf: (caller: Caller) => string
}) => {
  const { actorOf, command, eventLog, items, repo, stepRepo, worker } = deps

  const redrivePlan = (record: BatchRecord, dryRun: boolean) =>
    Effect.map(
      items.keysInState({ batchId: record.id, state: "failed", limit: 1_000 }),
      ({ count, keys }) =>
        Views.RedrivePlan.make({ dryRun, count, items: keys.map((k) => Schema.decodeSync(ItemKey)(k)) })
    )

  const retryFailed = (caller: Caller, batchId: Ids.BatchId, options: { readonly dryRun: boolean }) =>
    Effect.gen(function*() {
      const record = yield* repo.getOrFail(caller.tenant, batchId)
      const plan = yield* redrivePlan(record, options.dryRun)
      if (options.dryRun) {
        if (!Transition.allowed[record.state._tag].includes("RetryFailed")) {
          return yield* Effect.fail(
            new Errors.InvalidTransition({ state: record.state._tag, command: "RetryFailed" })
          )
        }
        return plan
      }
      yield* worker.runPendingHook(batchId)
      yield* command(
        caller,
        batchId,
        (current, at) => new BatchCommand.RetryFailed({ at, actor: actorOf(caller), requeued: current.counts.failed }),
        (current, now) =>
          Effect.asVoid(items.requeue({
            batchId: current.id,
            from: "failed",
            round: current.round + 1,
            actor: actorOf(caller),
            now
          }))
      )
      return plan
    })

  const releaseQuarantined = (caller: Caller, batchId: Ids.BatchId, keys: ReadonlyArray<Ids.ItemKey> | undefined) =>
    Effect.gen(function*() {
      const record = yield* repo.getOrFail(caller.tenant, batchId)
      const count = yield* Ref.make(0)
      const release = (current: BatchRecord, now: number, round: number) =>
        items.requeue({ batchId: current.id, from: "quarantined", keys, round, actor: actorOf(caller), now }).pipe(
          Effect.flatMap((n) => Ref.set(count, n))
        )
      if (record.state._tag === "Running" || record.state._tag === "Paused") {
        yield* command(
          caller,
          batchId,
          (_, at) => new BatchCommand.UpdateConfig({ at, patch: BatchConfig.ConfigPatch.make({}) }),
          (current, now) => release(current, now, current.round)
        )
      } else {
        yield* worker.runPendingHook(batchId)
        yield* command(
          caller,
          batchId,
          (_, at) => new BatchCommand.RetryFailed({ at, actor: actorOf(caller), requeued: 0 }),
          (current, now) => release(current, now, current.round + 1)
        )
      }
      return { released: yield* Ref.get(count) }
    }).pipe(
      // the command that carries the release is an implementation detail: name the caller's
      Effect.catchTag(
        "InvalidTransition",
        (error) => Effect.fail(new Errors.InvalidTransition({ state: error.state, command: "ReleaseQuarantined" }))
      )
    )

  const rerunFromStep = (
    caller: Caller,
    batchId: Ids.BatchId,
    options: { readonly keys: ReadonlyArray<Ids.ItemKey>; readonly step: string }
  ) =>
    Effect.gen(function*() {
      const record = yield* repo.getOrFail(caller.tenant, batchId)
      if (record.state._tag !== "Completed" && record.state._tag !== "Failed") {
        return yield* new Errors.InvalidTransition({ state: record.state._tag, command: "RerunFromStep" })
      }
      const from = ["succeeded", "failed", "quarantined"] as const
      const requeueable = yield* items.countIn({ batchId, from, keys: options.keys })
      const totals = { requeued: 0, discarded: 0 }
      yield* worker.runPendingHook(batchId)
      yield* command(
        caller,
        batchId,
        (_, at) => new BatchCommand.RetryFailed({ at, actor: actorOf(caller), requeued: requeueable }),
        (current, now): Effect.Effect<void, SqlError> =>
          Effect.gen(function*() {
            const discarded = yield* stepRepo.discardFrom({ batchId, keys: options.keys, step: options.step })
            totals.discarded = discarded.reduce((n, d) => n + d.discarded.length, 0)
            yield* eventLog.append(
              batchId,
              discarded.map((d) => ({
                _tag: "StepsDiscarded" as const,
                // the keys were decoded at the edge and found among the batch's stored steps
                itemKey: ItemKey.make(d.key, true),
                step: options.step,
                discarded: d.discarded,
                actor: actorOf(caller)
              })),
              now
            )
            totals.requeued = yield* items.requeue({
              batchId,
              from,
              keys: options.keys,
              round: current.round + 1,
              actor: actorOf(caller),
              now
            })
          })
      )
      return totals
    })

  return { retryFailed, releaseQuarantined, rerunFromStep } as const
}
