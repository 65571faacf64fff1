#!/usr/bin/env node
/**
 * The `effect-batch` executable.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Cli from "./Cli.js"
import * as Observability from "./Observability.js"

Cli.run(process.argv).pipe(
  Effect.provide(Observability.layerConfig),
  Effect.tapError((error) =>
    ConfigError.isConfigError(error)
      ? Console.error(`configuration: ${String(error)}`)
      : Predicate.hasProperty(error, "_tag") && Predicate.hasProperty(error, "message")
      ? Console.error(`${String(error._tag)}: ${String(error.message)}`)
      : Effect.void
  ),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
