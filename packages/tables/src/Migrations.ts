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
 * The hot path of the worker loop as one server-side function: `<prefix>cycle` records a group of
 * outcomes (fenced by lease owner and attempt, with their events) and claims up to `max` due items
 * within the batch's free global concurrency (with an `ItemStarted` event each), in one round trip and
 * one transaction. PL/pgSQL plans its statements once per session, where a client-side statement would
 * be parsed and planned on every call.
 *
 * The batch row is locked first: cycles on one batch are serialized, so the event sequence stays
 * gapless, the concurrency check sees every other claim, and fresh items are taken in ordinal order
 * from the batch's claim cursor (whatever re-queues an item lowers the cursor below it). Returns NULL
 * when the batch does not exist.
 *
 * Sharing between processes: a process re-claims the capacity its outcomes free in the same statement,
 * so another process would never see free capacity. A claim stopped by the cap (work left) marks the
 * batch `wanted_by` that owner; while the mark is recent, every other process holds at most half of the
 * concurrency (`p_held` is what the caller still runs after this commit), and the mark is cleared once
 * its owner claims what it asked for.
 */
/** How long a process that found no capacity keeps the others at half of it (see `cycle`). */
const fairnessWindowMs = 2_000

const cycleV2 = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}cycle(
    p_batch uuid, p_owner text, p_now bigint, p_lease_until bigint, p_max int, p_held int, p_outcomes jsonb,
    p_events jsonb
  ) RETURNS jsonb LANGUAGE plpgsql
  SET plan_cache_mode = force_generic_plan SET enable_bitmapscan = off SET enable_hashjoin = off
  SET enable_mergejoin = off
  AS $fn$
  DECLARE
    v_concurrency int; v_running int; v_state text; v_version int; v_seq int; v_cursor int; v_next_cursor int;
    v_queued int; v_wanted_by text; v_wanted_at bigint; v_capacity int := 0; v_starved boolean := false;
    v_done int := 0; v_ok int := 0; v_retry int := 0; v_failed int := 0; v_quarantined int := 0;
    v_last_ok int; v_tail int := 0; v_events int := 0; v_applied int[] := '{}';
    v_free int; v_claimed int := 0; v_from_queue int := 0; v_items jsonb := '[]';
    v_has_outcomes boolean := jsonb_array_length(p_outcomes) > 0;
    b record;
  BEGIN
    SELECT concurrency, running, state_tag, version, seq, claim_cursor, queued, wanted_by, wanted_at_ms
      INTO v_concurrency, v_running, v_state, v_version, v_seq, v_cursor, v_queued, v_wanted_by, v_wanted_at
      FROM ${t.batches} WHERE id = p_batch FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    IF v_has_outcomes THEN
      WITH x AS (
        SELECT * FROM jsonb_to_recordset(p_outcomes) AS x(idx int, key text, attempt int, state text, output jsonb,
          error jsonb, due_at_ms bigint, consumed int, throttles int, rounds_failed int, duration_ms float8,
          reason text, fail boolean)
      ), upd AS (
        UPDATE ${t.items} i SET state = x.state, output = x.output, last_error = COALESCE(x.error, i.last_error),
          due_at_ms = x.due_at_ms, consumed = x.consumed, throttles = x.throttles, rounds_failed = x.rounds_failed,
          reason = x.reason, lease_owner = NULL, lease_expires_at_ms = NULL, finished_at_ms = p_now,
          duration_ms = x.duration_ms
        FROM x
        WHERE i.batch_id = p_batch AND i.key = ANY(ARRAY(SELECT key FROM x)) AND i.key = x.key
          AND i.state = 'running' AND i.lease_owner = p_owner AND i.attempt = x.attempt
        RETURNING x.idx, x.state, x.fail
      ), ok AS (
        SELECT max(idx) AS last_ok FROM upd WHERE state = 'succeeded'
      )
      SELECT count(*)::int,
        (count(*) FILTER (WHERE upd.state = 'succeeded'))::int,
        (count(*) FILTER (WHERE upd.state = 'retry'))::int,
        (count(*) FILTER (WHERE upd.state = 'failed'))::int,
        (count(*) FILTER (WHERE upd.state = 'quarantined'))::int,
        max(ok.last_ok),
        (count(*) FILTER (WHERE upd.fail AND upd.idx > COALESCE(ok.last_ok, -1)))::int,
        COALESCE(array_agg(upd.idx), '{}')
      INTO v_done, v_ok, v_retry, v_failed, v_quarantined, v_last_ok, v_tail, v_applied
      FROM upd CROSS JOIN ok;
      IF v_done > 0 THEN
        INSERT INTO ${t.events} (batch_id, seq, tag, payload, at_ms)
        SELECT p_batch, v_seq + row_number() OVER (ORDER BY e.ord), e.tag, e.payload, p_now
        FROM jsonb_to_recordset(p_events) AS e(idx int, ord int, tag text, payload jsonb)
        WHERE e.idx = ANY(v_applied);
        GET DIAGNOSTICS v_events = ROW_COUNT;
      END IF;
    END IF;
    IF p_max > 0 AND v_state = 'Running' THEN
      v_capacity := GREATEST(v_concurrency - (v_running - v_done), 0);
      v_free := LEAST(p_max, v_capacity);
      -- Another process found no capacity lately: hold at most half, so that it gets the rest.
      IF v_wanted_by IS NOT NULL AND v_wanted_by <> p_owner AND v_wanted_at > p_now - ${fairnessWindowMs} THEN
        v_free := LEAST(v_free, GREATEST((v_concurrency + 1) / 2 - p_held, 0));
      END IF;
      IF v_free > 0 THEN
        WITH due AS (
          SELECT key, state FROM ${t.items}
          WHERE batch_id = p_batch AND state = 'retry' AND due_at_ms <= p_now
          ORDER BY due_at_ms LIMIT v_free
          FOR UPDATE SKIP LOCKED
        ), fresh AS (
          SELECT key, state FROM ${t.items}
          WHERE batch_id = p_batch AND state = 'queued' AND ordinal > v_cursor
          ORDER BY ordinal LIMIT GREATEST(v_free - (SELECT count(*) FROM due), 0)
          FOR UPDATE
        ), picked AS (
          SELECT key, state FROM due UNION ALL SELECT key, state FROM fresh
        ), upd AS (
          UPDATE ${t.items} i SET state = 'running', attempt = i.attempt + 1, lease_owner = p_owner,
            lease_expires_at_ms = p_lease_until, started_at_ms = p_now
          FROM picked p
          WHERE i.batch_id = p_batch AND i.key = ANY(ARRAY(SELECT key FROM picked)) AND i.key = p.key
          RETURNING i.key, i.ordinal, i.input, i.attempt, i.consumed, i.throttles, i.round, i.rounds_failed,
            p.state AS prev
        ), ev AS (
          INSERT INTO ${t.events} (batch_id, seq, tag, payload, at_ms)
          SELECT p_batch, v_seq + v_events + row_number() OVER (ORDER BY upd.ordinal), 'ItemStarted',
            jsonb_build_object('itemKey', upd.key, 'attempt', upd.attempt, 'round', upd.round), p_now
          FROM upd
        )
        SELECT count(*)::int, (count(*) FILTER (WHERE prev = 'queued'))::int,
          max(ordinal) FILTER (WHERE prev = 'queued'),
          COALESCE(jsonb_agg(jsonb_build_object('key', key, 'ordinal', ordinal, 'input', input, 'attempt', attempt,
            'consumed', consumed, 'throttles', throttles, 'round', round, 'rounds_failed', rounds_failed)
            ORDER BY ordinal), '[]')
        INTO v_claimed, v_from_queue, v_next_cursor, v_items
        FROM upd;
      END IF;
    END IF;
    -- The cap, not the queue, stopped this claim: ask the processes that hold the capacity for a share.
    v_starved := p_max > 0 AND v_state = 'Running' AND v_claimed < p_max AND v_capacity < p_max
      AND v_queued - v_from_queue > 0;
    IF v_has_outcomes OR v_claimed > 0 OR v_starved OR v_wanted_by = p_owner THEN
      UPDATE ${t.batches} SET running = running - v_done + v_claimed, succeeded = succeeded + v_ok,
        retry_scheduled = retry_scheduled + v_retry - (v_claimed - v_from_queue), failed = failed + v_failed,
        quarantined = quarantined + v_quarantined, queued = queued - v_from_queue,
        seq = seq + v_events + v_claimed, claim_cursor = GREATEST(claim_cursor, COALESCE(v_next_cursor, -1)),
        updated_at_ms = CASE WHEN v_has_outcomes THEN p_now ELSE updated_at_ms END,
        consecutive_failures = CASE WHEN v_last_ok IS NULL THEN consecutive_failures + v_tail ELSE v_tail END,
        wanted_by = CASE WHEN v_starved THEN p_owner WHEN wanted_by = p_owner THEN NULL ELSE wanted_by END,
        wanted_at_ms = CASE WHEN v_starved THEN p_now WHEN wanted_by = p_owner THEN NULL ELSE wanted_at_ms END
      WHERE id = p_batch
      RETURNING * INTO b;
    ELSE
      SELECT * INTO b FROM ${t.batches} WHERE id = p_batch;
    END IF;
    RETURN jsonb_build_object('applied', to_jsonb(v_applied), 'seq', b.seq, 'total', b.total, 'queued', b.queued,
      'running', b.running, 'retry_scheduled', b.retry_scheduled, 'succeeded', b.succeeded, 'failed', b.failed,
      'quarantined', b.quarantined, 'skipped', b.skipped, 'consecutive_failures', b.consecutive_failures,
      'state_tag', b.state_tag, 'version', b.version, 'claimed', v_items);
  END
  $fn$`

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

/** A migration that runs DDL statements in order. */
const statements = (list: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const statement of list) {
      yield* sql.unsafe(statement)
    }
  })

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
    // The last process that found the batch's capacity taken by others, and when (see `cycle`).
    yield* sql.unsafe(`ALTER TABLE ${t.batches} ADD COLUMN wanted_by text, ADD COLUMN wanted_at_ms bigint`)
    yield* sql.unsafe(cycleV2(t))
  }),
  "3_shares": statements(schemaV3(t)),
  "4_steps": statements(schemaV4(t))
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
