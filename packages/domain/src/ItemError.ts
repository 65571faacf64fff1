/**
 * The recorded description of why an item attempt failed.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * How the orchestrator treats a failure:
 * - `retryable`: retried with backoff while attempts remain;
 * - `rate-limited`: the downstream said 429; retried after its retry-after without consuming an attempt;
 * - `timeout`: the attempt exceeded its timeout; retryable;
 * - `fatal`: the workflow declared it not retryable;
 * - `defect`: an unexpected crash in the workflow; not retryable;
 * - `worker-lost`: the process running the attempt died or hung past its lease (tag `WorkerLost`);
 *   retryable, and final once the item has used its attempts, so that an item that kills every
 *   process running it (a poison pill) ends.
 *
 * @since 0.1.0
 */
export const ErrorCategory = Schema.Literal("retryable", "rate-limited", "timeout", "fatal", "defect", "worker-lost")
/** @since 0.1.0 */
export type ErrorCategory = typeof ErrorCategory.Type

/**
 * An item's failure as stored and shown to clients.
 *
 * @since 0.1.0
 */
export class ItemError extends Schema.Class<ItemError>("ItemError")({
  category: ErrorCategory,
  /** the workflow error's `_tag`, when it has one */
  tag: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(128)), { exact: true }),
  message: Schema.String.pipe(Schema.maxLength(4000)),
  /** the encoded workflow error, when it has a schema */
  details: Schema.optionalWith(Schema.Unknown, { exact: true })
}) {}

/**
 * Whether the orchestrator may retry this error.
 *
 * @since 0.1.0
 */
export const isRetryable = (e: ItemError): boolean =>
  e.category === "retryable" || e.category === "rate-limited" || e.category === "timeout" ||
  e.category === "worker-lost"
