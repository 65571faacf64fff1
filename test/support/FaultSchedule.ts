/**
 * The fault suite's schedule: a small seeded PRNG (mulberry32) and the kill moments drawn from it
 * before anything runs, so one seed gives one schedule whatever order the processes finish in.
 */
import { Ids } from "@effect-batch/domain"
import { Tables } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { caller } from "./Harness.js"

/** The seed: `FAULT_SEED` or a fixed default. */
export const faultSeed = Config.integer("FAULT_SEED").pipe(Config.withDefault(20_261_202), Effect.orDie)

/** mulberry32: a deterministic generator of numbers in [0, 1). */
export const prng = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/** An integer in [low, high). */
export const between = (random: () => number, low: number, high: number): number =>
  low + Math.floor(random() * (high - low))

const BatchRow = Schema.Struct({ id: Ids.BatchId, total: Schema.Number, items: Schema.Number })

/** The caller's batches as stored: each row's `total` and how many item rows it has. */
export const storedBatches = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const t = yield* Tables.Tables
  return yield* sql`SELECT b.id::text AS id, b.total,
      (SELECT count(*)::int FROM ${sql(t.items)} i WHERE i.batch_id = b.id) AS items
    FROM ${sql(t.batches)} b WHERE b.tenant = ${caller.tenant} ORDER BY b.created_at_ms, b.id`.pipe(
    Effect.flatMap(Schema.decodeUnknown(Schema.Array(BatchRow)))
  )
}).pipe(Effect.orDie)

const Outcomes = Schema.Struct({ lost: Schema.Number, duplicated: Schema.Number })

/**
 * A batch's items without a final outcome event (`lost`) and with more than one `ItemSucceeded`
 * (`duplicated`).
 */
export const outcomes = (batchId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    const rows = yield* sql`
      WITH final AS (
        SELECT payload->>'itemKey' AS key, count(*) FILTER (WHERE tag = 'ItemSucceeded')::int AS ok
        FROM ${sql(t.events)}
        WHERE batch_id = ${batchId}::uuid AND tag IN ('ItemSucceeded', 'ItemFailed', 'ItemQuarantined', 'ItemSkipped')
        GROUP BY 1
      )
      SELECT
        (SELECT count(*)::int FROM ${sql(t.items)} i WHERE i.batch_id = ${batchId}::uuid
          AND NOT EXISTS (SELECT 1 FROM final f WHERE f.key = i.key)) AS lost,
        (SELECT count(*)::int FROM final WHERE ok > 1) AS duplicated
    `.pipe(Effect.flatMap(Schema.decodeUnknown(Schema.Array(Outcomes))))
    return yield* Effect.fromNullable(rows[0])
  }).pipe(Effect.orDie)
