/**
 * Bulk insert of N items: through `BatchRepo.create` (streamed), and, for the database's own limit,
 * the same rows driven directly: a plain multi-row `INSERT … VALUES` and the repository's own statement.
 */
import { BatchConfig, BatchState } from "@effect-batch/domain"
import { BatchRepo, PgliteClient } from "@effect-batch/tables"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type pg from "pg"
import {
  type DbKind,
  freshPostgres,
  itemKey,
  memorySampler,
  migratedEmbedded,
  migratedPostgres,
  newBatchId,
  noopName,
  report,
  since,
  tenant,
  withPg
} from "./Harness.js"

export type InsertVariant = "repo" | "direct-values" | "direct-repo-statement"

const chunkSize = 5_000
const inputOf = (i: number) => ({ title: `Document ${i}`, n: i })

/** The statement `BatchRepo.create` sends per chunk (see `BatchRepo.insertChunk`). */
const repoStatement = (table: string) =>
  `WITH ins AS (
    INSERT INTO ${table} (batch_id, key, ordinal, input)
    SELECT $1::uuid, x.key, $2::int + x.ord::int - 1, x.input::jsonb
    FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS x(key, input, ord)
    ON CONFLICT DO NOTHING
    RETURNING 1
  )
  SELECT count(*)::int AS n FROM ins`

/** A plain multi-row insert of `count` rows starting at `offset`. */
const valuesStatement = (table: string, batchId: string, offset: number, count: number) => {
  const rows: Array<string> = []
  const params: Array<unknown> = [batchId]
  for (let i = 0; i < count; i++) {
    const p = params.length
    rows.push(`($1::uuid, $${p + 1}, $${p + 2}, $${p + 3}::jsonb)`)
    params.push(itemKey(offset + i), offset + i, JSON.stringify(inputOf(offset + i)))
  }
  return { text: `INSERT INTO ${table} (batch_id, key, ordinal, input) VALUES ${rows.join(", ")}`, params }
}

const repoParams = (batchId: string, offset: number, count: number) => {
  const keys: Array<string> = []
  const inputs: Array<string> = []
  for (let i = 0; i < count; i++) {
    keys.push(itemKey(offset + i))
    inputs.push(JSON.stringify(inputOf(offset + i)))
  }
  return [batchId, offset, keys, inputs]
}

/** Sends `total` rows in chunks through `send`, in one transaction. */
const driveDirect = async (
  query: (text: string, params: Array<unknown>) => Promise<unknown>,
  variant: InsertVariant,
  total: number
) => {
  const batchId = newBatchId()
  await query("BEGIN", [])
  for (let offset = 0; offset < total; offset += chunkSize) {
    const count = Math.min(chunkSize, total - offset)
    if (variant === "direct-values") {
      const statement = valuesStatement("effect_batch_items", batchId, offset, count)
      await query(statement.text, statement.params)
    } else {
      await query(repoStatement("effect_batch_items"), repoParams(batchId, offset, count))
    }
  }
  await query("COMMIT", [])
}

const viaRepo = (total: number) =>
  Effect.gen(function*() {
    const repo = yield* BatchRepo.BatchRepo
    const now = Date.now()
    const config = BatchConfig.BatchConfig.make({})
    const { record } = yield* repo.create({
      id: newBatchId(),
      tenant,
      workflow: noopName,
      idempotencyKey: Option.none(),
      config,
      state: new BatchState.Running({ since: DateTime.unsafeMake(now), round: 1 }),
      items: Stream.range(0, total - 1).pipe(Stream.map((i) => ({ key: itemKey(i), input: inputOf(i) }))),
      events: (n) => [{ _tag: "BatchStarted", round: 1 }, { _tag: "BatchResumed", actor: `bench ${n}` }],
      now
    })
    if (record.total !== total) return yield* Effect.dieMessage(`stored ${record.total} of ${total} items`)
  })

/** Runs one insert benchmark on a fresh database and reports items/s and peak memory. */
export const insert = (options: { readonly db: DbKind; readonly variant: InsertVariant; readonly items: number }) =>
  Effect.gen(function*() {
    let run: Effect.Effect<void>
    if (options.db === "postgres") {
      const { url } = yield* freshPostgres
      const context = yield* Layer.build(Layer.provideMerge(BatchRepo.BatchRepo.Default, migratedPostgres(url)))
      run = options.variant === "repo"
        ? Effect.provide(viaRepo(options.items), context).pipe(Effect.orDie)
        : withPg(
          url,
          (client: pg.Client) =>
            driveDirect((text, params) => client.query(text, params), options.variant, options.items)
        )
    } else {
      const context = yield* Layer.build(Layer.provideMerge(BatchRepo.BatchRepo.Default, migratedEmbedded))
      const client = Context.get(context, PgliteClient.PgliteClient)
      run = options.variant === "repo"
        ? Effect.provide(viaRepo(options.items), context).pipe(Effect.orDie)
        : client.withSession((db) =>
          driveDirect((text, params) => db.query(text, params), options.variant, options.items)
        ).pipe(Effect.orDie)
    }
    const memory = memorySampler()
    const start = performance.now()
    yield* run
    const ms = since(start)
    yield* report({
      bench: "insert",
      db: options.db,
      variant: options.variant,
      items: options.items,
      ms,
      extra: { itemsPerSecond: Math.round(options.items / ms * 1000), ...memory.stop() }
    })
  }).pipe(Effect.scoped)
