/**
 * Keyset pages of a tenant's rows, newest first: the cursor is the last row's (created_at_ms, id),
 * encoded opaque for clients.
 */
import * as Errors from "@effect-batch/domain/Errors"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

const ListCursor = Schema.compose(
  Schema.StringFromBase64Url,
  Schema.parseJson(Schema.Tuple(Schema.Number, Schema.String))
)

/**
 * A page of rows after `cursor`: `select` is given the SQL condition for the cursor and the number of
 * rows to read (one more than the page, to know whether another page follows).
 */
export const listPage = <Row, A extends { readonly createdAtMs: number; readonly id: string }, E>(
  sql: SqlClient.SqlClient,
  options: { readonly limit: number; readonly cursor?: string | undefined },
  select: (after: Fragment, limit: number) => Effect.Effect<ReadonlyArray<Row>, E>,
  decode: (row: Row) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const cursor = options.cursor === undefined
      ? undefined
      : yield* Schema.decodeUnknown(ListCursor)(options.cursor).pipe(
        Effect.mapError(() => new Errors.InvalidRequest({ message: "invalid cursor" }))
      )
    const rows = yield* select(
      cursor === undefined ? sql`` : sql`AND (created_at_ms, id) < (${cursor[0]}, ${cursor[1]}::uuid)`,
      options.limit + 1
    )
    const page = yield* Effect.forEach(rows.slice(0, options.limit), decode)
    const last = page[page.length - 1]
    const nextCursor = rows.length > options.limit && last !== undefined
      ? yield* Effect.orDie(Schema.encode(ListCursor)([last.createdAtMs, last.id]))
      : undefined
    return { items: page, nextCursor }
  })
