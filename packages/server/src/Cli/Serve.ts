/**
 * `serve` and `demo`: the server over `DATABASE_URL` or the embedded database, with the workflows of
 * the user's modules (`serve --workflows`) or the demo's.
 *
 * @since 0.1.0
 */
import { CampaignEvent, Ids } from "@effect-batch/domain"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { BatchOrchestrator } from "../BatchOrchestrator.js"
import { CampaignOrchestrator } from "../CampaignOrchestrator.js"
import * as Demo from "../Demo.js"
import * as Http from "../Http.js"
import * as Server from "../Server.js"
import * as CampaignWatch from "./CampaignWatch.js"
import * as Tokens from "./Tokens.js"
import * as Watch from "./Watch.js"
import * as Workflows from "./Workflows.js"

/**
 * Where to listen.
 *
 * @since 0.1.0
 */
export interface Listen {
  readonly port: number
  readonly host: string
}

/** The dashboard's address: with the demo token when it is the one accepted; a configured one is never shown. */
const dashboardUrl = (url: string, demo: boolean) =>
  demo ? `${url}/?token=${encodeURIComponent(Demo.token)}` : `${url}/`

/**
 * What `serve` and `demo` run with, once read and checked.
 *
 * @since 0.5.0
 */
export interface Resolved extends Listen {
  readonly tokens: Tokens.Configured
  readonly workflows: ReadonlyArray<Workflows.Loaded>
  readonly drainTimeout: Duration.Duration
}

/**
 * The server (with the dashboard at `/`) with the given workflows registered, on the database of the
 * environment: `Server.layer` with the shared limiters and HTTP limits of the environment.
 *
 * @since 0.1.0
 */
export const layer = (options: Resolved) =>
  Layer.unwrapEffect(
    Effect.map(Effect.all({ limiters: Server.limiters, http: Server.httpLimits }), ({ http, limiters }) =>
      Server.layer({
        workflows: options.workflows.map((loaded) => loaded.workflow),
        port: options.port,
        host: options.host,
        tokens: options.tokens.tokens,
        limiters,
        drainTimeout: options.drainTimeout,
        http
      }).pipe(Layer.provideMerge(Layer.succeed(AcceptsDemoToken, options.tokens.demo))))
  )

/** Whether the server accepts the demo's token (no token is configured and it runs as a demo). */
class AcceptsDemoToken extends Context.Tag("@effect-batch/cli/AcceptsDemoToken")<AcceptsDemoToken, boolean>() {}

/**
 * How `serve` is started.
 *
 * @since 0.5.0
 */
export interface ServeOptions extends Listen {
  /** accept the demo token when none is configured, and serve the demo workflow */
  readonly demo: boolean
  /** the workflow modules, paths relative to the working directory */
  readonly workflows: ReadonlyArray<string>
  /** the file of tokens (instead of `EFFECT_BATCH_TOKENS`) */
  readonly tokensFile: Option.Option<string>
  /** how long running attempts may take to finish on shutdown */
  readonly drainTimeout: Duration.Duration
}

/** The workflows of `--workflows`, with the demo's under `--demo`; none at all is an error. */
const workflowsOf = (options: ServeOptions) =>
  options.workflows.length === 0 && !options.demo
    ? Effect.fail(ConfigError.MissingData(
      [Workflows.envVar],
      `serve needs workflows: pass --workflows ./workflows.js[,./more.js] (or set ${Workflows.envVar}) naming ` +
        "modules that export them; the demo workflow is served only with --demo"
    ))
    : Workflows.load(options.workflows, {
      cwd: process.cwd(),
      builtIn: options.demo
        ? [{ module: "--demo", workflow: Demo.workflow }, { module: "--demo", workflow: Demo.materialWorkflow }]
        : []
    })

/**
 * Serves until interrupted (SIGTERM, SIGINT): then event streams end, the last RPCs are answered,
 * nothing new starts, running attempts get `drainTimeout` to finish and the rest goes back to the
 * queue.
 *
 * @since 0.1.0
 */
export const serve = (options: ServeOptions) =>
  Effect.gen(function*() {
    const tokens = yield* Tokens.configured({ demo: options.demo, file: options.tokensFile })
    const workflows = yield* workflowsOf(options)
    yield* Console.log(
      `effect-batch workflows: ${workflows.map((l) => `${l.workflow.name} (${l.module})`).join(", ")}`
    )
    return yield* Effect.gen(function*() {
      const url = yield* Http.url
      yield* Console.log(`effect-batch listening on ${url} (dashboard: ${dashboardUrl(url, yield* AcceptsDemoToken)})`)
      return yield* Effect.never
    }).pipe(Effect.provide(layer({ ...options, tokens, workflows })))
  })

/** A command of the command line as a user runs it from the repository against this server. */
const cliCommand = (command: string, id: string, url: string, demoToken: boolean) =>
  `bun run cli ${command} ${id}${demoToken ? ` --token ${Demo.token}` : ""} --url ${url}`

/**
 * The demo: submits the sample batch and the sample campaign (or finds the ones a previous run
 * submitted), shows their progress until both wait for review, then keeps serving the dashboard
 * unless `untilReview`.
 *
 * @since 0.1.0
 */
export const demo = (options: Listen & { readonly items: number; readonly untilReview: boolean }) =>
  Effect.gen(function*() {
    const url = yield* Http.url
    const orchestrator = yield* BatchOrchestrator
    const campaigns = yield* CampaignOrchestrator
    const caller = { tenant: Schema.decodeSync(Ids.TenantId)(Demo.tenant), actor: "demo" }
    const batch = yield* orchestrator.submit(Demo.workflow, Demo.documents(options.items), Demo.config, {
      ...caller,
      idempotencyKey: `demo-${options.items}`
    })
    const campaign = yield* campaigns.submitCampaign(
      Demo.materialWorkflow,
      Demo.materials(Demo.materialCount),
      Demo.campaignConfig,
      { ...caller, idempotencyKey: `demo-materials-${Demo.materialCount}` }
    )
    const demoToken = yield* AcceptsDemoToken
    const cli = (command: string, id: string) => cliCommand(command, id, url, demoToken)
    yield* Console.log(`Dashboard: ${dashboardUrl(url, demoToken)}`)
    yield* Console.log(`Batch ${batch.id}: ${batch.counts.queued + batch.counts.running} item(s) to go`)
    yield* Console.log(
      `Campaign ${campaign.id}: ${campaign.total} materials in ${campaign.batches.total} batches of ` +
        `${campaign.config.batchSize}, ${campaign.config.concurrency} at a time, ` +
        `${campaign.batches.total - campaign.batches.done} batch(es) to go. ` +
        `Follow it (in another terminal): ${cli("campaign watch", campaign.id)}`
    )
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
    const following = campaign.state._tag === "Running" || campaign.state._tag === "Paused"
    const settled = yield* CampaignWatch.watch({
      events: following ? campaigns.events(caller, campaign.id, campaign.lastSeq) : Stream.empty,
      progress: campaigns.progress(caller, campaign.id),
      output: process.stdout,
      stopAt: (event) => event._tag === "CampaignReviewRequested" || CampaignEvent.isTerminal(event)
    })
    yield* Console.log(
      `Campaign ${campaign.id} is ${settled.state._tag}: ${settled.batches.done}/${settled.batches.total} batches, ` +
        `${settled.counts.succeeded} succeeded, ${settled.counts.failed} failed.`
    )
    if (options.untilReview) return last
    yield* Console.log(
      `Approve or reject them in the dashboard, or (in another terminal): ${cli("approve", batch.id)} and ` +
        `${cli("campaign approve", campaign.id)} (or reject). Ctrl-C to stop.`
    )
    return yield* Effect.never
  }).pipe(
    Effect.provide(Layer.unwrapEffect(Effect.map(
      Tokens.configured({ demo: true, file: Option.none() }),
      (tokens) =>
        layer({
          ...options,
          tokens,
          workflows: [{ module: "demo", workflow: Demo.workflow }, { module: "demo", workflow: Demo.materialWorkflow }],
          drainTimeout: Duration.zero
        })
    )))
  )
