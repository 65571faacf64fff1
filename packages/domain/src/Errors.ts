/**
 * The typed errors of effect-batch, shared by every surface (library, RPC, SSE, CLI).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { Tag as StateTag } from "./BatchState.js"
import { BatchId, WorkflowName } from "./Ids.js"

/**
 * No batch with this id exists for the caller's tenant.
 *
 * @since 0.1.0
 */
export class BatchNotFound extends Schema.TaggedError<BatchNotFound>()("BatchNotFound", {
  batchId: Schema.String
}) {
  override get message() {
    return `batch ${this.batchId} not found`
  }
}

/**
 * A command that the batch's current state does not allow (e.g. resume a Completed batch).
 * Nothing was changed.
 *
 * @since 0.1.0
 */
export class InvalidTransition extends Schema.TaggedError<InvalidTransition>()("InvalidTransition", {
  state: StateTag,
  command: Schema.String,
  /** what the command was for; a batch when absent */
  subject: Schema.optionalWith(Schema.Literal("batch", "campaign"), { exact: true })
}) {
  override get message() {
    return `cannot ${this.command} a ${this.subject ?? "batch"} that is ${this.state}`
  }
}

/**
 * A batch config that does not decode; `message` names each bad field.
 *
 * @since 0.1.0
 */
export class InvalidBatchConfig extends Schema.TaggedError<InvalidBatchConfig>()("InvalidBatchConfig", {
  message: Schema.String
}) {}

/**
 * One rejected item of a batch.
 *
 * @since 0.1.0
 */
export class InvalidItem extends Schema.Class<InvalidItem>("InvalidItem")({
  index: Schema.NonNegativeInt,
  key: Schema.optionalWith(Schema.String, { exact: true }),
  reason: Schema.String
}) {}

/**
 * A batch with invalid items is rejected whole; each bad item is named. Nothing was stored.
 *
 * @since 0.1.0
 */
export class InvalidItems extends Schema.TaggedError<InvalidItems>()("InvalidItems", {
  items: Schema.Array(InvalidItem),
  /** how many items were invalid in all (`items` may be truncated) */
  count: Schema.NonNegativeInt
}) {
  override get message() {
    const shown = this.items.slice(0, 3).map((i) => `#${i.index}${i.key ? ` (${i.key})` : ""}: ${i.reason}`)
    return `${this.count} invalid item(s): ${shown.join("; ")}${this.count > shown.length ? "; ..." : ""}`
  }
}

/**
 * A batch without any item. Nothing was stored.
 *
 * @since 0.1.0
 */
export class EmptyBatch extends Schema.TaggedError<EmptyBatch>()("EmptyBatch", {}) {
  override get message() {
    return "a batch needs at least one item"
  }
}

/**
 * Another writer changed the batch first; re-read and retry.
 *
 * @since 0.1.0
 */
export class VersionConflict extends Schema.TaggedError<VersionConflict>()("VersionConflict", {
  batchId: BatchId,
  expectedVersion: Schema.NonNegativeInt
}) {
  override get message() {
    return `batch ${this.batchId} changed since version ${this.expectedVersion}`
  }
}

/**
 * Missing or unknown credentials.
 *
 * @since 0.1.0
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}) {}

/**
 * The workflow is not registered in this process.
 *
 * @since 0.1.0
 */
export class WorkflowNotFound extends Schema.TaggedError<WorkflowNotFound>()("WorkflowNotFound", {
  workflow: WorkflowName
}) {
  override get message() {
    return `workflow ${this.workflow} is not registered`
  }
}

/**
 * No shared rate limiter of that name is defined for the tenant.
 *
 * @since 0.4.0
 */
export class LimiterNotFound extends Schema.TaggedError<LimiterNotFound>()("LimiterNotFound", {
  name: Schema.String
}) {
  override get message() {
    return `no shared limiter named ${JSON.stringify(this.name)}`
  }
}

/**
 * A size limit (items per batch, bytes per item, open streams) was exceeded.
 *
 * @since 0.1.0
 */
export class LimitExceeded extends Schema.TaggedError<LimitExceeded>()("LimitExceeded", {
  limit: Schema.String,
  max: Schema.Number
}) {
  override get message() {
    return `${this.limit} exceeds the maximum of ${this.max}`
  }
}

/**
 * The database cannot be reached (down, restarting, out of connections). Nothing is known to have
 * changed; the same request can be retried later.
 *
 * @since 0.1.0
 */
export class StorageUnavailable extends Schema.TaggedError<StorageUnavailable>()("StorageUnavailable", {}) {
  override get message() {
    return "the database is unavailable; retry later"
  }
}

/**
 * A request that does not decode (wrong types, unknown fields, malformed ids).
 *
 * @since 0.1.0
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  message: Schema.String
}) {}
