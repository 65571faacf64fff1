/**
 * Branded identifiers, decoded from strings at every edge.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Storable from "./Storable.js"

const boundedId = (name: string, maxLength: number) =>
  Schema.Trim.pipe(
    Schema.filter(Storable.text(name)),
    Schema.nonEmptyString({ message: () => `${name} must not be empty` }),
    Schema.maxLength(maxLength, { message: () => `${name} must be at most ${maxLength} characters` })
  )

/**
 * The id of a batch: a UUID.
 *
 * @since 0.1.0
 */
export const BatchId = Schema.UUID.pipe(Schema.brand("BatchId")).annotations({ identifier: "BatchId" })
/** @since 0.1.0 */
export type BatchId = typeof BatchId.Type

/**
 * The key of an item, unique within its batch; results are ordered by it.
 *
 * @since 0.1.0
 */
export const ItemKey = boundedId("ItemKey", 512).pipe(Schema.brand("ItemKey")).annotations({ identifier: "ItemKey" })
/** @since 0.1.0 */
export type ItemKey = typeof ItemKey.Type

/**
 * The tenant owning a batch. Every query is scoped by it.
 *
 * @since 0.1.0
 */
export const TenantId = boundedId("TenantId", 128).pipe(Schema.brand("TenantId")).annotations({
  identifier: "TenantId"
})
/** @since 0.1.0 */
export type TenantId = typeof TenantId.Type

/**
 * The registered name of a workflow.
 *
 * @since 0.1.0
 */
export const WorkflowName = boundedId("WorkflowName", 128).pipe(
  Schema.pattern(/^[A-Za-z0-9_.:-]+$/, {
    message: () => "WorkflowName may contain only letters, digits and _ . : -"
  }),
  Schema.brand("WorkflowName")
).annotations({ identifier: "WorkflowName" })
/** @since 0.1.0 */
export type WorkflowName = typeof WorkflowName.Type

/**
 * A caller-chosen key that makes `submit` idempotent per tenant.
 *
 * @since 0.1.0
 */
export const IdempotencyKey = boundedId("IdempotencyKey", 256).pipe(Schema.brand("IdempotencyKey")).annotations({
  identifier: "IdempotencyKey"
})
/** @since 0.1.0 */
export type IdempotencyKey = typeof IdempotencyKey.Type

/**
 * A person or system acting on a batch (shown in events and states).
 *
 * @since 0.1.0
 */
export const Actor = boundedId("Actor", 256).annotations({ identifier: "Actor" })

/**
 * A free-text note attached to a command (reason for a rejection, a pause, ...).
 *
 * @since 0.1.0
 */
export const Note = Schema.String.pipe(
  Schema.filter(Storable.text("note")),
  Schema.maxLength(2000, { message: () => "note must be at most 2000 characters" })
)

/**
 * The per-batch sequence number of an event: gapless, starting at 1.
 *
 * @since 0.1.0
 */
export const Sequence = Schema.NonNegativeInt.annotations({ identifier: "Sequence" })

/**
 * A sequence number decoded from a string (a `Last-Event-ID` header or an `?after=` parameter).
 *
 * @since 0.1.0
 */
export const SequenceFromString = Schema.NumberFromString.pipe(Schema.compose(Sequence))
