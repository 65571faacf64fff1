/**
 * The workflow of the campaign tests: an item says whether it fails (`always`, or `once`: its first
 * run only) and how long it takes (on the clock of the process running it); every run is logged.
 */
import { Workflow } from "@effect-batch/server"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"

export class WorkFailed extends Schema.TaggedError<WorkFailed>()("WorkFailed", { reason: Schema.String }) {}

export const Input = Schema.Struct({
  n: Schema.Int,
  fail: Schema.optionalWith(Schema.Literal("never", "always", "once"), { default: () => "never" }),
  ms: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0 })
})

export type Runs = Ref.Ref<ReadonlyArray<string>>

export const makeRuns = Ref.make<ReadonlyArray<string>>([])

export const campaignWork = (runs: Runs) =>
  Workflow.make({
    name: "campaign-work",
    input: Input,
    output: Schema.Struct({ n: Schema.Int }),
    error: WorkFailed,
    retryable: () => false,
    run: (input, context) =>
      Effect.gen(function*() {
        const before = yield* Ref.getAndUpdate(runs, (all) => [...all, context.itemKey])
        if (input.ms > 0) yield* Effect.sleep(Duration.millis(input.ms))
        if (input.fail === "always" || (input.fail === "once" && !before.includes(context.itemKey))) {
          return yield* new WorkFailed({ reason: `item ${input.n} failed` })
        }
        return { n: input.n }
      })
  })

/** `count` items keyed `m-00000` … in input order, with the given behaviour per index. */
export const campaignItems = (
  count: number,
  behaviour: (n: number) => Partial<{ readonly fail: "never" | "always" | "once"; readonly ms: number }> = () => ({})
) =>
  Array.from({ length: count }, (_, n) => ({ key: `m-${String(n).padStart(5, "0")}`, input: { n, ...behaviour(n) } }))
