/**
 * Giving leases back. `<prefix>release` returns items an owner holds to the queue at once: its
 * leased-but-not-started items (pause, abort, budget exhaustion, shutdown) and attempts it stopped
 * (shutdown), optionally dropping its share row; none of them uses an attempt.
 *
 * Taking back what a dead owner held once its share row has expired is two steps of one
 * transaction: `<prefix>lost_attempts` locks the batch and lists the attempts the owner had started
 * (they are lost, and each counts as used); the caller decides their outcomes with the batch's
 * failure policy (a retry, or a final `worker-lost` failure); `<prefix>reclaim` records those
 * outcomes with their events, puts everything else the owner held back in the queue (a later claim
 * gives it a new attempt number, which fences out the old holder), counts the lost lease on every
 * item it held, and deletes its row.
 *
 * Items that were due retries go back to `retry` (they keep their due time), fresh ones to `queued`,
 * with the claim cursor lowered below them.
 *
 * Lock order: like the claim, the group commit and the commands' bulk changes, each of these locks
 * the batch row before any item row (`lost_attempts` takes it for the whole reclaim transaction), and
 * no statement holds one batch's row while it waits for another's: a reclaim and a group commit of
 * the same batch queue behind each other on the batch row and never deadlock. The item rows need no
 * order of their own, since only the batch row's holder writes them.
 *
 * @since 0.2.0
 */
import type { TableNames } from "../Tables.js"
import { countersJson, outcomeCounters, outcomeVariables, recordOutcomes } from "./Commit.js"
import { claimedColumns, recordset, startColumns } from "./Contract.js"

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

/** The share row of `p_owner` has expired: its items may be taken back. */
const expiredShare = (t: TableNames) =>
  `EXISTS (SELECT 1 FROM ${t.shares} WHERE batch_id = p_batch AND owner = p_owner AND expires_at_ms < p_now)`

/**
 * `<prefix>lost_attempts`: locks the batch row and returns the attempts an owner whose share has
 * expired had started, each as `[claimed item, started_at_ms]` (the item as its claim returned it;
 * an attempt started by an earlier version may have no start time: then `p_now`);
 * an empty array when the share has not expired or the batch does not exist.
 *
 * @since 0.4.0
 */
export const lostAttempts = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}lost_attempts(p_batch uuid, p_owner text, p_now bigint)
  RETURNS jsonb LANGUAGE plpgsql AS $fn$
  BEGIN
    PERFORM 1 FROM ${t.batches} WHERE id = p_batch FOR UPDATE;
    IF NOT FOUND OR NOT ${expiredShare(t)} THEN
      RETURN '[]';
    END IF;
    RETURN (
      SELECT COALESCE(jsonb_agg(jsonb_build_array(
        jsonb_build_array(${claimedColumns.map((c) => `i.${c}`).join(", ")}, false), COALESCE(i.started_at_ms, p_now)
      ) ORDER BY i.ordinal), '[]')
      FROM ${t.items} i WHERE i.batch_id = p_batch AND i.lease_owner = p_owner AND i.state = 'running'
    );
  END
  $fn$`

/**
 * `<prefix>reclaim`: records the outcomes decided for the lost attempts (`p_outcomes`, rows of
 * `outcomeColumns`, with their `p_events`), re-queues the rest of what the owner held and deletes its
 * expired share row. Returns how many items it re-queued, which outcomes it recorded and the batch's
 * counters, or NULL when the share has not expired (or the batch does not exist).
 *
 * @since 0.2.0
 */
export const reclaim = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}reclaim(
    p_batch uuid, p_owner text, p_now bigint, p_outcomes jsonb, p_events jsonb
  ) RETURNS jsonb LANGUAGE plpgsql AS $fn$
  DECLARE
    v_leased int := 0; v_running int := 0; v_fresh int := 0; v_lowest int; v_seq int; b record;
    ${outcomeVariables}
  BEGIN
    PERFORM 1 FROM ${t.batches} WHERE id = p_batch FOR UPDATE;
    IF NOT FOUND OR NOT ${expiredShare(t)} THEN
      DELETE FROM ${t.shares} WHERE batch_id = p_batch AND owner = p_owner AND expires_at_ms < p_now;
      RETURN NULL;
    END IF;
    UPDATE ${t.items} SET lost_leases = lost_leases + 1
      WHERE batch_id = p_batch AND lease_owner = p_owner AND state IN ('leased', 'running');
    ${recordOutcomes(t)}
    ${outcomeCounters(t)}
    v_seq := ${t.prefix}append_events(p_batch, p_now, p_events, '{}', v_applied, '{}');
    ${
    requeueRows(
      t,
      `SELECT ctid AS tid, state AS prev FROM ${t.items}
        WHERE batch_id = p_batch AND lease_owner = p_owner AND state IN ('leased', 'running')`
    )
  };
    DELETE FROM ${t.shares} WHERE batch_id = p_batch AND owner = p_owner;
    SELECT * INTO b FROM ${t.batches} WHERE id = p_batch;
    RETURN jsonb_build_object('requeued', v_leased + v_running, 'applied', to_jsonb(v_applied), 'seq', v_seq,
      ${countersJson});
  END
  $fn$`
