/**
 * The workflows this process can run.
 *
 * @since 0.1.0
 */
import type { Ids } from "@effect-batch/domain"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Workflow from "./Workflow.js"

/**
 * A workflow of any types.
 *
 * @since 0.1.0
 */

export type AnyWorkflow = Workflow.Workflow<any, any, any, any, any, any, any>

/**
 * The services a set of workflows needs.
 *
 * @since 0.1.0
 */
export type Requirements<W> = W extends Workflow.Workflow<
  infer _I,
  infer _IE,
  infer _O,
  infer _OE,
  infer _E,
  infer _EE,
  infer R
> ? R
  : never

/**
 * The registry of runnable workflows.
 *
 * @since 0.1.0
 */
export class WorkflowRegistry extends Context.Tag("@effect-batch/WorkflowRegistry")<WorkflowRegistry, {
  /** the runnable form of a registered workflow */
  readonly get: (name: Ids.WorkflowName) => Option.Option<Workflow.Runnable>
  /** every registered name */
  readonly names: ReadonlyArray<Ids.WorkflowName>
}>() {}

/**
 * A registry of the given workflows; their requirements are captured when the layer is built.
 *
 * @since 0.1.0
 */
export const layer = <const Ws extends ReadonlyArray<AnyWorkflow>>(
  ...workflows: Ws
): Layer.Layer<WorkflowRegistry, never, Requirements<Ws[number]>> =>
  Layer.effect(
    WorkflowRegistry,
    Effect.map(Effect.forEach(workflows, Workflow.toRunnable), (runnables) => {
      const byName = new Map(runnables.map((r) => [r.name, r] as const))
      return WorkflowRegistry.of({
        get: (name) => Option.fromNullable(byName.get(name)),
        names: runnables.map((r) => r.name)
      })
    })
  )
