/**
 * Giving leases back. `<prefix>release` returns items an owner holds to the queue at once: its
 * leased-but-not-started items (pause, abort, budget exhaustion, shutdown) and attempts it stopped
 * (shutdown), optionally dropping its share row. `<prefix>reclaim` takes back everything a dead owner held once its share row has
 * expired: its leased and running items go back to the queue (a later claim gives them a new attempt
 * number, which fences out the old holder) and its row is deleted.
 *
 * Items that were due retries go back to `retry` (they keep their due time), fresh ones to `queued`,
 * with the claim cursor lowered below them.
 *
 * @since 0.2.0
 */
import type { TableNames } from "../Tables.js"
import { recordset, startColumns } from "./Contract.js"

const requeueCounters = (t: TableNames, leased: string, running: string) =>
  `UPDATE ${t.batches} SET leased = leased - ${leased}, running = running - ${running}, queued = queued + v_fresh,
      retry_scheduled = retry_scheduled + (${leased} + ${running} - v_fresh),
      claim_cursor = LEAST(claim_cursor, COALESCE(v_lowest - 1, claim_cursor))
    WHERE id = p_batch`

/**
 * Puts the rows of `o (tid, prev)` back in the queue (`retry` when they were due retries) and moves
 * the batch's counters and claim cursor; the counts land in `v_leased`, `v_running`.
 */
const requeueRows = (t: TableNames, o: string) =>
  `WITH o AS (${o}), upd AS (
        UPDATE ${t.items} i SET state = CASE WHEN i.due_at_ms IS NULL THEN 'queued' ELSE 'retry' END, lease_owner = NULL
        FROM o WHERE i.ctid = o.tid
        RETURNING i.ordinal, i.due_at_ms IS NULL AS fresh, o.prev
      )
      SELECT (count(*) FILTER (WHERE prev = 'leased'))::int, (count(*) FILTER (WHERE prev = 'running'))::int,
        (count(*) FILTER (WHERE fresh))::int, min(ordinal) FILTER (WHERE fresh)
      INTO v_leased, v_running, v_fresh, v_lowest FROM upd;
      IF v_leased + v_running > 0 THEN
        ${requeueCounters(t, "v_leased", "v_running")};
      END IF`

/** @since 0.2.0 */
export const release = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}release(
    p_batch uuid, p_owner text, p_items jsonb, p_drop_share boolean
  ) RETURNS int LANGUAGE plpgsql AS $fn$
  DECLARE
    v_leased int := 0; v_running int := 0; v_fresh int := 0; v_lowest int; v_total int;
  BEGIN
    PERFORM 1 FROM ${t.batches} WHERE id = p_batch FOR UPDATE;
    IF NOT FOUND THEN
      RETURN 0;
    END IF;
    IF jsonb_array_length(p_items) > 0 THEN
      ${
    requeueRows(
      t,
      `SELECT h.tid, h.prev FROM jsonb_to_recordset(p_items) AS s(${recordset(startColumns)}), LATERAL (
          SELECT ctid AS tid, state AS prev FROM ${t.items}
          WHERE batch_id = p_batch AND key = s.key AND state IN ('leased', 'running') AND lease_owner = p_owner
            AND attempt = s.attempt
          LIMIT 1
        ) h`
    )
  };
    END IF;
    v_total := v_leased + v_running;
    IF p_drop_share THEN
      -- the owner gives up the batch: nothing it still holds may outlive its share row
      v_leased := 0;
      v_running := 0;
      ${
    requeueRows(
      t,
      `SELECT ctid AS tid, state AS prev FROM ${t.items}
        WHERE batch_id = p_batch AND lease_owner = p_owner AND state IN ('leased', 'running')`
    )
  };
      v_total := v_total + v_leased + v_running;
      DELETE FROM ${t.shares} WHERE batch_id = p_batch AND owner = p_owner;
    END IF;
    RETURN v_total;
  END
  $fn$`

/** @since 0.2.0 */
export const reclaim = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}reclaim(p_batch uuid, p_owner text, p_now bigint)
  RETURNS int LANGUAGE plpgsql AS $fn$
  DECLARE
    v_leased int := 0; v_running int := 0; v_fresh int := 0; v_lowest int;
  BEGIN
    PERFORM 1 FROM ${t.batches} WHERE id = p_batch FOR UPDATE;
    IF FOUND THEN
      PERFORM 1 FROM ${t.shares} WHERE batch_id = p_batch AND owner = p_owner AND expires_at_ms < p_now;
      IF NOT FOUND THEN
        RETURN 0;
      END IF;
      ${
    requeueRows(
      t,
      `SELECT ctid AS tid, state AS prev FROM ${t.items}
        WHERE batch_id = p_batch AND lease_owner = p_owner AND state IN ('leased', 'running')`
    )
  };
    END IF;
    DELETE FROM ${t.shares} WHERE batch_id = p_batch AND owner = p_owner AND expires_at_ms < p_now;
    RETURN v_leased + v_running;
  END
  $fn$`
