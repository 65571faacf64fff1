/**
 * Durations written as readable strings in JSON ("30 seconds", "200 millis").
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

const units: ReadonlyArray<readonly [millis: number, singular: string, plural: string]> = [
  [604_800_000, "week", "weeks"],
  [86_400_000, "day", "days"],
  [3_600_000, "hour", "hours"],
  [60_000, "minute", "minutes"],
  [1_000, "second", "seconds"],
  [1, "milli", "millis"]
]

/**
 * Formats a duration in its largest whole unit, e.g. `"2 minutes"`, `"1500 millis"`.
 *
 * @since 0.1.0
 */
export const format = (duration: Duration.Duration): string => {
  const millis = Math.round(Duration.toMillis(duration))
  for (const [size, singular, plural] of units) {
    if (millis >= size && millis % size === 0) {
      const n = millis / size
      return `${n} ${n === 1 ? singular : plural}`
    }
  }
  return `${millis} millis`
}

// Only whole, safe-integer milliseconds survive `format`: an infinite or sub-millisecond duration
// would encode to a string that does not decode back (or decodes to another duration).
const WholeMillis = Schema.DurationFromSelf.pipe(
  Schema.filter((d) => {
    const millis = Duration.toMillis(d)
    return (Number.isSafeInteger(millis) && millis >= 0) ||
      "expected a finite, non-negative duration in whole milliseconds"
  }, {
    arbitrary: () => (fc) =>
      fc.oneof(fc.nat(), fc.nat({ max: 100_000 }).map((n) => n * 1_000)).map((n) => Duration.millis(n))
  })
)

/**
 * A finite, non-negative duration in whole milliseconds, encoded as a readable string such as
 * `"30 seconds"`.
 *
 * @since 0.1.0
 */
export const DurationString = Schema.transformOrFail(Schema.String, WholeMillis, {
  strict: true,
  decode: (s, _, ast) =>
    // `Duration` clamps a negative input to zero: reject the sign before parsing
    Option.match(s.trim().startsWith("-") ? Option.none() : Duration.decodeUnknown(s.trim()), {
      onNone: () =>
        ParseResult.fail(
          new ParseResult.Type(
            ast,
            s,
            `expected a duration such as "30 seconds" or "200 millis", got ${JSON.stringify(s)}`
          )
        ),
      onSome: (d) =>
        Duration.isFinite(d) && Duration.toMillis(d) >= 0
          ? ParseResult.succeed(d)
          : ParseResult.fail(new ParseResult.Type(ast, s, "expected a finite, non-negative duration"))
    }),
  encode: (d) => ParseResult.succeed(format(d))
}).annotations({ identifier: "DurationString" })
