/**
 * Slot shares: each process that runs a batch holds a row (batch, owner, slots, wanted, executing,
 * expiry). `slots` is how many attempts the process may execute at once; the row's expiry is the
 * lease on every item the process holds. Shares are granted and renewed only under the batch row
 * lock, so the slots of the live rows never add up to more than the concurrency.
 *
 * A process asks for what it could use (`wanted`). Its target is its part of a max-min fair split of
 * the concurrency among the processes that want work: an even split (the remainder to the last in
 * (wanted, owner) order), what the others do not want going to those that want more; the targets
 * add up to at most the concurrency.
 * It is granted the target within what the other live rows leave free: the grant is what it may
 * start attempts up to from now on. Its row records `slots = max(grant, executing)`: a process gives
 * back by finishing attempts, never by interrupting them, and starts nothing while it executes as
 * many as its grant. So a process that joins gets the free slots at once and the rest as the others'
 * attempts finish and they commit; a dead process's row stops counting when it expires.
 *
 * @since 0.2.0
 */
import type { TableNames } from "../Tables.js"

/**
 * `<prefix>share`: grants and records a share, returning the grant; call it with the batch row
 * locked.
 *
 * @since 0.2.0
 */
export const share = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}share(
    p_batch uuid, p_owner text, p_now bigint, p_lease_until bigint, p_concurrency int, p_running boolean,
    p_executing int, p_wanted int
  ) RETURNS int LANGUAGE plpgsql AS $fn$
  DECLARE
    v_wanting int; v_held int; v_left int; v_target int := 0; v_grant int; r record;
  BEGIN
    IF p_running THEN
      SELECT count(*) FILTER (WHERE wanted > 0)::int, COALESCE(sum(slots), 0)::int INTO v_wanting, v_held
        FROM ${t.shares} WHERE batch_id = p_batch AND owner <> p_owner AND expires_at_ms >= p_now;
      -- The targets of all the owners that want work add up to at most the concurrency: owners in
      -- (wanted, owner) order each take what they want within an even split of what is left.
      IF p_wanted > 0 THEN
        v_wanting := v_wanting + 1;
        v_left := p_concurrency;
        FOR r IN SELECT w.owner, w.wanted FROM (
            SELECT owner, wanted FROM ${t.shares}
            WHERE batch_id = p_batch AND owner <> p_owner AND expires_at_ms >= p_now AND wanted > 0
            UNION ALL SELECT p_owner, p_wanted
          ) w ORDER BY w.wanted, w.owner COLLATE "C"
        LOOP
          v_target := LEAST(r.wanted, v_left / v_wanting);
          EXIT WHEN r.owner = p_owner;
          v_left := v_left - v_target;
          v_wanting := v_wanting - 1;
        END LOOP;
      END IF;
      v_grant := GREATEST(LEAST(v_target, p_concurrency - v_held), 0);
    ELSE
      v_grant := 0;
    END IF;
    INSERT INTO ${t.shares} (batch_id, owner, slots, wanted, executing, expires_at_ms)
    VALUES (p_batch, p_owner, GREATEST(v_grant, p_executing), CASE WHEN p_running THEN p_wanted ELSE 0 END,
      p_executing, p_lease_until)
    ON CONFLICT (batch_id, owner) DO UPDATE SET slots = EXCLUDED.slots, wanted = EXCLUDED.wanted,
      executing = EXCLUDED.executing, expires_at_ms = EXCLUDED.expires_at_ms;
    RETURN v_grant;
  END
  $fn$`

/**
 * `<prefix>renew`: renews this owner's lease (its share row) and renegotiates its share. Returns
 * NULL when the batch does not exist.
 *
 * @since 0.2.0
 */
export const renew = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}renew(
    p_batch uuid, p_owner text, p_now bigint, p_lease_until bigint, p_executing int, p_wanted int
  ) RETURNS jsonb LANGUAGE plpgsql AS $fn$
  DECLARE
    b record; v_slots int;
  BEGIN
    SELECT state_tag, version, concurrency INTO b FROM ${t.batches} WHERE id = p_batch FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    v_slots := ${t.prefix}share(p_batch, p_owner, p_now, p_lease_until, b.concurrency, b.state_tag = 'Running',
      p_executing, p_wanted);
    RETURN jsonb_build_object('slots', v_slots, 'state_tag', b.state_tag, 'version', b.version);
  END
  $fn$`
