/**
 * Durable step outputs: what a completed step of an item returned, stored so that a later attempt
 * replays it instead of running it again.
 *
 * @since 0.3.0
 */
import type { Ids } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { EventLog } from "./EventLog.js"
import { Tables } from "./Tables.js"

/**
 * A stored step of an item.
 *
 * @since 0.3.0
 * @category models
 */
export interface StoredStep {
  readonly name: string
  /** the how-many-th call of that name within the item, from 0 */
  readonly index: number
  /** the encoded output */
  readonly output: unknown
}

/**
 * What recording a step gave: the output that counts (the one stored first, if another attempt of
 * the item stored it meanwhile) and, when this call stored it, the sequence of its `StepCompleted`.
 *
 * @since 0.3.0
 * @category models
 */
export interface Recorded {
  readonly output: unknown
  readonly seq: number | undefined
}

const StepRow = Schema.Struct({ name: Schema.String, idx: Schema.Number, output: Schema.Unknown })
const decodeSteps = Schema.decodeUnknown(Schema.Array(StepRow))
const decodeDiscarded = Schema.decodeUnknown(
  Schema.Array(Schema.Struct({ key: Schema.String, name: Schema.String, ord: Schema.Number }))
)
const decodeOrd = Schema.decodeUnknown(Schema.Array(Schema.Struct({ ord: Schema.Number })))

/**
 * The step repository.
 *
 * @since 0.3.0
 * @category services
 */
export class StepRepo extends Effect.Service<StepRepo>()("@effect-batch/StepRepo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables
    const eventLog = yield* EventLog
    const steps = sql(t.steps)

    /** The stored steps of an item, in the order they completed. */
    const load = (batchId: Ids.BatchId, itemKey: string): Effect.Effect<ReadonlyArray<StoredStep>, SqlError> =>
      sql`SELECT name, idx, output FROM ${steps}
        WHERE batch_id = ${batchId}::uuid AND item_key = ${itemKey} ORDER BY ord`.pipe(
        Effect.flatMap(decodeSteps),
        Effect.map((rows) => rows.map((r) => ({ name: r.name, index: r.idx, output: r.output }))),
        Effect.catchTag("ParseError", Effect.die),
        Effect.withSpan("StepRepo.load", { attributes: { batchId } })
      )

    /**
     * Stores a completed step and appends its `StepCompleted` in the same transaction. A step that is
     * already stored (another attempt of the item was first) keeps its output, which is returned.
     */
    const record = (options: {
      readonly batchId: Ids.BatchId
      readonly itemKey: Ids.ItemKey
      readonly name: string
      readonly index: number
      readonly attempt: number
      /** the encoded output, as JSON text */
      readonly outputJson: string
      /** the workflow's declared number of steps */
      readonly of: number | undefined
      readonly now: number
    }): Effect.Effect<Recorded, SqlError> =>
      Effect.gen(function*() {
        const inserted = yield* sql`INSERT INTO ${steps} (batch_id, item_key, name, idx, ord, attempt, output, at_ms)
          SELECT ${options.batchId}::uuid, ${options.itemKey}, ${options.name}, ${options.index},
            (SELECT count(*) FROM ${steps} WHERE batch_id = ${options.batchId}::uuid AND item_key = ${options.itemKey}),
            ${options.attempt}, ${options.outputJson}::text::jsonb, ${options.now}
          ON CONFLICT (batch_id, item_key, name, idx) DO NOTHING
          RETURNING ord`.pipe(Effect.flatMap(decodeOrd), Effect.catchTag("ParseError", Effect.die))
        const row = inserted[0]
        if (row === undefined) {
          const stored = yield* sql`SELECT name, idx, output FROM ${steps}
            WHERE batch_id = ${options.batchId}::uuid AND item_key = ${options.itemKey}
              AND name = ${options.name} AND idx = ${options.index}`.pipe(
            Effect.flatMap(decodeSteps),
            Effect.catchTag("ParseError", Effect.die)
          )
          return { output: stored[0]?.output, seq: undefined }
        }
        const seq = yield* eventLog.append(options.batchId, [{
          _tag: "StepCompleted",
          itemKey: options.itemKey,
          attempt: options.attempt,
          step: options.name,
          index: options.index,
          completed: row.ord + 1,
          ...(options.of === undefined ? {} : { of: options.of })
        }], options.now)
        return { output: JSON.parse(options.outputJson) as unknown, seq }
      }).pipe(
        sql.withTransaction,
        Effect.withSpan("StepRepo.record", { attributes: { batchId: options.batchId, step: options.name } })
      )

    /**
     * Discards, for each of `keys`, the stored output of the first call of `step` and of every step
     * the item completed after it; gives what each item lost, in completion order.
     */
    const discardFrom = (options: {
      readonly batchId: Ids.BatchId
      readonly keys: ReadonlyArray<string>
      readonly step: string
    }): Effect.Effect<ReadonlyArray<{ readonly key: string; readonly discarded: ReadonlyArray<string> }>, SqlError> =>
      sql`DELETE FROM ${steps} s USING ${steps} f
        WHERE f.batch_id = ${options.batchId}::uuid AND f.name = ${options.step} AND f.idx = 0
          AND f.item_key IN (SELECT jsonb_array_elements_text(${JSON.stringify(options.keys)}::text::jsonb))
          AND s.batch_id = f.batch_id AND s.item_key = f.item_key AND s.ord >= f.ord
        RETURNING s.item_key AS key, s.name AS name, s.ord AS ord`.pipe(
        Effect.flatMap(decodeDiscarded),
        Effect.catchTag("ParseError", Effect.die),
        Effect.map((rows) => {
          const byKey = new Map<string, Array<{ readonly name: string; readonly ord: number }>>()
          for (const row of rows) byKey.set(row.key, [...(byKey.get(row.key) ?? []), row])
          return [...byKey].map(([key, list]) => ({
            key,
            discarded: [...list].sort((a, b) => a.ord - b.ord).map((r) => r.name)
          }))
        }),
        Effect.withSpan("StepRepo.discardFrom", { attributes: { batchId: options.batchId, step: options.step } })
      )

    /** How many steps the items of a batch have stored. */
    const countForBatch = (batchId: Ids.BatchId): Effect.Effect<number, SqlError> =>
      sql<{ n: number }>`SELECT count(*)::int AS n FROM ${steps} WHERE batch_id = ${batchId}::uuid`.pipe(
        Effect.map((rows) => Number(rows[0]?.n ?? 0))
      )

    return { load, record, discardFrom, countForBatch } as const
  }),
  dependencies: [EventLog.Default]
}) {}
