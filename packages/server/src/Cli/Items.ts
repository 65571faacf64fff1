/**
 * Reading items from a file: a JSON array or NDJSON of `{ key, input }`.
 *
 * @since 0.1.0
 */
import { Errors } from "@effect-batch/domain"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

const Item = Schema.Struct({ key: Schema.String, input: Schema.Unknown })
const Items = Schema.Array(Item)

/**
 * Parses a JSON array or NDJSON text of `{ key, input }` objects.
 *
 * @since 0.1.0
 */
export const parseItems = (text: string): Effect.Effect<ReadonlyArray<typeof Item.Type>, Errors.InvalidRequest> => {
  const trimmed = text.trim()
  const parsed = Effect.try({
    try: (): unknown =>
      trimmed.startsWith("[")
        ? JSON.parse(trimmed)
        : trimmed.split(/\r?\n/).filter((line) => line.trim() !== "").map((line) => JSON.parse(line)),
    catch: (e) => new Errors.InvalidRequest({ message: `not JSON or NDJSON: ${String(e)}` })
  })
  return Effect.flatMap(parsed, (value) =>
    Schema.decodeUnknown(Items)(value).pipe(
      Effect.mapError((e) =>
        new Errors.InvalidRequest({
          message: `items must be { key, input }: ${ParseResult.TreeFormatter.formatErrorSync(e)}`
        })
      )
    ))
}
