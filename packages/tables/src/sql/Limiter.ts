/**
 * Shared rate limiters, exact across every process on one database.
 *
 * A limiter allows at most `permits` acquisitions in any window of `interval_ms`. Processes do not
 * ask for each acquisition: they reserve blocks of permits (a permit row), use them locally within
 * the block's short lease and report how many they used. Every permit of a block counts against the
 * limit from its reservation until `expires_at_ms`:
 * - while reserved, the end of the lease plus the interval (a permit may be used until the lease ends);
 * - once reported (`settled`), the last use plus the interval; unused permits are given back.
 * A block is granted only from what the rows still counting leave free, so an acquisition at `u`
 * is counted until at least `u + interval` by every later grant: no window holds more than the
 * limit. A process that dies holding a block stops counting when the block expires.
 *
 * @since 0.4.0
 */
import type { TableNames } from "../Tables.js"

/**
 * `<prefix>limiter_take(tenant, name, owner, now, want, lease, settle, used, last_use, concurrency)`:
 * settles the owner's previous block (`settle`, with `used` permits used, the last at `last_use`),
 * records the owner's effective concurrency (`concurrency`, when not NULL) and reserves up to `want`
 * permits usable for `lease` ms (at most the interval), unless the limiter is held back. Returns NULL
 * when the limiter does not exist, otherwise
 * `{ grant, granted, usableUntil, heldUntil, nextFreeMs, permits, intervalMs }` (`grant` NULL when
 * nothing was granted, `nextFreeMs` then the time a counted permit expires).
 *
 * @since 0.4.0
 */
export const limiterTake = (t: TableNames): string =>
  `CREATE OR REPLACE FUNCTION ${t.prefix}limiter_take(
    p_tenant text, p_name text, p_owner text, p_now bigint, p_want int, p_lease bigint,
    p_settle bigint, p_used int, p_last_use bigint, p_concurrency int
  ) RETURNS jsonb LANGUAGE plpgsql AS $fn$
  DECLARE
    l record; v_counted int; v_granted int := 0; v_id bigint; v_usable bigint; v_next bigint;
  BEGIN
    SELECT permits, interval_ms, held_until_ms INTO l FROM ${t.limiters}
      WHERE tenant = p_tenant AND name = p_name FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    IF p_settle IS NOT NULL THEN
      IF p_used > 0 THEN
        UPDATE ${t.permits} SET count = LEAST(count, p_used), settled = true,
          expires_at_ms = LEAST(expires_at_ms, p_last_use + l.interval_ms)
          WHERE id = p_settle AND owner = p_owner AND NOT settled;
      ELSE
        DELETE FROM ${t.permits} WHERE id = p_settle AND owner = p_owner AND NOT settled;
      END IF;
    END IF;
    DELETE FROM ${t.permits} WHERE tenant = p_tenant AND name = p_name AND expires_at_ms <= p_now;
    IF p_concurrency IS NOT NULL THEN
      INSERT INTO ${t.limiterUsers} (tenant, name, owner, effective_concurrency, seen_at_ms)
      VALUES (p_tenant, p_name, p_owner, p_concurrency, p_now)
      ON CONFLICT (tenant, name, owner) DO UPDATE
        SET effective_concurrency = EXCLUDED.effective_concurrency, seen_at_ms = EXCLUDED.seen_at_ms;
    END IF;
    IF p_want > 0 AND l.held_until_ms <= p_now THEN
      SELECT COALESCE(sum(count), 0)::int INTO v_counted FROM ${t.permits}
        WHERE tenant = p_tenant AND name = p_name AND expires_at_ms > p_now;
      v_granted := GREATEST(LEAST(p_want, l.permits - v_counted), 0);
      IF v_granted > 0 THEN
        v_usable := p_now + LEAST(p_lease, l.interval_ms);
        INSERT INTO ${t.permits} (tenant, name, owner, count, granted_at_ms, usable_until_ms, expires_at_ms)
        VALUES (p_tenant, p_name, p_owner, v_granted, p_now, v_usable, v_usable + l.interval_ms)
        RETURNING id INTO v_id;
      ELSE
        SELECT min(expires_at_ms) INTO v_next FROM ${t.permits}
          WHERE tenant = p_tenant AND name = p_name AND expires_at_ms > p_now;
      END IF;
    END IF;
    RETURN jsonb_build_object('grant', v_id, 'granted', v_granted, 'usableUntil', v_usable,
      'heldUntil', l.held_until_ms, 'nextFreeMs', v_next, 'permits', l.permits, 'intervalMs', l.interval_ms);
  END
  $fn$`
