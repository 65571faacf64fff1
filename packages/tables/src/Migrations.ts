/**
 * The library's own migrations, recorded in its own ledger table (`<prefix>migrations`).
 *
 * @since 0.1.0
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type TableNames, Tables } from "./Tables.js"

const schemaV1 = (t: TableNames): ReadonlyArray<string> => [
  `CREATE TABLE ${t.batches} (
    id uuid PRIMARY KEY,
    tenant text NOT NULL,
    workflow text NOT NULL,
    idempotency_key text,
    state_tag text NOT NULL,
    state jsonb NOT NULL,
    config jsonb NOT NULL,
    concurrency int NOT NULL,
    round int NOT NULL DEFAULT 1,
    version int NOT NULL DEFAULT 0,
    seq int NOT NULL DEFAULT 0,
    total int NOT NULL DEFAULT 0,
    queued int NOT NULL DEFAULT 0,
    running int NOT NULL DEFAULT 0,
    retry_scheduled int NOT NULL DEFAULT 0,
    succeeded int NOT NULL DEFAULT 0,
    failed int NOT NULL DEFAULT 0,
    quarantined int NOT NULL DEFAULT 0,
    skipped int NOT NULL DEFAULT 0,
    consecutive_failures int NOT NULL DEFAULT 0,
    hook_state text NOT NULL DEFAULT 'none',
    created_at_ms bigint NOT NULL,
    updated_at_ms bigint NOT NULL
  )`,
  `CREATE UNIQUE INDEX ${t.prefix}batches_idempotency ON ${t.batches} (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL`,
  `CREATE INDEX ${t.prefix}batches_tenant_created ON ${t.batches} (tenant, created_at_ms DESC, id DESC)`,
  `CREATE INDEX ${t.prefix}batches_running ON ${t.batches} (id) WHERE state_tag = 'Running'`,
  // Items are the hot table: no foreign key (a trigger per inserted row), a lower fillfactor so that
  // lease and outcome updates can stay on the same page.
  `CREATE TABLE ${t.items} (
    batch_id uuid NOT NULL,
    key text NOT NULL,
    ordinal int NOT NULL,
    input jsonb NOT NULL,
    state text NOT NULL DEFAULT 'queued',
    attempt int NOT NULL DEFAULT 0,
    consumed int NOT NULL DEFAULT 0,
    throttles int NOT NULL DEFAULT 0,
    round int NOT NULL DEFAULT 1,
    rounds_failed int NOT NULL DEFAULT 0,
    lease_owner text,
    lease_expires_at_ms bigint,
    due_at_ms bigint,
    output jsonb,
    last_error jsonb,
    reason text,
    started_at_ms bigint,
    finished_at_ms bigint,
    duration_ms double precision,
    PRIMARY KEY (batch_id, key)
  ) WITH (fillfactor = 80)`,
  `CREATE INDEX ${t.prefix}items_queued ON ${t.items} (batch_id, ordinal) WHERE state = 'queued'`,
  `CREATE INDEX ${t.prefix}items_retry ON ${t.items} (batch_id, due_at_ms) WHERE state = 'retry'`,
  `CREATE INDEX ${t.prefix}items_leases ON ${t.items} (lease_expires_at_ms) WHERE state = 'running'`,
  `CREATE TABLE ${t.events} (
    batch_id uuid NOT NULL,
    seq int NOT NULL,
    tag text NOT NULL,
    payload jsonb NOT NULL,
    at_ms bigint NOT NULL,
    PRIMARY KEY (batch_id, seq)
  )`
]

/**
 * Every migration, by `<id>_<name>`.
 *
 * @since 0.1.0
 */
export const migrations = (t: TableNames): Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> => ({
  "1_schema": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const statement of schemaV1(t)) {
      yield* sql.unsafe(statement)
    }
  })
})

/**
 * Runs the pending migrations (safe to run from several processes at once: the ledger is locked).
 *
 * @since 0.1.0
 */
export const run = Effect.gen(function*() {
  const t = yield* Tables
  return yield* Migrator.make({})({ loader: Migrator.fromRecord(migrations(t)), table: t.migrations })
}).pipe(Effect.withSpan("Migrations.run"))

/**
 * Runs the migrations when the layer is built.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<never, Migrator.MigrationError | SqlError, SqlClient.SqlClient> = Layer.effectDiscard(
  run
)
