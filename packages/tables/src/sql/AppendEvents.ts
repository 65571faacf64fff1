/**
 * `<prefix>append_events`: the one allocator of event sequence numbers. It bumps the batch's `seq`
 * by the number of events it stores and numbers them `base + 1 …` in `ord` order, in one statement,
 * so sequences stay gapless and unique under concurrent writers. With `p_started` / `p_applied` /
 * `p_steps`, only the events of recorded start marks, outcomes and steps are stored (see
 * `Contract.eventColumns`).
 *
 * @since 0.2.0
 */
import type { TableNames } from "../Tables.js"
import { eventColumns, recordset } from "./Contract.js"

/** @since 0.2.0 */
export const appendEvents = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}append_events(
    p_batch uuid, p_now bigint, p_events jsonb, p_started int[], p_applied int[], p_steps int[]
  ) RETURNS int LANGUAGE plpgsql AS $fn$
  DECLARE
    v_seq int;
  BEGIN
    WITH ev AS (
      SELECT e.ord, e.tag, e.payload FROM jsonb_to_recordset(p_events) AS e(${recordset(eventColumns)})
      WHERE p_started IS NULL OR (e.kind = 's' AND e.idx = ANY(p_started)) OR (e.kind = 'o' AND e.idx = ANY(p_applied))
        OR (e.kind = 'p' AND e.idx = ANY(p_steps))
    ), n AS (
      SELECT count(*)::int AS n FROM ev
    ), bump AS (
      UPDATE ${t.batches} b SET seq = b.seq + n.n, updated_at_ms = p_now FROM n
      WHERE b.id = p_batch AND n.n > 0
      RETURNING b.seq, b.seq - n.n AS base
    ), ins AS (
      INSERT INTO ${t.events} (batch_id, seq, tag, payload, at_ms)
      SELECT p_batch, bump.base + row_number() OVER (ORDER BY ev.ord), ev.tag, ev.payload, p_now FROM ev, bump
    )
    SELECT seq INTO v_seq FROM bump;
    IF v_seq IS NULL THEN
      SELECT seq INTO v_seq FROM ${t.batches} WHERE id = p_batch;
    END IF;
    RETURN v_seq;
  END
  $fn$`
