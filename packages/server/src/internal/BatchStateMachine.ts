/**
 * The one writer path for batch state changes: read the state and its version, apply the pure
 * `transition`, store the new state and its events with a version check, then announce the events.
 *
 * @since 0.1.0
 */
import { BatchState, Transition } from "@effect-batch/domain"
import type { BatchCommand, Errors, Ids } from "@effect-batch/domain"
import { applyPatch } from "@effect-batch/domain/BatchConfig"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import { BatchRepo } from "@effect-batch/tables/BatchRepo"
import { ItemRepo } from "@effect-batch/tables/ItemRepo"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import { BatchEvents } from "../BatchEvents.js"

/**
 * What a command needs besides the state change itself.
 *
 * @since 0.1.0
 */
export interface Execute<E> {
  readonly tenant: Ids.TenantId
  readonly batchId: Ids.BatchId
  /** builds the command from the current record (it may read the database) */
  readonly command: (record: BatchRecord, at: DateTime.Utc) => Effect.Effect<BatchCommand.BatchCommand, E>
  /** work done in the same transaction, before the command's events are appended */
  readonly during?:
    | ((record: BatchRecord, next: Transition.Transition, now: number) => Effect.Effect<void, SqlError>)
    | undefined
}

/**
 * The batch state machine.
 *
 * @since 0.1.0
 */
export class BatchStateMachine extends Effect.Service<BatchStateMachine>()("@effect-batch/BatchStateMachine", {
  effect: Effect.gen(function*() {
    const repo = yield* BatchRepo
    const items = yield* ItemRepo
    const events = yield* BatchEvents

    const attempt = <E>(options: Execute<E>) =>
      Effect.gen(function*() {
        const record = yield* repo.getOrFail(options.tenant, options.batchId)
        const now = yield* Clock.currentTimeMillis
        const command = yield* options.command(record, DateTime.unsafeMake(now))
        const next = yield* Transition.transition(record.state, command)
        const config = command._tag === "UpdateConfig" ? applyPatch(record.config, command.patch) : undefined
        const updated = yield* repo.changeState({
          batchId: record.id,
          tenant: record.tenant,
          expectedVersion: record.version,
          state: next.state,
          events: next.events,
          now,
          config,
          // A pending hook stays pending until it has run: it is never cleared, only marked done.
          hookState: BatchState.settledTags.includes(next.state._tag) ? "pending" : undefined,
          during: Effect.all([
            // a paused batch holds no leases: a process that has not seen the pause yet cannot record a
            // start for what it leased ahead
            next.state._tag === "Paused" ? Effect.asVoid(items.releaseLeased(record.id)) : Effect.void,
            options.during?.(record, next, now) ?? Effect.void
          ], { discard: true })
        })
        return updated
      })

    /**
     * Applies a command. A `VersionConflict` (another writer was first) re-reads and tries again, a
     * few times; an `InvalidTransition` changes nothing.
     */
    const execute = <E>(
      options: Execute<E>
    ): Effect.Effect<
      BatchRecord,
      E | Errors.InvalidTransition | Errors.BatchNotFound | Errors.VersionConflict | SqlError
    > =>
      attempt(options).pipe(
        Effect.retry({
          while: (e) => Predicate.isTagged(e, "VersionConflict"),
          schedule: Schedule.recurs(5)
        }),
        Effect.tap((record) => Effect.zipRight(events.committed(record.id, record.seq), events.commanded(record.id))),
        Effect.withSpan("BatchStateMachine.execute", { attributes: { batchId: options.batchId } })
      )

    return { execute } as const
  })
}) {}
