/**
 * What every submission (of a batch or of a campaign) does before storing: take the items as a
 * stream, encode typed inputs with the workflow's schema, decode the idempotency key, find the
 * workflow.
 */
import { Errors } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import { IdempotencyKey } from "@effect-batch/domain/Ids"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Workflow from "../Workflow.js"
import type { WorkflowRegistry } from "../WorkflowRegistry.js"

/** An item as submitted: its key and its encoded input. */
export interface EncodedItem {
  readonly key: string
  readonly input: unknown
}

export const toStream = <A>(input: Iterable<A> | Stream.Stream<A>): Stream.Stream<A> =>
  Symbol.iterator in input ? Stream.fromIterable(input) : input

/**
 * Typed items encoded with the workflow's input schema; an input that does not encode is passed on
 * as it is, for the validation to name it.
 */
export const encodeItems = <I, IE, O, OE, E, EE, R>(
  workflow: Workflow.Workflow<I, IE, O, OE, E, EE, R>,
  input:
    | Iterable<{ readonly key: string; readonly input: I }>
    | Stream.Stream<{ readonly key: string; readonly input: I }>
): Stream.Stream<EncodedItem> => {
  const encode = Schema.encode(workflow.input)
  return toStream(input).pipe(
    Stream.mapEffect((item) =>
      encode(item.input).pipe(
        Effect.map((encodedInput): EncodedItem => ({ key: item.key, input: encodedInput })),
        Effect.orElseSucceed((): EncodedItem => ({ key: item.key, input: item.input }))
      )
    )
  )
}

const decodeKey = Schema.decodeUnknown(IdempotencyKey)

/** The idempotency key, if given; an invalid one is an `InvalidItems` (nothing is stored). */
export const idempotencyKeyOf = (key: string | undefined) =>
  key === undefined ? Effect.succeed(Option.none<Ids.IdempotencyKey>()) : decodeKey(key).pipe(
    Effect.map(Option.some),
    Effect.mapError(() =>
      new Errors.InvalidItems({
        items: [Errors.InvalidItem.make({ index: 0, reason: "invalid idempotency key" })],
        count: 1
      })
    )
  )

/** The registered workflow of that name, or `WorkflowNotFound`. */
export const runnableOf = (registry: WorkflowRegistry["Type"], name: Ids.WorkflowName) =>
  Option.match(registry.get(name), {
    onNone: () => Effect.fail(new Errors.WorkflowNotFound({ workflow: name })),
    onSome: Effect.succeed
  })
