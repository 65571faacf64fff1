/**
 * `<prefix>commit`: the group commit of one process's runner, in one statement and one transaction:
 * the start marks (leased → running), the outcomes (running → their state), both fenced by lease
 * owner and attempt; the batch's counters; the events of what was recorded, numbered by
 * `append_events`; and the owner's share, renewed. Returns which entries were recorded and the
 * batch's counters afterwards, or NULL when the batch does not exist.
 *
 * Completed durable steps are stored first (fenced like the outcomes: the attempt must still be this
 * owner's), each once: a step another attempt stored first is kept, and this one's event dropped.
 * A start mark and the outcome of the same attempt may arrive in one group (`sidx` names the mark):
 * then the outcome moves the item from leased to its state in one update, and the mark counts as
 * recorded. Outcomes are applied first, the remaining marks after.
 * Each entry finds its row by primary key in a `LATERAL` subquery (which the planner cannot turn into
 * a join over the whole batch) and the update joins on the row's `ctid`: one index lookup per entry,
 * whatever the table's statistics say.
 *
 * @since 0.2.0
 */
import type { TableNames } from "../Tables.js"
import { outcomeColumns, recordset, startColumns, stepColumns } from "./Contract.js"

/**
 * The variables `recordOutcomes` and `outcomeCounters` use, for a function's `DECLARE`.
 *
 * @since 0.4.0
 */
export const outcomeVariables = `v_marked int := 0; v_applied int[] := '{}'; v_direct int[] := '{}';
    v_done int := 0; v_ok int := 0; v_retry int := 0; v_failed int := 0; v_quarantined int := 0;
    v_last_ok int; v_tail int := 0;`

/**
 * Records the outcomes of `p_outcomes` (rows of `outcomeColumns`) whose attempt `p_owner` still
 * holds: running, or leased with its start mark in the same group (`sidx`). What was recorded lands in
 * `v_applied` (their indexes), `v_direct` (the start marks applied with them) and the counts.
 *
 * @since 0.4.0
 */
export const recordOutcomes = (t: TableNames): string =>
  `IF jsonb_array_length(p_outcomes) > 0 THEN
      WITH x AS (
        SELECT * FROM jsonb_to_recordset(p_outcomes) AS x(${recordset(outcomeColumns)})
      ), hit AS (
        SELECT x.*, h.tid, h.prev FROM x, LATERAL (
          SELECT ctid AS tid, state AS prev FROM ${t.items}
          WHERE batch_id = p_batch AND key = x.key AND lease_owner = p_owner AND attempt = x.attempt
            AND (state = 'running' OR (state = 'leased' AND x.sidx IS NOT NULL))
          LIMIT 1
        ) h
      ), upd AS (
        UPDATE ${t.items} i SET state = hit.state, output = hit.output,
          last_error = COALESCE(hit.error, i.last_error), due_at_ms = hit.due_at_ms, consumed = hit.consumed,
          throttles = hit.throttles, rounds_failed = hit.rounds_failed, reason = hit.reason, lease_owner = NULL,
          finished_at_ms = p_now, duration_ms = hit.duration_ms, started_at_ms = COALESCE(hit.at_ms, i.started_at_ms)
        FROM hit WHERE i.ctid = hit.tid
        RETURNING hit.idx, hit.state, hit.fail, CASE WHEN hit.prev = 'leased' THEN hit.sidx END AS sidx
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
        COALESCE(array_agg(upd.idx), '{}'), COALESCE(array_agg(upd.sidx) FILTER (WHERE upd.sidx IS NOT NULL), '{}')
      INTO v_done, v_ok, v_retry, v_failed, v_quarantined, v_last_ok, v_tail, v_applied, v_direct
      FROM upd CROSS JOIN ok;
    END IF;`

/**
 * Moves the batch's counters by the start marks (`v_marked`) and outcomes recorded.
 *
 * @since 0.4.0
 */
export const outcomeCounters = (t: TableNames): string =>
  `IF v_marked > 0 OR v_done > 0 THEN
      UPDATE ${t.batches} SET leased = leased - v_marked - cardinality(v_direct),
        running = running + v_marked - (v_done - cardinality(v_direct)),
        succeeded = succeeded + v_ok, retry_scheduled = retry_scheduled + v_retry, failed = failed + v_failed,
        quarantined = quarantined + v_quarantined,
        consecutive_failures = CASE WHEN v_last_ok IS NULL THEN consecutive_failures + v_tail ELSE v_tail END
      WHERE id = p_batch;
    END IF;`

/**
 * The batch's counters, state and version from its row `b`, as `jsonb_build_object` arguments.
 *
 * @since 0.4.0
 */
export const countersJson = `'total', b.total, 'queued', b.queued, 'leased', b.leased, 'running', b.running,
      'retry_scheduled', b.retry_scheduled, 'succeeded', b.succeeded, 'failed', b.failed,
      'quarantined', b.quarantined, 'skipped', b.skipped, 'consecutive_failures', b.consecutive_failures,
      'state_tag', b.state_tag, 'version', b.version`

/** @since 0.2.0 */
export const commit = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}commit(
    p_batch uuid, p_owner text, p_now bigint, p_lease_until bigint, p_executing int, p_wanted int,
    p_started jsonb, p_outcomes jsonb, p_events jsonb, p_steps jsonb
  ) RETURNS jsonb LANGUAGE plpgsql
  SET plan_cache_mode = force_generic_plan SET enable_bitmapscan = off SET enable_hashjoin = off
  SET enable_mergejoin = off SET enable_memoize = off
  AS $fn$
  DECLARE
    v_tag text; v_concurrency int; v_started int[] := '{}'; v_steps int[] := '{}'; v_seq int; v_slots int;
    b record; ${outcomeVariables}
  BEGIN
    SELECT state_tag, concurrency INTO v_tag, v_concurrency FROM ${t.batches} WHERE id = p_batch FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    IF jsonb_array_length(p_steps) > 0 THEN
      -- The batch row is locked: no other commit of this batch runs, so a step not stored yet is
      -- stored by this statement (each row found by primary key; no join over the group).
      WITH x AS (
        SELECT * FROM jsonb_to_recordset(p_steps) AS x(${recordset(stepColumns)})
      ), ok AS (
        SELECT x.* FROM x, LATERAL (
          SELECT 1 FROM ${t.items}
          WHERE batch_id = p_batch AND key = x.key AND lease_owner = p_owner AND attempt = x.attempt
            AND (state = 'running' OR (state = 'leased' AND x.sidx IS NOT NULL))
          LIMIT 1
        ) fenced
        LEFT JOIN LATERAL (
          SELECT 1 AS found FROM ${t.steps} s
          WHERE s.batch_id = p_batch AND s.item_key = x.key AND s.name = x.name AND s.idx = x.n
          LIMIT 1
        ) stored ON true
        WHERE stored.found IS NULL
      ), ins AS (
        INSERT INTO ${t.steps} (batch_id, item_key, name, idx, ord, attempt, output, at_ms)
        SELECT p_batch, ok.key, ok.name, ok.n,
          (SELECT count(*) FROM ${t.steps} s WHERE s.batch_id = p_batch AND s.item_key = ok.key)
            + row_number() OVER (PARTITION BY ok.key ORDER BY ok.idx) - 1,
          -- a JSON null output arrives as SQL NULL from the record set
          ok.attempt, COALESCE(ok.output, 'null'::jsonb), p_now
        FROM ok
        ON CONFLICT (batch_id, item_key, name, idx) DO NOTHING
      ), counted AS (
        INSERT INTO ${t.stepCounts} AS c (batch_id, name, completed)
        SELECT p_batch, ok.name, count(*)::int FROM ok GROUP BY ok.name
        ON CONFLICT (batch_id, name) DO UPDATE SET completed = c.completed + EXCLUDED.completed
      )
      SELECT COALESCE(array_agg(ok.idx), '{}') INTO v_steps FROM ok;
    END IF;
    ${recordOutcomes(t)}
    IF jsonb_array_length(p_started) > 0 THEN
      WITH s AS (
        SELECT * FROM jsonb_to_recordset(p_started) AS s(${recordset(startColumns)})
      ), hit AS (
        SELECT s.*, h.tid FROM s, LATERAL (
          SELECT ctid AS tid FROM ${t.items}
          WHERE batch_id = p_batch AND key = s.key AND state = 'leased' AND lease_owner = p_owner
            AND attempt = s.attempt
          LIMIT 1
        ) h
      ), upd AS (
        UPDATE ${t.items} i SET state = 'running', started_at_ms = hit.at_ms
        FROM hit WHERE i.ctid = hit.tid
        RETURNING hit.idx
      )
      SELECT COALESCE(array_agg(idx), '{}'), count(*)::int INTO v_started, v_marked FROM upd;
    END IF;
    -- the marks applied with their outcomes count as recorded even when no other mark was sent
    v_started := v_started || v_direct;
    ${outcomeCounters(t)}
    v_seq := ${t.prefix}append_events(p_batch, p_now, p_events, v_started, v_applied, v_steps);
    v_slots := ${t.prefix}share(p_batch, p_owner, p_now, p_lease_until, v_concurrency, v_tag = 'Running',
      p_executing, p_wanted);
    SELECT * INTO b FROM ${t.batches} WHERE id = p_batch;
    RETURN jsonb_build_object('started', to_jsonb(v_started), 'applied', to_jsonb(v_applied), 'seq', v_seq,
      ${countersJson}, 'slots', v_slots);
  END
  $fn$`
