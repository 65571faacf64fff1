/**
 * The names of effect-batch's tables, with a configurable prefix.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"

/**
 * The table names in use.
 *
 * @since 0.1.0
 */
export interface TableNames {
  readonly prefix: string
  readonly migrations: string
  readonly batches: string
  readonly items: string
  readonly events: string
  /** each process's share of a batch's concurrency, and the lease on the items it holds */
  readonly shares: string
  /** durable step outputs of items */
  readonly steps: string
  /** completed steps per batch and step name, kept by the statements that store and discard steps */
  readonly stepCounts: string
  /** shared rate limiters, defined per tenant */
  readonly limiters: string
  /** the permits of shared limiters reserved by processes, and those used within the window */
  readonly permits: string
  /** the processes that use a shared limiter, with their effective concurrency */
  readonly limiterUsers: string
  /** the open event streams of each process, per tenant */
  readonly streams: string
  /** campaigns (batches of batches) */
  readonly campaigns: string
  /** the per-campaign event log */
  readonly campaignEvents: string
  /** the sampled throughput and duration windows of each batch (slowdown detection) */
  readonly trends: string
}

/**
 * The table names of this process. Defaults to the prefix `effect_batch_`.
 *
 * @since 0.1.0
 */
export class Tables extends Context.Reference<Tables>()("@effect-batch/Tables", {
  defaultValue: (): TableNames => names("effect_batch_")
}) {}

/**
 * Table names for a prefix. A prefix is lower-case letters, digits and underscores, so it is safe
 * inside DDL.
 *
 * @since 0.1.0
 */
export const names = (prefix: string): TableNames => {
  if (!/^[a-z_][a-z0-9_]{0,30}$/.test(prefix)) {
    throw new Error(`invalid table prefix ${JSON.stringify(prefix)}: use [a-z_][a-z0-9_]{0,30}`)
  }
  return {
    prefix,
    migrations: `${prefix}migrations`,
    batches: `${prefix}batches`,
    items: `${prefix}items`,
    events: `${prefix}events`,
    shares: `${prefix}shares`,
    steps: `${prefix}steps`,
    stepCounts: `${prefix}step_counts`,
    limiters: `${prefix}limiters`,
    permits: `${prefix}permits`,
    limiterUsers: `${prefix}limiter_users`,
    streams: `${prefix}streams`,
    campaigns: `${prefix}campaigns`,
    campaignEvents: `${prefix}campaign_events`,
    trends: `${prefix}trends`
  }
}

/**
 * Uses another table prefix.
 *
 * @since 0.1.0
 */
export const layerPrefix = (prefix: string): Layer.Layer<Tables> => Layer.succeed(Tables, names(prefix))
