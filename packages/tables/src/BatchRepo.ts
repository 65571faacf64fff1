/**
 * Batches: creation with bulk, streamed items; reads; listing; state changes with a version check
 * that append their events in the same statement (outbox).
 *
 * @since 0.1.0
 */
import type { BatchConfig, BatchEvent, BatchState } from "@effect-batch/domain"
import { Errors, Ids } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { type BatchRecord, decodeRecord } from "./BatchRecord.js"
import { EventLog } from "./EventLog.js"
import { listPage } from "./internal/ListPage.js"
import { batchColumns, BatchRow, encodeConfig, encodeState } from "./internal/Rows.js"
import { Tables } from "./Tables.js"

/**
 * One item of a new batch, its input already encoded to JSON.
 *
 * @since 0.1.0
 */
export interface NewItem {
  readonly key: string
  readonly input: unknown
}

/**
 * What `create` needs.
 *
 * @since 0.1.0
 */
export interface CreateInput<E, R> {
  readonly id: Ids.BatchId
  readonly tenant: Ids.TenantId
  readonly workflow: Ids.WorkflowName
  readonly idempotencyKey: Option.Option<Ids.IdempotencyKey>
  readonly config: BatchConfig.BatchConfig
  readonly state: BatchState.BatchState
  readonly items: Stream.Stream<NewItem, E, R>
  /** the events to record once the items are stored, given their number */
  readonly events: (total: number) => ReadonlyArray<BatchEvent.Draft>
  readonly now: number
}

/**
 * What a state change needs.
 *
 * @since 0.1.0
 */
export interface ChangeInput {
  readonly batchId: Ids.BatchId
  readonly tenant: Ids.TenantId
  readonly expectedVersion: number
  readonly state: BatchState.BatchState
  readonly events: ReadonlyArray<BatchEvent.Draft>
  readonly now: number
  /** a new config, for `UpdateConfig` */
  readonly config?: BatchConfig.BatchConfig | undefined
  /** the hook state to set (`pending` when the batch settles, `none` when it runs again) */
  readonly hookState?: "none" | "pending" | undefined
  /**
   * Work done in the same transaction after the version check and before the events are appended
   * (skipping or re-queueing items), so that the command's own events come last.
   */
  readonly during?: Effect.Effect<void, SqlError> | undefined
}

/**
 * How many items go into one insert statement.
 *
 * @since 0.1.0
 */
export const insertChunkSize = 5_000

const roundOf = (state: BatchState.BatchState): Option.Option<number> =>
  "round" in state ? Option.some(state.round) : Option.none()

/**
 * The batches repository.
 *
 * @since 0.1.0
 */
export class BatchRepo extends Effect.Service<BatchRepo>()("@effect-batch/BatchRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const eventLog = yield* EventLog
    const batches = sql(t.batches)
    const items = sql(t.items)
    const decodeRows = Schema.decodeUnknown(Schema.Array(BatchRow))

    const selectOne = (where: Fragment) =>
      sql`SELECT ${sql.literal(batchColumns)} FROM ${batches} WHERE ${where}`.pipe(
        Effect.flatMap(decodeRows),
        Effect.flatMap((rows) => rows[0] === undefined ? Effect.succeedNone : Effect.asSome(decodeRecord(rows[0]))),
        Effect.catchTag("ParseError", Effect.die)
      )

    const get = (tenant: Ids.TenantId, id: Ids.BatchId): Effect.Effect<Option.Option<BatchRecord>, SqlError> =>
      selectOne(sql`id = ${id}::uuid AND tenant = ${tenant}`)

    const getOrFail = (tenant: Ids.TenantId, id: Ids.BatchId) =>
      Effect.flatten(get(tenant, id)).pipe(
        Effect.catchTag("NoSuchElementException", () => Effect.fail(new Errors.BatchNotFound({ batchId: id })))
      )

    /** Reads a batch for the worker, which serves every tenant. */
    const getAnyTenant = (id: Ids.BatchId): Effect.Effect<Option.Option<BatchRecord>, SqlError> =>
      selectOne(sql`id = ${id}::uuid`)

    /**
     * Inserts one chunk as three arrays (`unnest`): one parameter each, whatever the chunk size, and no
     * JSON document to take apart. Only the number of rows comes back; when it falls short (duplicate
     * keys) a second query finds which items were not stored by this chunk.
     */
    const insertChunk = (batchId: Ids.BatchId, offset: number, chunk: ReadonlyArray<NewItem>) => {
      const keys = new Array<string>(chunk.length)
      const inputs = new Array<string>(chunk.length)
      chunk.forEach((item, i) => {
        keys[i] = item.key
        inputs[i] = JSON.stringify(item.input ?? null)
      })
      return sql<{ n: number }>`
        WITH ins AS (
          INSERT INTO ${items} (batch_id, key, ordinal, input)
          SELECT ${batchId}::uuid, x.key, ${offset}::int + x.ord::int - 1, x.input::jsonb
          FROM unnest(${keys}::text[], ${inputs}::text[]) WITH ORDINALITY AS x(key, input, ord)
          ON CONFLICT DO NOTHING
          RETURNING 1
        )
        SELECT count(*)::int AS n FROM ins`.pipe(
        Effect.flatMap((rows) => {
          if ((rows[0]?.n ?? 0) === chunk.length) return Effect.void
          return sql<{ key: string; ordinal: number }>`SELECT key, ordinal FROM ${items}
            WHERE batch_id = ${batchId}::uuid AND key = ANY(${keys}::text[])`.pipe(
            Effect.flatMap((stored) => {
              const ordinalOf = new Map(stored.map((r) => [r.key, Number(r.ordinal)]))
              const duplicates: Array<Errors.InvalidItem> = []
              chunk.forEach((item, i) => {
                if (ordinalOf.get(item.key) !== offset + i) {
                  duplicates.push(
                    Errors.InvalidItem.make({ index: offset + i, key: item.key, reason: "duplicate item key" })
                  )
                }
              })
              return Effect.fail(
                new Errors.InvalidItems({ items: duplicates.slice(0, 100), count: duplicates.length })
              )
            })
          )
        })
      )
    }

    const create = <E, R>(input: CreateInput<E, R>) =>
      Effect.gen(function*() {
        const state = yield* Effect.orDie(encodeState(input.state))
        const config = yield* Effect.orDie(encodeConfig(input.config))
        const inserted = yield* sql<{ id: string }>`
          INSERT INTO ${batches} (id, tenant, workflow, idempotency_key, state_tag, state, config, concurrency,
            round, created_at_ms, updated_at_ms)
          VALUES (${input.id}::uuid, ${input.tenant}, ${input.workflow}, ${Option.getOrNull(input.idempotencyKey)},
            ${input.state._tag}, ${JSON.stringify(state)}::text::jsonb, ${JSON.stringify(config)}::text::jsonb,
            ${input.config.concurrency}, ${Option.getOrElse(roundOf(input.state), () => 1)}, ${input.now}, ${input.now})
          ON CONFLICT DO NOTHING
          RETURNING id::text AS id`
        if (inserted.length === 0) {
          const existing = yield* Option.match(input.idempotencyKey, {
            onNone: () => Effect.succeedNone,
            onSome: (key) => selectOne(sql`tenant = ${input.tenant} AND idempotency_key = ${key}`)
          })
          return yield* Option.match(existing, {
            onNone: () => Effect.dieMessage(`batch ${input.id} already exists`),
            onSome: (record) => Effect.succeed({ record, created: false })
          })
        }
        const total = yield* input.items.pipe(
          Stream.grouped(insertChunkSize),
          Stream.runFoldEffect(0, (offset, chunk) =>
            insertChunk(input.id, offset, Chunk.toReadonlyArray(chunk)).pipe(Effect.as(offset + chunk.length)))
        )
        yield* sql`UPDATE ${batches} SET total = ${total}, queued = ${total} WHERE id = ${input.id}::uuid`
        yield* eventLog.append(input.id, input.events(total), input.now)
        const record = yield* getOrFail(input.tenant, input.id).pipe(Effect.catchTag("BatchNotFound", Effect.die))
        return { record, created: true }
      }).pipe(
        sql.withTransaction,
        Effect.withSpan("BatchRepo.create", { attributes: { batchId: input.id } })
      )

    const changeState = (input: ChangeInput) =>
      Effect.gen(function*() {
        const state = yield* encodeState(input.state)
        const config = input.config === undefined ? undefined : yield* encodeConfig(input.config)
        const updated = yield* sql<{ id: string }>`
          UPDATE ${batches} SET state_tag = ${input.state._tag}, state = ${JSON.stringify(state)}::text::jsonb,
            version = version + 1, updated_at_ms = ${input.now},
            round = COALESCE(${Option.getOrNull(roundOf(input.state))}::int, round),
            consecutive_failures = CASE WHEN ${input.state._tag} = 'Running' THEN 0 ELSE consecutive_failures END,
            hook_state = COALESCE(${input.hookState ?? null}::text, hook_state)
            ${
          config === undefined
            ? sql``
            : sql`, config = ${JSON.stringify(config)}::text::jsonb, concurrency = ${input.config?.concurrency ?? 1}`
        }
          WHERE id = ${input.batchId}::uuid AND tenant = ${input.tenant} AND version = ${input.expectedVersion}
          RETURNING id::text AS id`
        if (updated.length === 0) {
          const exists = yield* get(input.tenant, input.batchId)
          return yield* Option.isSome(exists)
            ? Effect.fail(
              new Errors.VersionConflict({ batchId: input.batchId, expectedVersion: input.expectedVersion })
            )
            : Effect.fail(new Errors.BatchNotFound({ batchId: input.batchId }))
        }
        if (input.during !== undefined) yield* input.during
        yield* eventLog.append(input.batchId, input.events, input.now)
        return yield* getOrFail(input.tenant, input.batchId)
      }).pipe(
        sql.withTransaction,
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("BatchRepo.changeState", { attributes: { batchId: input.batchId, state: input.state._tag } })
      )

    const list = (tenant: Ids.TenantId, options: {
      readonly state?: BatchState.Tag | undefined
      readonly limit: number
      readonly cursor?: string | undefined
    }) =>
      listPage(
        sql,
        options,
        (after, limit) =>
          sql`
          SELECT ${sql.literal(batchColumns)} FROM ${batches}
          WHERE tenant = ${tenant}
          ${options.state === undefined ? sql`` : sql`AND state_tag = ${options.state}`}
          ${after}
          ORDER BY created_at_ms DESC, id DESC
          LIMIT ${limit}`.pipe(Effect.flatMap(decodeRows)),
        decodeRecord
      ).pipe(Effect.catchTag("ParseError", Effect.die), Effect.withSpan("BatchRepo.list"))

    const runnable = (limit: number) =>
      sql<{ id: string }>`SELECT id::text AS id FROM ${batches} WHERE state_tag = 'Running' LIMIT ${limit}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({ id: Ids.BatchId })))),
        Effect.map((rows) => rows.map((r) => r.id)),
        Effect.catchTag("ParseError", Effect.die)
      )

    /** Batches whose post-settlement hook has not completed. */
    const pendingHooks = (limit: number) =>
      sql<{ id: string }>`SELECT id::text AS id FROM ${batches} WHERE hook_state = 'pending' LIMIT ${limit}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({ id: Ids.BatchId })))),
        Effect.map((rows) => rows.map((r) => r.id)),
        Effect.catchTag("ParseError", Effect.die)
      )

    /**
     * Runs `hook` for a batch whose hook is pending and marks it done, in one transaction holding the
     * batch row: a crash leaves it pending to run again. With `wait: false` a batch whose row another
     * transaction holds is skipped (a worker tick takes the next); with `wait: true` it waits for that
     * transaction, so that on return the settlement's hook has run, here or elsewhere.
     */
    const runHook = <E, R>(
      id: Ids.BatchId,
      hook: (record: BatchRecord) => Effect.Effect<void, E, R>,
      options: { readonly wait: boolean }
    ) =>
      Effect.gen(function*() {
        const locked = options.wait
          ? yield* sql<{ id: string }>`SELECT id::text AS id FROM ${batches}
              WHERE id = ${id}::uuid AND hook_state = 'pending' FOR UPDATE`
          : yield* sql<{ id: string }>`SELECT id::text AS id FROM ${batches}
              WHERE id = ${id}::uuid AND hook_state = 'pending' FOR UPDATE SKIP LOCKED`
        if (locked.length === 0) return false
        const record = yield* Effect.flatten(getAnyTenant(id)).pipe(Effect.orDie)
        yield* hook(record)
        yield* sql`UPDATE ${batches} SET hook_state = 'done' WHERE id = ${id}::uuid`
        return true
      }).pipe(sql.withTransaction, Effect.withSpan("BatchRepo.runHook", { attributes: { batchId: id } }))

    return { get, getOrFail, getAnyTenant, create, changeState, list, runnable, pendingHooks, runHook } as const
  }),
  dependencies: [EventLog.Default]
}) {}
