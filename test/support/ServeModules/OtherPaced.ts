import { Workflow } from "@effect-batch/server"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/** Another workflow named `paced`: serving it beside `ServeWorkflows.ts` is a conflict. */
export const otherPaced = Workflow.make({
  name: "paced",
  input: Schema.Unknown,
  output: Schema.Unknown,
  error: Schema.Never,
  run: Effect.succeed
})
