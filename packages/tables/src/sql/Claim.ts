/**
 * `<prefix>claim`: leases up to `p_max` due items of a running batch to an owner, ahead of execution:
 * retries that are due first, then queued items in ordinal order from the batch's claim cursor. A
 * leased item is `leased` (shown as queued) until its start mark is committed; its attempt number is
 * bumped (the fencing token). The same statement renews the owner's share. Returns NULL when the
 * batch does not exist.
 *
 * Every writer of a batch's items locks the batch row first, so claims need no item locks and take
 * items in order; the batch's counters move in the same statement.
 *
 * @since 0.2.0
 */
import type { TableNames } from "../Tables.js"
import { claimedColumns } from "./Contract.js"

/** @since 0.2.0 */
export const claim = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}claim(
    p_batch uuid, p_owner text, p_now bigint, p_lease_until bigint, p_max int, p_executing int, p_wanted int
  ) RETURNS jsonb LANGUAGE plpgsql
  SET plan_cache_mode = force_generic_plan SET enable_bitmapscan = off SET enable_hashjoin = off
  SET enable_mergejoin = off SET enable_memoize = off
  AS $fn$
  DECLARE
    b record; v_slots int := 0; v_n int := 0; v_fresh int := 0; v_next int; v_items jsonb := '[]';
    v_more boolean := false;
  BEGIN
    SELECT state_tag, version, concurrency, claim_cursor, queued, retry_scheduled INTO b
      FROM ${t.batches} WHERE id = p_batch FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    v_slots := ${t.prefix}share(p_batch, p_owner, p_now, p_lease_until, b.concurrency, b.state_tag = 'Running',
      p_executing, p_wanted);
    IF b.state_tag = 'Running' AND p_max > 0 THEN
      WITH due AS (
        SELECT ctid AS tid FROM ${t.items}
        WHERE batch_id = p_batch AND due_at_ms <= p_now AND state = 'retry'
        ORDER BY due_at_ms LIMIT p_max
      ), fresh AS (
        SELECT ctid AS tid FROM ${t.items}
        WHERE batch_id = p_batch AND ordinal > b.claim_cursor AND state = 'queued'
        ORDER BY ordinal LIMIT GREATEST(p_max - (SELECT count(*) FROM due), 0)
      ), picked AS (
        SELECT tid FROM due UNION ALL SELECT tid FROM fresh
      ), upd AS (
        UPDATE ${t.items} i SET state = 'leased', attempt = i.attempt + 1, lease_owner = p_owner
        FROM picked p
        WHERE i.ctid = p.tid
        RETURNING ${claimedColumns.map((c) => `i.${c}`).join(", ")}, i.due_at_ms IS NULL AS fresh,
          EXISTS (SELECT 1 FROM ${t.steps} s WHERE s.batch_id = p_batch AND s.item_key = i.key) AS stored_steps
      )
      SELECT count(*)::int, (count(*) FILTER (WHERE upd.fresh))::int, max(upd.ordinal) FILTER (WHERE upd.fresh),
        COALESCE(jsonb_agg(jsonb_build_array(${claimedColumns.map((c) => `upd.${c}`).join(", ")}, upd.stored_steps)
          ORDER BY upd.ordinal), '[]')
      INTO v_n, v_fresh, v_next, v_items
      FROM upd;
      IF v_n > 0 THEN
        UPDATE ${t.batches} SET queued = queued - v_fresh, retry_scheduled = retry_scheduled - (v_n - v_fresh),
          leased = leased + v_n, claim_cursor = GREATEST(claim_cursor, COALESCE(v_next, -1))
        WHERE id = p_batch;
      END IF;
      v_more := b.queued - v_fresh > 0 OR (v_n = p_max AND b.retry_scheduled - (v_n - v_fresh) > 0);
    END IF;
    RETURN jsonb_build_object('slots', v_slots, 'state_tag', b.state_tag, 'version', b.version, 'more', v_more,
      'items', v_items);
  END
  $fn$`
