/**
 * The one writer path for campaign state changes from commands: read the state and its version,
 * apply the pure `CampaignTransition`, store the new state, its events and the command's own work in
 * one transaction with a version check, then announce it.
 */
import { CampaignConfig, CampaignState, CampaignTransition } from "@effect-batch/domain"
import type { CampaignCommand, CampaignErrors, CampaignId, Errors, Ids } from "@effect-batch/domain"
import type { CampaignRecord } from "@effect-batch/tables/CampaignRecord"
import type { CampaignRepo } from "@effect-batch/tables/CampaignRepo"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import type { CampaignEvents } from "../CampaignEvents.js"
import type { CampaignRunner } from "../CampaignRunner.js"

/** The errors of a campaign command, once storage failures are decided. */
export type DecidedError =
  | CampaignErrors.CampaignNotFound
  | Errors.InvalidTransition
  | Errors.VersionConflict
  | Errors.StorageUnavailable

/** The errors of a campaign command inside the machine. */
export type CommandError = DecidedError | SqlError

export const make = (deps: {
  readonly sql: SqlClient.SqlClient
  readonly repo: CampaignRepo
  readonly events: CampaignEvents
  readonly runner: CampaignRunner
}) => {
  const { events, repo, runner, sql } = deps

  const attempt = (options: {
    readonly tenant: Ids.TenantId
    readonly campaignId: CampaignId.CampaignId
    readonly command: (record: CampaignRecord, at: DateTime.Utc) => CampaignCommand.CampaignCommand
    readonly during?: ((record: CampaignRecord, now: number) => Effect.Effect<void, SqlError>) | undefined
  }) =>
    Effect.gen(function*() {
      const record = yield* repo.getOrFail(options.tenant, options.campaignId)
      const now = yield* Clock.currentTimeMillis
      const command = options.command(record, DateTime.unsafeMake(now))
      const next = yield* CampaignTransition.transition(record.state, command)
      if (options.during !== undefined) yield* options.during(record, now)
      return yield* repo.changeState({
        campaignId: record.id,
        tenant: record.tenant,
        expectedVersion: record.version,
        state: next.state,
        events: next.events,
        now,
        config: command._tag === "UpdateConfig" ? CampaignConfig.applyPatch(record.config, command.patch) : undefined,
        hookState: CampaignState.settledTags.includes(next.state._tag) ? "pending" : undefined
      })
    }).pipe(sql.withTransaction)

  /**
   * Applies a command; a `VersionConflict` (another writer was first) re-reads and tries again a few
   * times; an `InvalidTransition` changes nothing.
   */
  const execute = (options: Parameters<typeof attempt>[0]): Effect.Effect<CampaignRecord, CommandError> =>
    attempt(options).pipe(
      Effect.retry({ while: (e) => Predicate.isTagged(e, "VersionConflict"), schedule: Schedule.recurs(5) }),
      Effect.tap((record) => Effect.zipRight(events.committed(record.id, record.seq), runner.kick(record.id))),
      Effect.withSpan("CampaignMachine.execute", { attributes: { campaignId: options.campaignId } })
    )

  return { execute } as const
}
