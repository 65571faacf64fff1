/**
 * Reading items back: paged listings and results streamed in key order.
 *
 * @since 0.1.0
 */
import { ItemError, ItemState, Views } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ItemStateColumn, itemStateColumns, itemStateTag, Num } from "./internal/Rows.js"
import { Tables } from "./Tables.js"

const ItemRow = Schema.Struct({
  key: Schema.String,
  ordinal: Num,
  round: Num,
  state: ItemStateColumn,
  attempt: Num,
  consumed: Num,
  lease_owner: Schema.NullOr(Schema.String),
  lease_expires_at_ms: Schema.NullOr(Num),
  due_at_ms: Schema.NullOr(Num),
  output: Schema.Unknown,
  last_error: Schema.Unknown,
  reason: Schema.NullOr(Schema.String),
  duration_ms: Schema.NullOr(Num),
  /** the item's stored durable steps (read for pages of items, not for results) */
  steps: Schema.optional(Num)
})
type ItemRow = typeof ItemRow.Type

/** The item columns, with the lease's expiry from its owner's share row. */
const itemColumns = (shares: string) =>
  `key, ordinal, round, state, attempt, consumed, lease_owner,
  (SELECT s.expires_at_ms::float8 FROM ${shares} s WHERE s.batch_id = i.batch_id AND s.owner = i.lease_owner)
    AS lease_expires_at_ms, due_at_ms::float8 AS due_at_ms, output, last_error, reason, duration_ms`

const unknownError = ItemError.ItemError.make({ category: "defect", message: "no error was recorded" })
const decodeError = (u: unknown) =>
  u === null ? Effect.succeed(unknownError) : Schema.decodeUnknown(ItemError.ItemError)(u)

const stateOf = (row: ItemRow) =>
  Effect.gen(function*() {
    switch (row.state) {
      case "queued":
      case "leased":
        return new ItemState.Queued()
      case "running":
        return new ItemState.Running({
          attempt: row.attempt,
          leaseOwner: row.lease_owner ?? "",
          leaseExpiresAt: DateTime.unsafeMake(row.lease_expires_at_ms ?? 0)
        })
      case "retry":
        return new ItemState.RetryScheduled({
          attempt: row.consumed,
          nextAttemptAt: DateTime.unsafeMake(row.due_at_ms ?? 0),
          lastError: yield* decodeError(row.last_error)
        })
      case "succeeded":
        return new ItemState.Succeeded({ attempts: row.consumed, output: row.output })
      case "failed":
        return new ItemState.Failed({ attempts: row.consumed, error: yield* decodeError(row.last_error) })
      case "quarantined":
        return new ItemState.Quarantined({
          attempts: row.consumed,
          reason: row.reason ?? "",
          error: yield* decodeError(row.last_error)
        })
      case "skipped":
        return new ItemState.Skipped({ reason: row.reason === "cancelled" ? "cancelled" : "aborted" })
    }
  })

const toView = (row: ItemRow) =>
  Effect.gen(function*() {
    const key = yield* Schema.decodeUnknown(Views.ItemView.fields.key)(row.key)
    return Views.ItemView.make({
      key,
      ordinal: row.ordinal,
      round: row.round,
      state: yield* stateOf(row),
      ...(row.duration_ms === null ? {} : { durationMs: row.duration_ms }),
      ...(row.steps === undefined || row.steps === 0 ? {} : { steps: row.steps })
    }, true)
  })

const toResult = (row: ItemRow) =>
  Effect.gen(function*() {
    const key = yield* Schema.decodeUnknown(Views.ItemResult.fields.key)(row.key)
    const error = row.last_error === null || row.state === "succeeded"
      ? {}
      : { error: yield* decodeError(row.last_error) }
    return Views.ItemResult.make({
      key,
      state: itemStateTag[row.state],
      ...(row.state === "succeeded" ? { output: row.output } : {}),
      ...error
    }, true)
  })

/**
 * Reads items. Callers check the batch's tenant before reading its items.
 *
 * @since 0.1.0
 */
export class ItemReader extends Effect.Service<ItemReader>()("@effect-batch/ItemReader", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const items = sql(t.items)
    const columns = sql.literal(itemColumns(t.shares))
    const pageColumns = sql.literal(`${itemColumns(t.shares)},
      (SELECT count(*)::int FROM ${t.steps} st WHERE st.batch_id = i.batch_id AND st.item_key = i.key) AS steps`)
    const decodeRows = Schema.decodeUnknown(Schema.Array(ItemRow))

    const page = (batchId: Ids.BatchId, options: {
      readonly state?: ItemState.Tag | undefined
      readonly after?: string | undefined
      readonly limit: number
    }) =>
      sql`SELECT ${pageColumns} FROM ${items} i
        WHERE batch_id = ${batchId}::uuid
        ${options.state === undefined ? sql`` : sql`AND state = ANY(${itemStateColumns[options.state]}::text[])`}
        ${options.after === undefined ? sql`` : sql`AND key > ${options.after}`}
        ORDER BY key LIMIT ${options.limit}`.pipe(Effect.flatMap(decodeRows))

    /** A page of items in key order, filtered by state; the cursor is the last key of the previous page. */
    const list = (batchId: Ids.BatchId, options: {
      readonly state?: ItemState.Tag | undefined
      readonly cursor?: string | undefined
      readonly limit: number
    }) =>
      page(batchId, { state: options.state, after: options.cursor, limit: options.limit + 1 }).pipe(
        Effect.flatMap((rows) =>
          Effect.map(Effect.forEach(rows.slice(0, options.limit), toView), (views) => {
            const last = views[views.length - 1]
            return {
              items: views,
              ...(rows.length > options.limit && last !== undefined ? { nextCursor: last.key } : {})
            }
          })
        ),
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("ItemReader.list", { attributes: { batchId } })
      )

    /** Every item's result, in key order, read in pages of `pageSize`. */
    const results = (batchId: Ids.BatchId, pageSize = 1_000): Stream.Stream<Views.ItemResult, SqlError> =>
      Stream.paginateChunkEffect(
        Option.none<string>(),
        (after) =>
          page(batchId, { after: Option.getOrUndefined(after), limit: pageSize }).pipe(
            Effect.flatMap(Effect.forEach(toResult)),
            Effect.catchTag("ParseError", Effect.die),
            Effect.map((rows) => {
              const last = rows[rows.length - 1]
              return [
                Chunk.fromIterable(rows),
                rows.length < pageSize || last === undefined ? Option.none() : Option.some(Option.some(last.key))
              ] as const
            })
          )
      )

    /** One item, for the worker and for tests. */
    const get = (batchId: Ids.BatchId, key: string) =>
      sql`SELECT ${columns} FROM ${items} i WHERE batch_id = ${batchId}::uuid AND key = ${key}`.pipe(
        Effect.flatMap(decodeRows),
        Effect.flatMap((rows) => rows[0] === undefined ? Effect.succeedNone : Effect.asSome(toView(rows[0]))),
        Effect.catchTag("ParseError", Effect.die)
      )

    /** Throughput and duration statistics of a batch, and its latest errors. */
    const stats = (batchId: Ids.BatchId, options: { readonly now: number; readonly windowMs: number }) =>
      Effect.all({
        summary: sql<{ recent: number; p50: number | null; p95: number | null }>`
          SELECT (count(*) FILTER (WHERE finished_at_ms > ${options.now - options.windowMs}))::int AS recent,
            (percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms))::float8 AS p50,
            (percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms))::float8 AS p95
          FROM ${items}
          WHERE batch_id = ${batchId}::uuid AND state IN ('succeeded', 'failed', 'quarantined')
            AND duration_ms IS NOT NULL`,
        errors: sql<{ key: string; attempt: number; last_error: unknown; at: number | null }>`
          SELECT key, attempt, last_error, finished_at_ms::float8 AS at FROM ${items}
          WHERE batch_id = ${batchId}::uuid AND last_error IS NOT NULL AND state <> 'succeeded'
          ORDER BY finished_at_ms DESC NULLS LAST LIMIT 10`
      }).pipe(
        Effect.flatMap(({ errors, summary }) =>
          Effect.map(
            Effect.forEach(errors, (row) =>
              Effect.all({
                itemKey: Schema.decodeUnknown(Views.RecentError.fields.itemKey)(row.key),
                error: decodeError(row.last_error)
              }).pipe(Effect.map(({ error, itemKey }) =>
                Views.RecentError.make({
                  itemKey,
                  attempt: row.attempt,
                  error,
                  at: DateTime.unsafeMake(row.at ?? 0)
                }, true)
              ))),
            (latestErrors) => ({
              recentlyFinished: summary[0]?.recent ?? 0,
              p50Ms: Option.fromNullable(summary[0]?.p50),
              p95Ms: Option.fromNullable(summary[0]?.p95),
              latestErrors
            })
          )
        ),
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("ItemReader.stats", { attributes: { batchId } })
      )

    return { list, results, get, stats } as const
  })
}) {}
