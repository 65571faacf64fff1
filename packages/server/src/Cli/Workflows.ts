/**
 * The workflows `serve --workflows` registers: every exported `Workflow` of the user's modules,
 * imported at start.
 *
 * @since 0.5.0
 */
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Path from "node:path"
import * as Url from "node:url"
import * as Workflow from "../Workflow.js"

/**
 * The variable `--workflows` falls back to: the same comma-separated list of modules.
 *
 * @since 0.5.0
 */
export const envVar = "EFFECT_BATCH_WORKFLOWS"

/**
 * A workflow module that cannot be served: it does not import, exports no workflow, or exports one
 * whose name another workflow has.
 *
 * @since 0.5.0
 */
export class WorkflowModuleError extends Schema.TaggedError<WorkflowModuleError>()("WorkflowModuleError", {
  module: Schema.String,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return `workflow module ${this.module}: ${this.reason}`
  }
}

/**
 * A workflow served by the CLI, with the module that exports it.
 *
 * @since 0.5.0
 */
export interface Loaded {
  readonly module: string
  readonly workflow: Workflow.Workflow<any, any, any, any, any, any, never>
}

/**
 * The modules of a comma-separated list (blank entries ignored).
 *
 * @since 0.5.0
 */
export const parseList = (text: string): ReadonlyArray<string> =>
  text.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "")

const messageOf = (cause: unknown) =>
  Predicate.hasProperty(cause, "message") && typeof cause.message === "string" ? cause.message : String(cause)

/** The module's exports: a path is resolved against `cwd` and imported by its file URL. */
const importModule = (module: string, cwd: string) =>
  Effect.tryPromise({
    try: (): Promise<Record<string, unknown>> => import(Url.pathToFileURL(Path.resolve(cwd, module)).href),
    catch: (cause) => new WorkflowModuleError({ module, reason: `cannot be imported: ${messageOf(cause)}`, cause })
  })

/**
 * Imports each module (a path, relative to `cwd`) and collects every exported workflow, with the ones
 * already given (`builtIn`, e.g. the demo's) ahead of them. A value exported under several names counts
 * once (and so does a module named twice); two workflows with one name are an error naming both modules.
 *
 * @since 0.5.0
 */
export const load = (
  modules: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly builtIn: ReadonlyArray<Loaded> }
): Effect.Effect<ReadonlyArray<Loaded>, WorkflowModuleError> =>
  Effect.reduce(
    modules,
    options.builtIn,
    (loaded, module) =>
      Effect.flatMap(importModule(module, options.cwd), (exports) => {
        const found = [...new Set(Object.values(exports).filter(Workflow.isWorkflow))]
        if (found.length === 0) {
          return Effect.fail(
            new WorkflowModuleError({ module, reason: "exports no workflow (a value made with Workflow.make)" })
          )
        }
        const all = [...loaded]
        for (const workflow of found) {
          const other = all.find((l) => l.workflow.name === workflow.name)
          if (other === undefined) {
            all.push({ module, workflow })
          } else if (other.workflow !== workflow) {
            return Effect.fail(
              new WorkflowModuleError({
                module,
                reason: `exports a workflow named ${JSON.stringify(workflow.name)}, and so does ${other.module}`
              })
            )
          }
        }
        return Effect.succeed(all)
      })
  )
