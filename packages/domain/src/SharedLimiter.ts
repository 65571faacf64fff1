/**
 * Shared rate limiters: defined once per tenant, used by every batch and every process of the
 * tenant on one database, exact fleet-wide.
 *
 * @since 0.4.0
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import { LimiterName, RateLimit } from "./BatchConfig.js"
import { DurationString } from "./Duration.js"
import { LimiterNotFound, LimitExceeded, StorageUnavailable } from "./Errors.js"
import { Authentication } from "./Rpcs.js"

/**
 * A shared limiter's definition: at most `limit` acquisitions in any window of `interval`, over
 * every process.
 *
 * @since 0.4.0
 */
export class Definition extends Schema.Class<Definition>("SharedLimiterDefinition")({
  name: LimiterName,
  limit: RateLimit.fields.limit,
  interval: DurationString
}) {}

/**
 * Shared limiters by tenant and name, as configuration gives them:
 * `{ "acme": { "anthropic": { "limit": 10, "interval": "1 minute" } } }`.
 *
 * @since 0.4.0
 */
export const Definitions = Schema.Record({
  key: Schema.String,
  value: Schema.Record({ key: LimiterName, value: RateLimit })
})

/**
 * A shared limiter and its state across the fleet.
 *
 * @since 0.4.0
 */
export class View extends Schema.Class<View>("SharedLimiterView")({
  name: LimiterName,
  limit: Schema.Int,
  interval: DurationString,
  /** permits that count against the limit now: used within the window, or reserved by a process */
  permitsInWindow: Schema.NonNegativeInt,
  /** permits a process could reserve now */
  available: Schema.NonNegativeInt,
  /** after a rate-limit answer (HTTP 429): no acquisition starts anywhere before this time */
  heldBackUntil: Schema.OptionFromNullOr(Schema.DateTimeUtc),
  /** rate-limit answers seen through this limiter */
  throttles: Schema.NonNegativeInt,
  lastThrottledAt: Schema.OptionFromNullOr(Schema.DateTimeUtc),
  /** processes that used the limiter recently */
  processes: Schema.NonNegativeInt,
  /** how many attempts the limiter's users may execute at once, summed over those processes */
  effectiveConcurrency: Schema.NonNegativeInt
}) {}

/**
 * The most shared limiters a tenant may define.
 *
 * @since 0.4.0
 */
export const maxPerTenant = 100

const ByName = Schema.Struct({ name: LimiterName })

/**
 * The shared limiters' RPCs, scoped to the caller's tenant.
 *
 * @since 0.4.0
 */
export class SharedLimiterRpcs extends RpcGroup.make(
  /**
   * Creates the limiter or changes its limit and interval (permits counted so far stay counted);
   * `LimitExceeded` beyond `maxPerTenant` limiters.
   */
  Rpc.make("DefineLimiter", {
    payload: Definition,
    success: View,
    error: Schema.Union(LimitExceeded, StorageUnavailable)
  }),
  Rpc.make("GetLimiter", { payload: ByName, success: View, error: Schema.Union(LimiterNotFound, StorageUnavailable) }),
  Rpc.make("ListLimiters", { success: Schema.Array(View), error: StorageUnavailable }),
  Rpc.make("DeleteLimiter", {
    payload: ByName,
    success: Schema.Void,
    error: Schema.Union(LimiterNotFound, StorageUnavailable)
  })
).middleware(Authentication) {}
