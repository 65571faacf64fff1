import { Errors, Storable } from "@effect-batch/domain"
import { ItemKey } from "@effect-batch/domain/Ids"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Runnable } from "../Workflow.js"
import { truncate } from "./Truncate.js"

const decodeKey = Schema.decodeUnknown(ItemKey)

/** How many invalid items an `InvalidItems` error names (it counts them all). */
const maxNamedInvalid = 100

/** The longest reason given for one invalid item (a parse error quotes the value it rejects). */
const maxReasonLength = 500

/**
 * The submitted items, each decoded by the workflow's input schema and re-encoded in canonical form.
 * Invalid items are collected rather than stored; once the input is exhausted, any invalid item fails
 * the stream with `InvalidItems` naming them (no item at all: `EmptyBatch`), so the transaction storing the
 * batch rolls back whole.
 */
export const validatedItems = (
  runnable: Runnable,
  input: Stream.Stream<{ readonly key: string; readonly input: unknown }>,
  limits: { readonly maxItemsPerBatch: number; readonly maxBytesPerItem: number }
) =>
  Effect.map(
    Effect.all([
      Ref.make<{ readonly count: number; readonly items: ReadonlyArray<Errors.InvalidItem> }>({ count: 0, items: [] }),
      Ref.make(0)
    ]),
    ([invalid, seen]) => {
      const validate = (item: { readonly key: string; readonly input: unknown }, index: number) =>
        Effect.gen(function*() {
          yield* Ref.set(seen, index + 1)
          if (index >= limits.maxItemsPerBatch) {
            return yield* Effect.fail(
              new Errors.LimitExceeded({ limit: "items per batch", max: limits.maxItemsPerBatch })
            )
          }
          const reject = (reason: string, key?: string) =>
            Ref.update(invalid, (state) => ({
              count: state.count + 1,
              items: state.items.length < maxNamedInvalid
                ? [
                  ...state.items,
                  Errors.InvalidItem.make({
                    index,
                    reason: truncate(reason, maxReasonLength),
                    ...(key === undefined ? {} : { key })
                  })
                ]
                : state.items
            })).pipe(Effect.as(Option.none()))
          const key = yield* Effect.either(decodeKey(item.key))
          if (key._tag === "Left") {
            return yield* reject(`invalid key: ${ParseResult.TreeFormatter.formatErrorSync(key.left)}`)
          }
          const problem = Storable.jsonProblem(item.input)
          if (problem !== undefined) return yield* reject(problem, key.right)
          const size = Buffer.byteLength(JSON.stringify(item.input ?? null))
          if (size > limits.maxBytesPerItem) {
            return yield* reject(`input is ${size} bytes, more than ${limits.maxBytesPerItem}`, key.right)
          }
          const normalized = yield* Effect.either(runnable.normalizeInput(item.input))
          if (normalized._tag === "Left") return yield* reject(normalized.left, key.right)
          return Option.some({ key: key.right, input: normalized.right })
        })
      return input.pipe(
        Stream.zipWithIndex,
        Stream.mapEffect(([item, index]) => validate(item, index)),
        Stream.filterMap((item) => item),
        Stream.concat(
          Stream.fromEffect(Effect.all([Ref.get(invalid), Ref.get(seen)])).pipe(
            Stream.flatMap(([state, total]): Stream.Stream<never, Errors.InvalidItems | Errors.EmptyBatch> =>
              state.count > 0
                ? Stream.fail(new Errors.InvalidItems(state))
                : total === 0
                ? Stream.fail(new Errors.EmptyBatch())
                : Stream.empty
            )
          )
        )
      )
    }
  )
