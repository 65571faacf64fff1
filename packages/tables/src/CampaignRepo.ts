/**
 * Campaigns: creation with their child batches and items streamed in bulk, reads, listing, state
 * changes with a version check and their events (one sequence allocator, under the campaign row),
 * the settlement hook, and the reads over the children (`CampaignRepo/Children`).
 *
 * @since 0.4.0
 */
import type { BatchEvent, BatchState, CampaignConfig, CampaignEvent, CampaignState, Ids } from "@effect-batch/domain"
import { CampaignErrors, CampaignId, Errors } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { insertChunkSize, type NewItem } from "./BatchRepo.js"
import {
  campaignColumns,
  CampaignRow,
  decodeRecord,
  encodeConfig,
  encodeDraft,
  encodeState,
  eventFromRow,
  EventRow
} from "./CampaignRecord.js"
import * as Children from "./CampaignRepo/Children.js"
import { listPage } from "./internal/ListPage.js"
import {
  encodeConfig as encodeBatchConfig,
  encodeDraft as encodeBatchDraft,
  encodeState as encodeBatchState
} from "./internal/Rows.js"
import { Tables } from "./Tables.js"

/**
 * What `create` needs.
 *
 * @since 0.4.0
 */
export interface CreateInput<E, R> {
  readonly id: CampaignId.CampaignId
  readonly tenant: Ids.TenantId
  readonly workflow: Ids.WorkflowName
  readonly idempotencyKey: Option.Option<Ids.IdempotencyKey>
  readonly config: CampaignConfig.CampaignConfig
  readonly state: CampaignState.CampaignState
  /** the state of every child batch at creation (not started) */
  readonly childState: BatchState.BatchState
  readonly newBatchId: () => Ids.BatchId
  readonly items: Stream.Stream<NewItem, E, R>
  /** the event each child records at creation, given its number of items */
  readonly childEvent: (total: number) => BatchEvent.Draft
  /** the campaign's events once everything is stored */
  readonly events: (total: number, batches: number) => ReadonlyArray<CampaignEvent.Draft>
  readonly now: number
}

/**
 * What a state change needs.
 *
 * @since 0.4.0
 */
export interface ChangeInput {
  readonly campaignId: CampaignId.CampaignId
  readonly tenant: Ids.TenantId
  readonly expectedVersion: number
  readonly state: CampaignState.CampaignState
  readonly events: ReadonlyArray<CampaignEvent.Draft>
  readonly now: number
  readonly config?: CampaignConfig.CampaignConfig | undefined
  readonly hookState?: "none" | "pending" | undefined
}

const roundOf = (state: CampaignState.CampaignState): number | null => "round" in state ? state.round : null

/**
 * The campaigns repository.
 *
 * @since 0.4.0
 */
export class CampaignRepo extends Effect.Service<CampaignRepo>()("@effect-batch/CampaignRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const campaigns = sql(t.campaigns)
    const events = sql(t.campaignEvents)
    const batches = sql(t.batches)
    const items = sql(t.items)
    const batchEvents = sql(t.events)
    const decodeRows = Schema.decodeUnknown(Schema.Array(CampaignRow))
    const children = Children.make({ sql, tables: t })

    const selectOne = (where: Fragment, lock?: Fragment) =>
      sql`SELECT ${sql.literal(campaignColumns)} FROM ${campaigns} WHERE ${where} ${lock ?? sql``}`.pipe(
        Effect.flatMap(decodeRows),
        Effect.flatMap((rows) => rows[0] === undefined ? Effect.succeedNone : Effect.asSome(decodeRecord(rows[0]))),
        Effect.catchTag("ParseError", Effect.die)
      )

    const get = (tenant: Ids.TenantId, id: CampaignId.CampaignId) =>
      selectOne(sql`id = ${id}::uuid AND tenant = ${tenant}`)

    const getOrFail = (tenant: Ids.TenantId, id: CampaignId.CampaignId) =>
      Effect.flatten(get(tenant, id)).pipe(
        Effect.catchTag(
          "NoSuchElementException",
          () => Effect.fail(new CampaignErrors.CampaignNotFound({ campaignId: id }))
        )
      )

    /** Reads a campaign for the runner, which serves every tenant. */
    const getAnyTenant = (id: CampaignId.CampaignId) => selectOne(sql`id = ${id}::uuid`)

    /**
     * Locks the campaign row for the current transaction; with `skipLocked`, a campaign another
     * transaction holds gives `None` at once.
     */
    const lock = (id: CampaignId.CampaignId, options: { readonly skipLocked: boolean }) =>
      selectOne(sql`id = ${id}::uuid`, options.skipLocked ? sql`FOR UPDATE SKIP LOCKED` : sql`FOR UPDATE`)

    /**
     * Appends events to a campaign: its sequence is bumped in the same statement, so sequences stay
     * gapless and unique (every writer holds or takes the campaign row). Returns the last sequence.
     */
    const append = (campaignId: CampaignId.CampaignId, drafts: ReadonlyArray<CampaignEvent.Draft>, now: number) =>
      Effect.gen(function*() {
        if (drafts.length === 0) return 0
        const encoded = yield* Effect.forEach(drafts, (d) => Effect.orDie(encodeDraft(d)))
        const rows = yield* sql<{ seq: number }>`
          WITH bump AS (
            UPDATE ${campaigns} SET seq = seq + ${encoded.length}, updated_at_ms = ${now}
            WHERE id = ${campaignId}::uuid RETURNING seq, seq - ${encoded.length}::int AS base
          ), ins AS (
            INSERT INTO ${events} (campaign_id, seq, tag, payload, at_ms)
            SELECT ${campaignId}::uuid, bump.base + x.ord::int, x.tag, x.payload::jsonb, ${now}
            FROM bump, unnest(${encoded.map((e) => e.tag)}::text[], ${
          encoded.map((e) => JSON.stringify(e.payload))
        }::text[]) WITH ORDINALITY AS x(tag, payload, ord)
          )
          SELECT seq FROM bump`
        return Number(rows[0]?.seq ?? 0)
      }).pipe(Effect.withSpan("CampaignRepo.append", { attributes: { campaignId } }))

    /** Up to `limit` events with a sequence above `after`, in order. */
    const readAfter = (campaignId: CampaignId.CampaignId, after: number, limit: number) =>
      sql`SELECT campaign_id::text AS campaign_id, seq, tag, payload, at_ms::float8 AS at_ms FROM ${events}
        WHERE campaign_id = ${campaignId}::uuid AND seq > ${after} ORDER BY seq LIMIT ${limit}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(EventRow))),
        Effect.flatMap(Effect.forEach(eventFromRow)),
        Effect.catchTag("ParseError", Effect.die)
      )

    /** Inserts the child batch rows for indexes `from` … `to` (inclusive). */
    const insertChildren = <E, R>(input: CreateInput<E, R>, from: number, to: number, ids: Array<Ids.BatchId>) =>
      Effect.gen(function*() {
        if (to < from) return
        const state = JSON.stringify(yield* Effect.orDie(encodeBatchState(input.childState)))
        const config = JSON.stringify(yield* Effect.orDie(encodeBatchConfig(input.config.batchConfig)))
        const newIds: Array<string> = []
        const indexes: Array<number> = []
        for (let i = from; i <= to; i++) {
          const id = input.newBatchId()
          ids[i] = id
          newIds.push(id)
          indexes.push(i)
        }
        yield* sql`INSERT INTO ${batches} (id, tenant, workflow, state_tag, state, config, concurrency, round,
            created_at_ms, updated_at_ms, campaign_id, campaign_index)
          SELECT x.id, ${input.tenant}, ${input.workflow}, ${input.childState._tag}, ${state}::text::jsonb,
            ${config}::text::jsonb, ${input.config.batchConfig.concurrency}, 1, ${input.now}, ${input.now},
            ${input.id}::uuid, x.idx
          FROM unnest(${newIds}::uuid[], ${indexes}::int[]) AS x(id, idx)`
      })

    /** Stores one chunk of items in their batches; a key seen twice in one batch is an `InvalidItems`. */
    const insertItems = (
      ids: ReadonlyArray<Ids.BatchId>,
      batchSize: number,
      offset: number,
      chunk: ReadonlyArray<NewItem>
    ) =>
      Effect.gen(function*() {
        const batchIds = new Array<string>(chunk.length)
        const keys = new Array<string>(chunk.length)
        const ordinals = new Array<number>(chunk.length)
        const inputs = new Array<string>(chunk.length)
        chunk.forEach((item, i) => {
          const n = offset + i
          batchIds[i] = ids[Math.floor(n / batchSize)]!
          keys[i] = item.key
          ordinals[i] = n % batchSize
          inputs[i] = JSON.stringify(item.input ?? null)
        })
        const rows = yield* sql<{ n: number }>`
          WITH ins AS (
            INSERT INTO ${items} (batch_id, key, ordinal, input)
            SELECT x.batch_id, x.key, x.ordinal, x.input::jsonb
            FROM unnest(${batchIds}::uuid[], ${keys}::text[], ${ordinals}::int[], ${inputs}::text[])
              AS x(batch_id, key, ordinal, input)
            ON CONFLICT DO NOTHING
            RETURNING 1
          )
          SELECT count(*)::int AS n FROM ins`
        if (Number(rows[0]?.n ?? 0) === chunk.length) return
        const stored = yield* sql<{ batch_id: string; key: string; ordinal: number }>`
          SELECT batch_id::text AS batch_id, key, ordinal FROM ${items}
          WHERE batch_id = ANY(${[...new Set(batchIds)]}::uuid[]) AND key = ANY(${keys}::text[])`
        const at = new Map(stored.map((r) => [`${r.batch_id}\u0000${r.key}`, Number(r.ordinal)]))
        const duplicates = chunk.flatMap((item, i) =>
          at.get(`${batchIds[i]}\u0000${item.key}`) === ordinals[i]
            ? []
            : [Errors.InvalidItem.make({ index: offset + i, key: item.key, reason: "duplicate item key" })]
        )
        return yield* new Errors.InvalidItems({ items: duplicates.slice(0, 100), count: duplicates.length })
      })

    /** A key stored in two batches of the campaign is an `InvalidItems` naming its later place. */
    const checkUniqueKeys = (id: CampaignId.CampaignId, batchSize: number) =>
      Effect.gen(function*() {
        const rows = yield* sql<{ key: string; idx: number; n: number }>`
          SELECT i.key, max(b.campaign_index * ${batchSize}::int + i.ordinal)::int AS idx, count(*)::int AS n
          FROM ${items} i JOIN ${batches} b ON b.id = i.batch_id
          WHERE b.campaign_id = ${id}::uuid GROUP BY i.key HAVING count(*) > 1 ORDER BY 2 LIMIT 1000`
        if (rows.length === 0) return
        return yield* new Errors.InvalidItems({
          items: rows.slice(0, 100).map((r) =>
            Errors.InvalidItem.make({ index: Number(r.idx), key: r.key, reason: "duplicate item key" })
          ),
          count: rows.reduce((n, r) => n + Number(r.n) - 1, 0)
        })
      })

    /** Gives each child its totals and its creation event (its first sequence). */
    const finishChildren = <E, R>(input: CreateInput<E, R>, ids: ReadonlyArray<Ids.BatchId>, total: number) =>
      Effect.gen(function*() {
        const size = input.config.batchSize
        const base = yield* Effect.orDie(encodeBatchDraft(input.childEvent(0)))
        const payloads = ids.map((_, i) => JSON.stringify({ ...base.payload, total: Math.min(size, total - i * size) }))
        yield* sql`UPDATE ${batches} SET total = LEAST(${size}::int, ${total}::int - campaign_index * ${size}::int),
            queued = LEAST(${size}::int, ${total}::int - campaign_index * ${size}::int), seq = 1
          WHERE campaign_id = ${input.id}::uuid`
        for (let from = 0; from < ids.length; from += insertChunkSize) {
          yield* sql`INSERT INTO ${batchEvents} (batch_id, seq, tag, payload, at_ms)
            SELECT x.id, 1, ${base.tag}, x.payload::jsonb, ${input.now}
            FROM unnest(${ids.slice(from, from + insertChunkSize)}::uuid[], ${
            payloads.slice(from, from + insertChunkSize)
          }::text[]) AS x(id, payload)`
        }
      })

    const create = <E, R>(input: CreateInput<E, R>) =>
      Effect.gen(function*() {
        const state = yield* Effect.orDie(encodeState(input.state))
        const config = yield* Effect.orDie(encodeConfig(input.config))
        const inserted = yield* sql<{ id: string }>`
          INSERT INTO ${campaigns} (id, tenant, workflow, idempotency_key, state_tag, state, config, round,
            created_at_ms, updated_at_ms)
          VALUES (${input.id}::uuid, ${input.tenant}, ${input.workflow}, ${Option.getOrNull(input.idempotencyKey)},
            ${input.state._tag}, ${JSON.stringify(state)}::text::jsonb, ${JSON.stringify(config)}::text::jsonb,
            ${roundOf(input.state) ?? 1}, ${input.now}, ${input.now})
          ON CONFLICT DO NOTHING
          RETURNING id::text AS id`
        if (inserted.length === 0) {
          const existing = yield* Option.match(input.idempotencyKey, {
            onNone: () => Effect.succeedNone,
            onSome: (key) => selectOne(sql`tenant = ${input.tenant} AND idempotency_key = ${key}`)
          })
          return yield* Option.match(existing, {
            onNone: () => Effect.dieMessage(`campaign ${input.id} already exists`),
            onSome: (record) => Effect.succeed({ record, created: false })
          })
        }
        const size = input.config.batchSize
        const ids: Array<Ids.BatchId> = []
        const total = yield* input.items.pipe(
          Stream.grouped(insertChunkSize),
          Stream.runFoldEffect(0, (offset, group) =>
            Effect.gen(function*() {
              const chunk = Chunk.toReadonlyArray(group)
              yield* insertChildren(input, ids.length, Math.floor((offset + chunk.length - 1) / size), ids)
              yield* insertItems(ids, size, offset, chunk)
              return offset + chunk.length
            }))
        )
        yield* checkUniqueKeys(input.id, size)
        yield* finishChildren(input, ids, total)
        yield* sql`UPDATE ${campaigns} SET total = ${total}, batch_count = ${ids.length} WHERE id = ${input.id}::uuid`
        yield* append(input.id, input.events(total, ids.length), input.now)
        const record = yield* Effect.flatten(getAnyTenant(input.id)).pipe(Effect.orDie)
        return { record, created: true, batchIds: ids as ReadonlyArray<Ids.BatchId> }
      }).pipe(sql.withTransaction, Effect.withSpan("CampaignRepo.create", { attributes: { campaignId: input.id } }))

    /** Stores a new state and its events, if the campaign is still at `expectedVersion`. */
    const changeState = (input: ChangeInput) =>
      Effect.gen(function*() {
        const state = yield* encodeState(input.state)
        const config = input.config === undefined ? undefined : yield* encodeConfig(input.config)
        const updated = yield* sql<{ id: string }>`
          UPDATE ${campaigns} SET state_tag = ${input.state._tag}, state = ${JSON.stringify(state)}::text::jsonb,
            version = version + 1, updated_at_ms = ${input.now},
            round = COALESCE(${roundOf(input.state)}::int, round),
            hook_state = COALESCE(${input.hookState ?? null}::text, hook_state)
            ${config === undefined ? sql`` : sql`, config = ${JSON.stringify(config)}::text::jsonb`}
          WHERE id = ${input.campaignId}::uuid AND tenant = ${input.tenant} AND version = ${input.expectedVersion}
          RETURNING id::text AS id`
        if (updated.length === 0) {
          const exists = yield* get(input.tenant, input.campaignId)
          return yield* Option.isSome(exists)
            ? Effect.fail(
              new Errors.VersionConflict({
                // the conflict names the campaign's id in the batch id's place: both are UUIDs
                batchId: Schema.decodeSync(Errors.VersionConflict.fields.batchId)(input.campaignId),
                expectedVersion: input.expectedVersion
              })
            )
            : Effect.fail(new CampaignErrors.CampaignNotFound({ campaignId: input.campaignId }))
        }
        yield* append(input.campaignId, input.events, input.now)
        return yield* Effect.flatten(getAnyTenant(input.campaignId)).pipe(Effect.orDie)
      }).pipe(
        sql.withTransaction,
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("CampaignRepo.changeState", { attributes: { campaignId: input.campaignId } })
      )

    const list = (tenant: Ids.TenantId, options: {
      readonly state?: CampaignState.Tag | undefined
      readonly limit: number
      readonly cursor?: string | undefined
    }) =>
      listPage(
        sql,
        options,
        (after, limit) =>
          sql`
          SELECT ${sql.literal(campaignColumns)} FROM ${campaigns}
          WHERE tenant = ${tenant}
          ${options.state === undefined ? sql`` : sql`AND state_tag = ${options.state}`}
          ${after}
          ORDER BY created_at_ms DESC, id DESC
          LIMIT ${limit}`.pipe(Effect.flatMap(decodeRows)),
        decodeRecord
      ).pipe(Effect.catchTag("ParseError", Effect.die), Effect.withSpan("CampaignRepo.list"))

    /**
     * Campaigns the runner looks after: running or paused, with a pending hook, or stopped with
     * children still to stop or to settle.
     */
    const active = (limit: number) =>
      sql<{ id: string }>`SELECT c.id::text AS id FROM ${campaigns} c
        WHERE c.state_tag IN ('Running', 'Paused') OR c.hook_state = 'pending'
          OR (c.state_tag IN ('Failed', 'Cancelled') AND EXISTS (SELECT 1 FROM ${batches} b
            WHERE b.campaign_id = c.id AND (b.state_tag IN ('Running', 'Paused', 'AwaitingReview')
              OR (c.state_tag = 'Cancelled' AND b.state_tag = 'Pending'))))
        LIMIT ${limit}`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({ id: CampaignId.CampaignId })))),
        Effect.map((rows) => rows.map((r) => r.id)),
        Effect.catchTag("ParseError", Effect.die)
      )

    /** The campaign a batch belongs to, if any. */
    const campaignOf = (batchId: Ids.BatchId) =>
      sql<{ id: string | null }>`SELECT campaign_id::text AS id FROM ${batches} WHERE id = ${batchId}::uuid`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]?.id)),
        Effect.flatMap(Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (id) => Effect.asSome(Schema.decodeUnknown(CampaignId.CampaignId)(id))
        })),
        Effect.catchTag("ParseError", Effect.die)
      )

    /** Marks the campaign's pending hook done (run it first, in the same transaction). */
    const markHookDone = (id: CampaignId.CampaignId) =>
      sql`UPDATE ${campaigns} SET hook_state = 'done' WHERE id = ${id}::uuid`.pipe(Effect.asVoid)

    return {
      get,
      getOrFail,
      getAnyTenant,
      lock,
      append,
      readAfter,
      create,
      changeState,
      list,
      active,
      campaignOf,
      markHookDone,
      children
    } as const
  })
}) {}

/** @since 0.4.0 */
export type { CampaignRecord } from "./CampaignRecord.js"
