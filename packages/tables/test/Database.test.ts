/**
 * The database layers behave the same on Postgres and on the embedded PGlite: one suite body, run
 * against both.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Database, Notifier, TestDatabase } from "../src/index.js"

const hostile = [
  "it's",
  "\"double\" quotes",
  "a;b;",
  "-- comment",
  "/* block */ comment",
  "'); DROP TABLE victims; --",
  "\"); DROP TABLE victims; --",
  "$1 $2 ? :name",
  "back\\slash \\' \\\"",
  "line\nbreak\ttab\r",
  "日本語 ✓ é 🎉 \u2028",
  "",
  "   "
]

const Count = Schema.Struct({ n: Schema.Number })

/** A notification on `channel` reaches a listener that subscribed first (re-sent until it does). */
const receiveOne = (channel: string, payload: string) =>
  Effect.gen(function*() {
    const notifier = yield* Notifier.Notifier
    const listener = yield* notifier.listen(channel).pipe(Stream.runHead, Effect.fork)
    yield* notifier.notify(channel, payload).pipe(Effect.repeat(Schedule.spaced("50 millis")), Effect.fork)
    return yield* Fiber.join(listener)
  }).pipe(Effect.scoped, Effect.timeout("10 seconds"))

for (const [name, db] of TestDatabase.databases) {
  layer(db, { timeout: "60 seconds", excludeTestServices: true })(name, (it) => {
    it.effect("stores hostile strings given as parameters literally", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE victims (id serial PRIMARY KEY, s text NOT NULL)`
        for (const s of hostile) {
          const [row] = yield* sql<{ s: string }>`INSERT INTO victims (s) VALUES (${s}) RETURNING s`
          assert.strictEqual(row?.s, s)
        }
        yield* sql`INSERT INTO victims ${sql.insert(hostile.map((s) => ({ s })))}`
        yield* sql.unsafe("INSERT INTO victims (s) VALUES ($1)", [hostile[5]])
        const rows = yield* sql<{ s: string }>`SELECT s FROM victims ORDER BY id`
        assert.deepStrictEqual(rows.map((r) => r.s), [...hostile, ...hostile, hostile[5]])
        const [match] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM victims WHERE s = ${hostile[5]}`
        assert.strictEqual(match?.n, 3)
      }))

    it.effect("passes jsonb and text[] parameters", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE docs (id int PRIMARY KEY, body jsonb NOT NULL, list jsonb NOT NULL, tags text[] NOT NULL)`
        const body = { title: "it's \"quoted\"; -- x", n: 1.5, nested: { ok: true, none: null }, xs: [1, "two"] }
        const list = [1, { a: "b" }, "c"]
        const tags = ["a", "b,c", "{d}", "e\"f", "g'h", "", "NULL", "日本"]
        yield* sql`INSERT INTO docs VALUES (1, ${body}, ${JSON.stringify(list)}::jsonb, ${tags})`
        yield* sql`INSERT INTO docs VALUES (2, ${JSON.stringify({})}::jsonb, ${"[]"}::jsonb, ${[]}::text[])`
        const rows = yield* sql<{ id: number; body: unknown; list: unknown; tags: unknown }>`
          SELECT id, body, list, tags FROM docs ORDER BY id`
        assert.deepStrictEqual(rows, [{ id: 1, body, list, tags }, { id: 2, body: {}, list: [], tags: [] }])
        const found = yield* sql<{ id: number }>`
          SELECT id FROM docs WHERE tags @> ${["b,c"]}::text[] AND body->>'title' = ${body.title}
            AND id = ANY(${[1, 2, 3]}::int[])`
        assert.deepStrictEqual(found, [{ id: 1 }])
      }))

    it.effect("commits a transaction", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE committed (id int PRIMARY KEY)`
        yield* sql.withTransaction(Effect.zipRight(
          sql`INSERT INTO committed VALUES (1)`,
          sql`INSERT INTO committed VALUES (2)`
        ))
        const rows = yield* sql`SELECT id FROM committed ORDER BY id`
        assert.deepStrictEqual(rows, [{ id: 1 }, { id: 2 }])
      }))

    it.effect("rolls back a failing transaction", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE rolled (id int PRIMARY KEY)`
        const error = yield* sql.withTransaction(Effect.zipRight(
          sql`INSERT INTO rolled VALUES (1)`,
          Effect.fail("boom")
        )).pipe(Effect.flip)
        assert.strictEqual(error, "boom")
        const duplicate = yield* sql.withTransaction(Effect.zipRight(
          sql`INSERT INTO rolled VALUES (2)`,
          sql`INSERT INTO rolled VALUES (2)`
        )).pipe(Effect.flip)
        assert.strictEqual(duplicate._tag, "SqlError")
        const [row] = yield* sql`SELECT count(*)::int AS n FROM rolled`.pipe(
          Effect.flatMap(Schema.decodeUnknown(Schema.Array(Count)))
        )
        assert.strictEqual(row?.n, 0)
      }))

    it.effect("rolls back a nested transaction to its savepoint and keeps the outer one", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE nested (id text PRIMARY KEY)`
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT INTO nested VALUES ('outer-before')`
          const inner = yield* sql.withTransaction(Effect.zipRight(
            sql`INSERT INTO nested VALUES ('inner')`,
            Effect.fail("inner failed")
          )).pipe(Effect.flip)
          assert.strictEqual(inner, "inner failed")
          yield* sql.withTransaction(sql`INSERT INTO nested VALUES ('inner-kept')`)
          yield* sql`INSERT INTO nested VALUES ('outer-after')`
        }))
        const rows = yield* sql<{ id: string }>`SELECT id FROM nested ORDER BY id`
        assert.deepStrictEqual(rows.map((r) => r.id), ["inner-kept", "outer-after", "outer-before"])
      }))

    it.effect("serializes concurrent read-then-write transactions", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE counter (id int PRIMARY KEY, value int NOT NULL)`
        yield* sql`INSERT INTO counter VALUES (1, 0)`
        const increment = sql.withTransaction(Effect.gen(function*() {
          const [row] = yield* sql<{ value: number }>`SELECT value FROM counter WHERE id = 1 FOR UPDATE`
          yield* Effect.sleep("2 millis")
          yield* sql`UPDATE counter SET value = ${(row?.value ?? 0) + 1} WHERE id = 1`
        }))
        yield* Effect.all(Array.from({ length: 20 }, () => increment), { concurrency: "unbounded" })
        const [row] = yield* sql<{ value: number }>`SELECT value FROM counter WHERE id = 1`
        assert.strictEqual(row?.value, 20)
      }))

    it.effect("keeps other fibers' statements out of an open transaction", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE isolation (id text PRIMARY KEY)`
        const begun = yield* Deferred.make<void>()
        const failing = yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT INTO isolation VALUES ('in-transaction')`
          yield* Deferred.succeed(begun, undefined)
          yield* Effect.sleep("50 millis")
          return yield* Effect.fail("abort")
        })).pipe(Effect.flip, Effect.fork)
        yield* Deferred.await(begun)
        yield* sql`INSERT INTO isolation VALUES ('outside')`
        assert.strictEqual(yield* Fiber.join(failing), "abort")
        const rows = yield* sql<{ id: string }>`SELECT id FROM isolation`
        assert.deepStrictEqual(rows.map((r) => r.id), ["outside"])
      }))

    it.effect("returns counts as numbers", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [cast] = yield* sql<{ n: unknown }>`SELECT count(*)::int AS n FROM generate_series(1, 7)`
        assert.strictEqual(cast?.n, 7)
        const [raw] = yield* sql<{ n: unknown; big: unknown }>`
          SELECT count(*) AS n, 9007199254740993::int8 AS big FROM generate_series(1, 7)`
        assert.strictEqual(yield* Schema.decodeUnknown(Database.Int8)(raw?.n), 7)
        assert.strictEqual(raw?.big, "9007199254740993")
      }))

    it.effect("supports values, stream, updateValues and reserve", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL)`
        yield* sql`INSERT INTO people ${sql.insert([{ id: 1, name: "a" }, { id: 2, name: "b" }, { id: 3, name: "c" }])}`
        yield* sql`UPDATE people SET name = data.name
          FROM ${sql.updateValues([{ id: 1, name: "x" }, { id: 3, name: "z" }], "data")}
          WHERE people.id = data.id::int`
        assert.deepStrictEqual(yield* sql`SELECT id, name FROM people ORDER BY id`.values, [[1, "x"], [2, "b"], [
          3,
          "z"
        ]])
        const streamed = yield* sql<{ id: number }>`SELECT id FROM people WHERE id > ${1} ORDER BY id`.stream.pipe(
          Stream.runCollect
        )
        assert.deepStrictEqual(Chunk.toReadonlyArray(streamed), [{ id: 2 }, { id: 3 }])
        const reserved = yield* Effect.scoped(
          Effect.flatMap(sql.reserve, (conn) => conn.execute("SELECT 1 AS one", [], undefined))
        )
        assert.deepStrictEqual(reserved, [{ one: 1 }])
      }))

    it.effect("runs multi-statement DDL (the migrations path), also in a transaction", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.withTransaction(sql.unsafe(`
          CREATE TABLE ddl_a (id int PRIMARY KEY, note text DEFAULT 'a;b');
          CREATE INDEX ddl_a_note ON ddl_a (note);
          -- a comment; with a semicolon
          CREATE TABLE ddl_b (id int PRIMARY KEY REFERENCES ddl_a (id));
          INSERT INTO ddl_a (id) VALUES (1), (2);
        `))
        yield* sql`INSERT INTO ddl_b VALUES (${2})`
        const rows = yield* sql`SELECT a.id, a.note FROM ddl_a a JOIN ddl_b b USING (id)`
        assert.deepStrictEqual(rows, [{ id: 2, note: "a;b" }])
        const failed = yield* sql.withTransaction(
          sql.unsafe("CREATE TABLE ddl_c (id int); CREATE TABLE ddl_a (id int);")
        )
          .pipe(Effect.flip)
        assert.strictEqual(failed._tag, "SqlError")
        const [exists] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'ddl_c'`
        assert.strictEqual(exists?.n, 0)
      }))

    it.effect("delivers a notification to a listener", () =>
      Effect.gen(function*() {
        const payload = yield* receiveOne("batch_events", "batch 42 up to 7; it's \"fine\"")
        assert.strictEqual(payload._tag, "Some")
        assert.strictEqual(payload._tag === "Some" ? payload.value : undefined, "batch 42 up to 7; it's \"fine\"")
      }))

    it.effect("keeps a channel listened while another subscriber of it leaves", () =>
      Effect.gen(function*() {
        const notifier = yield* Notifier.Notifier
        const live = yield* Deferred.make<void>()
        const staying = yield* notifier.listen("Shared-Channel").pipe(
          Stream.tap((p) => p === "ping" ? Deferred.succeed(live, undefined) : Effect.void),
          Stream.filter((p) => p === "after"),
          Stream.runHead,
          Effect.fork
        )
        const pings = yield* notifier.notify("Shared-Channel", "ping").pipe(
          Effect.repeat(Schedule.spaced("50 millis")),
          Effect.fork
        )
        yield* Deferred.await(live)
        yield* Fiber.interrupt(pings)
        const leaving = yield* receiveOne("Shared-Channel", "leaving")
        assert.strictEqual(leaving._tag, "Some")
        yield* notifier.notify("Shared-Channel", "after").pipe(Effect.repeat(Schedule.spaced("50 millis")), Effect.fork)
        const after = yield* Fiber.join(staying).pipe(Effect.timeout("10 seconds"))
        assert.strictEqual(after._tag, "Some")
      }))
  })
}
