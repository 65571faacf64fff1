/**
 * Bad input is rejected with a message that names the offending field.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { BatchConfig, BatchEvent, BatchState, Ids } from "../src/index.js"
import * as Samples from "./Samples.js"

/** The formatted error of a decode that must fail. */
const rejection = <A>(decode: (input: unknown) => Effect.Effect<A, ParseResult.ParseError, never>, input: unknown) =>
  decode(input).pipe(Effect.flip, Effect.map(ParseResult.TreeFormatter.formatErrorSync))

const assertMentions = (message: string, ...parts: ReadonlyArray<string>) => {
  for (const part of parts) assert.include(message, part)
}

const decodeConfig = (input: unknown) => BatchConfig.decode(input)

describe("BatchState", () => {
  it.effect("an unknown state tag", () =>
    Effect.gen(function*() {
      const message = yield* rejection(Schema.decodeUnknown(BatchState.BatchState), {
        _tag: "Exploded",
        since: "1970-01-01T00:00:00.000Z"
      })
      assertMentions(message, "[\"_tag\"]", "actual \"Exploded\"", "\"Running\"")
    }))

  it.effect("a known tag with a bad field", () =>
    Effect.gen(function*() {
      const message = yield* rejection(Schema.decodeUnknown(BatchState.BatchState), {
        _tag: "Running",
        since: "1970-01-01T00:00:00.000Z",
        round: 0
      })
      assertMentions(message, "[\"round\"]", "actual 0")
    }))
})

describe("BatchEvent", () => {
  const common = { batchId: Samples.batchId, seq: 1, at: "1970-01-01T00:00:00.000Z" }

  it.effect("an unknown event tag", () =>
    Effect.gen(function*() {
      const message = yield* rejection(Schema.decodeUnknown(BatchEvent.BatchEvent), {
        _tag: "BatchExploded",
        ...common
      })
      assertMentions(message, "[\"_tag\"]", "actual \"BatchExploded\"", "\"BatchCreated\"")
    }))

  it.effect("a batch id that is not a UUID", () =>
    Effect.gen(function*() {
      const message = yield* rejection(Schema.decodeUnknown(BatchEvent.BatchEvent), {
        _tag: "BatchStarted",
        ...common,
        batchId: "batch-1",
        round: 1
      })
      assertMentions(message, "[\"batchId\"]", "BatchId", "Universally Unique Identifier", "\"batch-1\"")
    }))

  it.effect("an empty item key", () =>
    Effect.gen(function*() {
      const message = yield* rejection(Schema.decodeUnknown(BatchEvent.BatchEvent), {
        _tag: "ItemStarted",
        ...common,
        itemKey: "",
        attempt: 1,
        round: 1
      })
      assertMentions(message, "[\"itemKey\"]", "ItemKey must not be empty")
    }))

  it.effect("a negative sequence number", () =>
    Effect.gen(function*() {
      const message = yield* rejection(Schema.decodeUnknown(BatchEvent.BatchEvent), {
        _tag: "BatchStarted",
        ...common,
        seq: -1,
        round: 1
      })
      assertMentions(message, "[\"seq\"]", "actual -1")
    }))
})

describe("BatchConfig", () => {
  for (const concurrency of [-1, 0, 1.5, 10_001]) {
    it.effect(`concurrency ${concurrency}`, () =>
      Effect.gen(function*() {
        const message = yield* rejection(decodeConfig, { concurrency })
        assertMentions(message, "[\"concurrency\"]", "integer")
      }))
  }

  it.effect("maxFailureRatio above 1", () =>
    Effect.gen(function*() {
      const message = yield* rejection(decodeConfig, { errorBudget: { maxFailureRatio: 1.5 } })
      assertMentions(
        message,
        "[\"errorBudget\"]",
        "[\"maxFailureRatio\"]",
        "errorBudget.maxFailureRatio must be a number between 0 and 1"
      )
    }))

  it.effect("an unknown failure policy", () =>
    Effect.gen(function*() {
      const message = yield* rejection(decodeConfig, { failurePolicy: "yolo" })
      assertMentions(message, "[\"failurePolicy\"]", "actual \"yolo\"", "\"abort-all\"")
    }))

  for (const timeout of ["abc", "-5 seconds", "", "5 parsecs", "5seconds", "Infinity millis"]) {
    it.effect(`a malformed duration ${JSON.stringify(timeout)}`, () =>
      Effect.gen(function*() {
        const message = yield* rejection(decodeConfig, { timeout })
        assertMentions(message, "[\"timeout\"]", `got ${JSON.stringify(timeout)}`)
      }))
  }

  it.effect("a duration that is not a whole number of milliseconds", () =>
    Effect.gen(function*() {
      const message = yield* rejection(decodeConfig, { timeout: "1.5 millis" })
      assertMentions(message, "[\"timeout\"]", "whole milliseconds")
    }))

  it.effect("a malformed nested duration", () =>
    Effect.gen(function*() {
      const message = yield* rejection(decodeConfig, { retry: { base: "-200 millis" } })
      assertMentions(message, "[\"retry\"]", "[\"base\"]", "got \"-200 millis\"")
    }))

  it.effect("a lease shorter than a second", () =>
    Effect.gen(function*() {
      const message = yield* rejection(decodeConfig, { leaseDuration: "500 millis" })
      assertMentions(message, "[\"leaseDuration\"]", "leaseDuration must be at least 1 second")
    }))

  it.effect("an excess property", () =>
    Effect.gen(function*() {
      const message = yield* rejection(decodeConfig, { concurency: 4 })
      assertMentions(message, "[\"concurency\"]", "is unexpected", "\"concurrency\"")
    }))

  it.effect("an excess nested property", () =>
    Effect.gen(function*() {
      const message = yield* rejection(decodeConfig, { retry: { maxAtempts: 3 } })
      assertMentions(message, "[\"retry\"]", "[\"maxAtempts\"]", "is unexpected", "\"maxAttempts\"")
    }))

  it.effect("a bad rate limiter name", () =>
    Effect.gen(function*() {
      const message = yield* rejection(decodeConfig, {
        rateLimits: { "bad name!": { limit: 1, interval: "1 second" } }
      })
      assertMentions(message, "[\"rateLimits\"]", "[\"bad name!\"]")
    }))

  it.effect("every bad field is listed at once", () =>
    Effect.gen(function*() {
      const message = yield* rejection(decodeConfig, {
        concurrency: 0,
        timeout: "soon",
        retry: { jitter: 2 },
        pauseAfterConsecutiveFailures: 0
      })
      assertMentions(
        message,
        "[\"concurrency\"]",
        "[\"timeout\"]",
        "[\"retry\"]",
        "retry.jitter must be a number between 0 and 1",
        "[\"pauseAfterConsecutiveFailures\"]"
      )
    }))

  it.effect("the message of the ParseError names the field too", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decodeConfig({ concurrency: -1 }))
      assert.strictEqual(error._tag, "ParseError")
      assertMentions(error.message, "[\"concurrency\"]", "concurrency must be an integer between 1 and 10000")
    }))
})

describe("ids", () => {
  const empty: ReadonlyArray<readonly [string, (input: unknown) => Effect.Effect<string, ParseResult.ParseError>]> = [
    ["ItemKey", Schema.decodeUnknown(Ids.ItemKey)],
    ["TenantId", Schema.decodeUnknown(Ids.TenantId)],
    ["WorkflowName", Schema.decodeUnknown(Ids.WorkflowName)],
    ["IdempotencyKey", Schema.decodeUnknown(Ids.IdempotencyKey)]
  ]
  for (const [name, decode] of empty) {
    for (const input of ["", "   "]) {
      it.effect(`an empty ${name} (${JSON.stringify(input)})`, () =>
        Effect.gen(function*() {
          const message = yield* rejection(decode, input)
          assert.strictEqual(message, `${name} must not be empty`)
        }))
    }
  }

  it.effect("a too long ItemKey", () =>
    Effect.gen(function*() {
      const message = yield* rejection(Schema.decodeUnknown(Ids.ItemKey), "k".repeat(513))
      assertMentions(message, "ItemKey must be at most 512 characters")
    }))

  it.effect("a WorkflowName with a space", () =>
    Effect.gen(function*() {
      const message = yield* rejection(Schema.decodeUnknown(Ids.WorkflowName), "extract invoice")
      assertMentions(message, "WorkflowName may contain only letters, digits and _ . : -")
    }))

  for (const input of ["not-a-uuid", "", "6f1c1f8e-2d4b-4c3a-9f5e-1a2b3c4d5e6"]) {
    it.effect(`a BatchId that is not a UUID (${JSON.stringify(input)})`, () =>
      Effect.gen(function*() {
        const message = yield* rejection(Schema.decodeUnknown(Ids.BatchId), input)
        assertMentions(message, "BatchId", "Universally Unique Identifier", JSON.stringify(input))
      }))
  }

  for (const input of ["abc", "-1", "1.5"]) {
    it.effect(`a bad Last-Event-ID ${JSON.stringify(input)}`, () =>
      Effect.gen(function*() {
        const message = yield* rejection(Schema.decodeUnknown(Ids.SequenceFromString), input)
        assertMentions(message, "Sequence")
      }))
  }

  it.effect("ids are trimmed", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Schema.decodeUnknown(Ids.ItemKey)("  doc-1 "), "doc-1")
      assert.strictEqual(yield* Schema.decodeUnknown(Ids.SequenceFromString)("42"), 42)
    }))
})
