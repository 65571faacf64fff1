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
import * as HotSql from "./HotSql.js"
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
 * Slot shares and HOT-able items: a process's lease and its share of a batch's concurrency live in
 * one `shares` row per (batch, owner), so that claims, starts and outcomes change no indexed column of
 * an item (no index predicate mentions `state`; the queue is read by the claim cursor over a plain
 * `(batch_id, ordinal)` index, retries through `due_at_ms`). Items leased ahead but not started are
 * `leased`. The hot statements themselves are installed by `HotSql`, not here.
 */
const schemaV3 = (t: TableNames): ReadonlyArray<string> => [
  `CREATE TABLE ${t.shares} (
    batch_id uuid NOT NULL,
    owner text NOT NULL,
    slots int NOT NULL,
    wanted int NOT NULL,
    executing int NOT NULL,
    expires_at_ms bigint NOT NULL,
    PRIMARY KEY (batch_id, owner)
  )`,
  // the leases of items running under the previous version become their owners' share rows
  `INSERT INTO ${t.shares} (batch_id, owner, slots, wanted, executing, expires_at_ms)
    SELECT batch_id, lease_owner, count(*)::int, 0, count(*)::int, max(lease_expires_at_ms) FROM ${t.items}
    WHERE state = 'running' AND lease_owner IS NOT NULL GROUP BY batch_id, lease_owner`,
  `ALTER TABLE ${t.batches} ADD COLUMN leased int NOT NULL DEFAULT 0`,
  `ALTER TABLE ${t.batches} DROP COLUMN wanted_by, DROP COLUMN wanted_at_ms`,
  `DROP FUNCTION IF EXISTS ${t.prefix}cycle(uuid, text, bigint, bigint, int, int, jsonb, jsonb)`,
  `DROP INDEX ${t.prefix}items_queued`,
  `DROP INDEX ${t.prefix}items_retry`,
  `DROP INDEX ${t.prefix}items_leases`,
  `ALTER TABLE ${t.items} DROP COLUMN lease_expires_at_ms`,
  `UPDATE ${t.items} SET due_at_ms = NULL WHERE state <> 'retry' AND due_at_ms IS NOT NULL`,
  `CREATE INDEX ${t.prefix}items_ordinal ON ${t.items} (batch_id, ordinal)`,
  `CREATE INDEX ${t.prefix}items_due ON ${t.items} (batch_id, due_at_ms) WHERE due_at_ms IS NOT NULL`,
  `ALTER TABLE ${t.items} SET (fillfactor = 70)`
]

// One row per completed step of an item: (name, idx) is the step's name and the how-many-th call of
// that name within the item; `ord` is the order in which the item's steps completed.
const schemaV4 = (t: TableNames): ReadonlyArray<string> => [
  `CREATE TABLE ${t.steps} (
    batch_id uuid NOT NULL,
    item_key text NOT NULL,
    name text NOT NULL,
    idx int NOT NULL,
    ord int NOT NULL,
    attempt int NOT NULL,
    output jsonb NOT NULL,
    at_ms bigint NOT NULL,
    PRIMARY KEY (batch_id, item_key, name, idx)
  )`
]

/**
 * Campaigns: their rows and events, and the link from a child batch to its campaign (`campaign_id`,
 * `campaign_index`). Which children are done is read from their state; `campaign_reported` is the
 * round whose settlement the campaign has announced, `campaign_requeue` the item states a redrive of
 * the campaign will re-queue when it starts that child again.
 */
const schemaV6 = (t: TableNames): ReadonlyArray<string> => [
  `CREATE TABLE ${t.campaigns} (
    id uuid PRIMARY KEY,
    tenant text NOT NULL,
    workflow text NOT NULL,
    idempotency_key text,
    state_tag text NOT NULL,
    state jsonb NOT NULL,
    config jsonb NOT NULL,
    total int NOT NULL DEFAULT 0,
    batch_count int NOT NULL DEFAULT 0,
    round int NOT NULL DEFAULT 1,
    version int NOT NULL DEFAULT 0,
    seq int NOT NULL DEFAULT 0,
    hook_state text NOT NULL DEFAULT 'none',
    created_at_ms bigint NOT NULL,
    updated_at_ms bigint NOT NULL
  )`,
  `CREATE UNIQUE INDEX ${t.prefix}campaigns_idempotency ON ${t.campaigns} (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL`,
  `CREATE INDEX ${t.prefix}campaigns_tenant_created ON ${t.campaigns} (tenant, created_at_ms DESC, id DESC)`,
  `CREATE INDEX ${t.prefix}campaigns_state ON ${t.campaigns} (state_tag)`,
  `CREATE TABLE ${t.campaignEvents} (
    campaign_id uuid NOT NULL,
    seq int NOT NULL,
    tag text NOT NULL,
    payload jsonb NOT NULL,
    at_ms bigint NOT NULL,
    PRIMARY KEY (campaign_id, seq)
  )`,
  `ALTER TABLE ${t.batches} ADD COLUMN campaign_id uuid, ADD COLUMN campaign_index int,
    ADD COLUMN campaign_reported int NOT NULL DEFAULT 0, ADD COLUMN campaign_requeue jsonb`,
  `CREATE UNIQUE INDEX ${t.prefix}batches_campaign ON ${t.batches} (campaign_id, campaign_index)
    WHERE campaign_id IS NOT NULL`
]

/**
 * How many times an item was held by an owner whose lease expired (its process died or hung): a
 * later attempt of such an item has its start recorded before it runs, so that losing it again
 * counts as a used attempt.
 */
const schemaV7 = (t: TableNames): ReadonlyArray<string> => [
  `ALTER TABLE ${t.items} ADD COLUMN lost_leases int NOT NULL DEFAULT 0`
]

/**
 * Slowdown trends: one row per sampled window of a batch (tenant-scoped like its batch), and on the
 * batch row the sampling cursor (the end of the last window and the event sequence it reached), the
 * baseline once established, and whether the batch is slow now. Windows are kept as long as their
 * batch (batches are never deleted).
 */
const schemaV9 = (t: TableNames): ReadonlyArray<string> => [
  `CREATE TABLE ${t.trends} (
    batch_id uuid NOT NULL,
    tenant text NOT NULL,
    at_ms bigint NOT NULL,
    span_ms bigint NOT NULL CHECK (span_ms > 0),
    completed int NOT NULL,
    p95_ms double precision,
    backlog int NOT NULL,
    PRIMARY KEY (batch_id, at_ms)
  )`,
  `ALTER TABLE ${t.batches} ADD COLUMN trend_at_ms bigint, ADD COLUMN trend_seq int NOT NULL DEFAULT 0,
    ADD COLUMN trend_baseline jsonb, ADD COLUMN slow boolean NOT NULL DEFAULT false`,
  `CREATE INDEX ${t.prefix}batches_slow ON ${t.batches} (state_tag) WHERE slow`
]

/** A migration that runs DDL statements in order. */
const statements = (list: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const statement of list) {
      yield* sql.unsafe(statement)
    }
  })

// Shared rate limiters. A permit row is a block of permits reserved by one process at
// `granted_at_ms`, usable until `usable_until_ms`; every permit of the block counts against the limit
// until `expires_at_ms`: the end of the block's use plus the interval while it is reserved, the last
// use plus the interval once the process has reported how many it used (`settled`).
const schemaV5 = (t: TableNames): ReadonlyArray<string> => [
  `CREATE TABLE ${t.limiters} (
    tenant text NOT NULL,
    name text NOT NULL,
    permits int NOT NULL CHECK (permits > 0),
    interval_ms bigint NOT NULL CHECK (interval_ms > 0),
    held_until_ms bigint NOT NULL DEFAULT 0,
    throttles bigint NOT NULL DEFAULT 0,
    last_throttled_at_ms bigint,
    created_at_ms bigint NOT NULL,
    updated_at_ms bigint NOT NULL,
    PRIMARY KEY (tenant, name)
  )`,
  `CREATE TABLE ${t.permits} (
    id bigserial PRIMARY KEY,
    tenant text NOT NULL,
    name text NOT NULL,
    owner text NOT NULL,
    count int NOT NULL CHECK (count > 0),
    granted_at_ms bigint NOT NULL,
    usable_until_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    settled boolean NOT NULL DEFAULT false,
    FOREIGN KEY (tenant, name) REFERENCES ${t.limiters} (tenant, name) ON DELETE CASCADE
  )`,
  `CREATE INDEX ${t.prefix}permits_window ON ${t.permits} (tenant, name, expires_at_ms)`,
  `CREATE TABLE ${t.limiterUsers} (
    tenant text NOT NULL,
    name text NOT NULL,
    owner text NOT NULL,
    effective_concurrency int NOT NULL,
    seen_at_ms bigint NOT NULL,
    PRIMARY KEY (tenant, name, owner),
    FOREIGN KEY (tenant, name) REFERENCES ${t.limiters} (tenant, name) ON DELETE CASCADE
  )`,
  `CREATE TABLE ${t.streams} (
    tenant text NOT NULL,
    owner text NOT NULL,
    open int NOT NULL CHECK (open >= 0),
    version bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    PRIMARY KEY (tenant, owner)
  )`
]

// How many steps of each name a batch's items have stored: progress reads this row per step name
// instead of counting the step rows. Filled from the rows stored before it existed.
const schemaV8 = (t: TableNames): ReadonlyArray<string> => [
  `CREATE TABLE ${t.stepCounts} (
    batch_id uuid NOT NULL,
    name text NOT NULL,
    completed int NOT NULL,
    PRIMARY KEY (batch_id, name)
  )`,
  `INSERT INTO ${t.stepCounts} (batch_id, name, completed)
    SELECT batch_id, name, count(*)::int FROM ${t.steps} GROUP BY batch_id, name`
]

/**
 * Every migration, by `<id>_<name>`.
 *
 * @since 0.1.0
 */
export const migrations = (t: TableNames): Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> => ({
  "1_schema": statements(schemaV1(t)),
  "2_cycle": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // Every queued item of a batch has an ordinal above its claim cursor: claims start there instead
    // of stepping over the index entries of every item claimed before (a queue's dead prefix).
    yield* sql.unsafe(`ALTER TABLE ${t.batches} ADD COLUMN claim_cursor int NOT NULL DEFAULT -1`)
    // Columns of the `cycle` function this migration once installed (for the fairness of a claim
    // stopped by the cap); migration 3 drops the function and the columns. The hot statements are
    // installed at start (`HotSql`), not by migrations.
    yield* sql.unsafe(`ALTER TABLE ${t.batches} ADD COLUMN wanted_by text, ADD COLUMN wanted_at_ms bigint`)
  }),
  "3_shares": statements(schemaV3(t)),
  "4_steps": statements(schemaV4(t)),
  "5_limiters": statements(schemaV5(t)),
  "6_campaigns": statements(schemaV6(t)),
  "7_lost_leases": statements(schemaV7(t)),
  "8_step_counts": statements(schemaV8(t)),
  "9_trends": statements(schemaV9(t))
})

/**
 * Runs the pending migrations, then installs the hot statements (`HotSql`). Safe to run from several
 * processes at once: the ledger is locked, and so is the installation.
 *
 * @since 0.1.0
 */
export const run = Effect.gen(function*() {
  const t = yield* Tables
  const applied = yield* Migrator.make({})({ loader: Migrator.fromRecord(migrations(t)), table: t.migrations })
  yield* HotSql.install
  return applied
}).pipe(Effect.withSpan("Migrations.run"))

/**
 * Runs the migrations when the layer is built.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<never, Migrator.MigrationError | SqlError, SqlClient.SqlClient> = Layer.effectDiscard(
  run
)
