/**
 * Durable step outputs: what a completed step of an item returned, stored so that a later attempt
 * replays it instead of running it again. Steps are stored by the group commit (`ItemRepo.commit`).
 *
 * @since 0.3.0
 */
import type { Ids } from "@effect-batch/domain"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
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

const StepRow = Schema.Struct({ name: Schema.String, idx: Schema.Number, output: Schema.Unknown })
const decodeSteps = Schema.decodeUnknown(Schema.Array(StepRow))
const decodeCounts = Schema.decodeUnknown(
  Schema.Array(Schema.Struct({ step: Schema.String, completed: Schema.Number }))
)
const decodeDiscarded = Schema.decodeUnknown(
  Schema.Array(Schema.Struct({ key: Schema.String, name: Schema.String, ord: Schema.Number }))
)

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
    const steps = sql(t.steps)
    const stepCounts = sql(t.stepCounts)

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
     * Discards, for each of `keys`, the stored output of the first call of `step` and of every step
     * the item completed after it; gives what each item lost, in completion order.
     */
    const discardFrom = (options: {
      readonly batchId: Ids.BatchId
      readonly keys: ReadonlyArray<string>
      readonly step: string
    }): Effect.Effect<ReadonlyArray<{ readonly key: string; readonly discarded: ReadonlyArray<string> }>, SqlError> =>
      sql`WITH gone AS (
          DELETE FROM ${steps} s USING ${steps} f
          WHERE f.batch_id = ${options.batchId}::uuid AND f.name = ${options.step} AND f.idx = 0
            AND f.item_key IN (SELECT jsonb_array_elements_text(${JSON.stringify(options.keys)}::text::jsonb))
            AND s.batch_id = f.batch_id AND s.item_key = f.item_key AND s.ord >= f.ord
          RETURNING s.item_key AS key, s.name AS name, s.ord AS ord
        ), counted AS (
          UPDATE ${stepCounts} c SET completed = c.completed - d.n
          FROM (SELECT name, count(*)::int AS n FROM gone GROUP BY name) d
          WHERE c.batch_id = ${options.batchId}::uuid AND c.name = d.name
        )
        SELECT key, name, ord FROM gone`.pipe(
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

    /** How many steps the items of a batch have stored, per step name. */
    const countsForBatch = (
      batchId: Ids.BatchId
    ): Effect.Effect<ReadonlyArray<{ readonly step: string; readonly completed: number }>, SqlError> =>
      sql`SELECT name AS step, completed FROM ${stepCounts}
        WHERE batch_id = ${batchId}::uuid AND completed > 0 ORDER BY name`.pipe(
        Effect.flatMap(decodeCounts),
        Effect.catchTag("ParseError", Effect.die)
      )

    return { load, discardFrom, countsForBatch } as const
  })
}) {}
