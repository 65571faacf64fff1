/**
 * `serve` and `demo`: the server over `DATABASE_URL` or the embedded database.
 *
 * @since 0.1.0
 */
import { Ids } from "@effect-batch/domain"
import { Database } from "@effect-batch/tables"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { BatchOrchestrator } from "../BatchOrchestrator.js"
import * as Demo from "../Demo.js"
import * as EffectBatch from "../EffectBatch.js"
import * as Http from "../Http.js"
import * as Auth from "../Http/Auth.js"
import * as Dashboard from "../Http/Dashboard.js"
import * as WorkflowRegistry from "../WorkflowRegistry.js"
import * as Watch from "./Watch.js"

/**
 * The interface `serve` and `demo` listen on unless `--host` says otherwise: this machine only.
 *
 * @since 0.1.0
 */
export const defaultHost = "127.0.0.1"

/**
 * Where to listen.
 *
 * @since 0.1.0
 */
export interface Listen {
  readonly port: number
  readonly host: string
}

/**
 * The configured tokens. Without any, the demo (and `serve --demo`) accepts the demo's token, and
 * `serve` refuses to start: a server nobody configured is not open to everyone.
 */
const tokens = (demo: boolean) =>
  Effect.flatMap(Config.option(Config.redacted(Auth.envVar)), (configured) => {
    if (Option.isNone(configured) && !demo) {
      return Effect.fail(ConfigError.MissingData(
        [Auth.envVar],
        `serve needs tokens: set ${Auth.envVar}=<token>=<tenant>[:<actor>],… (or pass --demo to accept the demo token)`
      ))
    }
    const text = Option.match(configured, {
      onNone: () => `${Demo.token}=${Demo.tenant}:demo-user`,
      onSome: Redacted.value
    })
    return Either.match(Auth.parse(text), {
      onLeft: (message) => Effect.fail(ConfigError.InvalidData([Auth.envVar], message)),
      onRight: (parsed) => Effect.succeed({ tokens: parsed, demo: Option.isNone(configured) })
    })
  })

/** The dashboard's address: with the demo token when it is the one accepted; a configured one is never shown. */
const dashboardUrl = (url: string, demo: boolean) =>
  demo ? `${url}/?token=${encodeURIComponent(Demo.token)}` : `${url}/`

/**
 * The server (with the dashboard at `/`) with the demo workflow registered, on the database of the
 * environment.
 *
 * @since 0.1.0
 */
export const layer = (listen: Listen & { readonly demo: boolean }) =>
  Layer.unwrapEffect(
    Effect.map(tokens(listen.demo), (configured) =>
      Http.layer({ port: listen.port, host: listen.host, routes: Dashboard.layer }).pipe(
        Layer.provideMerge(EffectBatch.layer),
        Layer.provide(Http.layerAuth(configured.tokens)),
        Layer.provide(WorkflowRegistry.layer(Demo.workflow)),
        Layer.provide(Database.layer),
        Layer.provideMerge(Layer.succeed(AcceptsDemoToken, configured.demo))
      ))
  )

/** Whether the server accepts the demo's token (no token is configured and it runs as a demo). */
class AcceptsDemoToken extends Context.Tag("@effect-batch/cli/AcceptsDemoToken")<AcceptsDemoToken, boolean>() {}

/**
 * Serves until interrupted.
 *
 * @since 0.1.0
 */
export const serve = (listen: Listen & { readonly demo: boolean }) =>
  Effect.gen(function*() {
    const url = yield* Http.url
    yield* Console.log(`effect-batch listening on ${url} (dashboard: ${dashboardUrl(url, yield* AcceptsDemoToken)})`)
    return yield* Effect.never
  }).pipe(Effect.provide(layer(listen)))

/**
 * The demo: submits the sample batch (or finds the one a previous run submitted), shows its
 * progress until it waits for review, then keeps serving the dashboard unless `untilReview`.
 *
 * @since 0.1.0
 */
export const demo = (options: Listen & { readonly items: number; readonly untilReview: boolean }) =>
  Effect.gen(function*() {
    const url = yield* Http.url
    const orchestrator = yield* BatchOrchestrator
    const caller = { tenant: Schema.decodeSync(Ids.TenantId)(Demo.tenant), actor: "demo" }
    const batch = yield* orchestrator.submit(Demo.workflow, Demo.documents(options.items), Demo.config, {
      ...caller,
      idempotencyKey: `demo-${options.items}`
    })
    const demoToken = yield* AcceptsDemoToken
    yield* Console.log(`Dashboard: ${dashboardUrl(url, demoToken)}`)
    yield* Console.log(`Batch ${batch.id}: ${batch.counts.queued + batch.counts.running} item(s) to go`)
    const waiting = batch.state._tag !== "Running" && batch.state._tag !== "Paused" && batch.state._tag !== "Pending"
    const last = yield* Watch.watch({
      events: waiting ? Stream.empty : orchestrator.events(caller, batch.id, batch.lastSeq),
      progress: orchestrator.progress(caller, batch.id),
      output: process.stdout,
      stopAt: (event) => event._tag === "ReviewRequested"
    })
    yield* Console.log(
      `Batch ${batch.id} is ${last.state._tag}: ${last.counts.succeeded} succeeded, ${last.counts.failed} failed, ` +
        `${last.counts.quarantined} quarantined.`
    )
    if (options.untilReview) return last
    yield* Console.log(
      `Approve or reject it in the dashboard, or (in another terminal): bun run cli approve ${batch.id}` +
        `${demoToken ? ` --token ${Demo.token}` : ""} --url ${url}. Ctrl-C to stop.`
    )
    return yield* Effect.never
  }).pipe(Effect.provide(layer({ ...options, demo: true })))
