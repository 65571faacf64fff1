/**
 * The `effect-batch` command line: `demo`, `serve`, `submit`, `watch`, `status`, `trends`, `results`, the
 * batch commands, `campaign …`, `limiters`, and `backup` / `restore` of the embedded database.
 *
 * @since 0.1.0
 */
import { Duration, type SharedLimiter, Views } from "@effect-batch/domain"
import { DurationString } from "@effect-batch/domain/Duration"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Module from "node:module"
import { BatchClient, layerFetch } from "./BatchClient.js"
import * as Backup from "./Cli/Backup.js"
import * as Campaign from "./Cli/Campaign.js"
import * as Client from "./Cli/Client.js"
import { parseItems } from "./Cli/Items.js"
import * as Serve from "./Cli/Serve.js"
import * as Trends from "./Cli/Trends.js"
import * as Watch from "./Cli/Watch.js"
import * as Workflows from "./Cli/Workflows.js"
import * as Auth from "./Http/Auth.js"
import * as Server from "./Server.js"

const port = Options.integer("port").pipe(
  Options.withFallbackConfig(Server.port),
  Options.withDescription("the port to listen on (or PORT)")
)
const host = Options.text("host").pipe(
  Options.withFallbackConfig(Server.host),
  Options.withDescription("the interface to listen on (or EFFECT_BATCH_HOST); 0.0.0.0 for every interface")
)
const url = Options.text("url").pipe(
  Options.withDefault(process.env["EFFECT_BATCH_URL"] ?? "http://127.0.0.1:3000"),
  Options.withDescription("the server (or EFFECT_BATCH_URL)")
)
const token = Options.text("token").pipe(
  Options.withDefault(process.env["EFFECT_BATCH_TOKEN"] ?? ""),
  Options.withDescription("the bearer token (or EFFECT_BATCH_TOKEN); required")
)
const batchId = Args.text({ name: "batch-id" })

const decodeDrainTimeout = (text: string) =>
  Schema.decodeUnknown(DurationString)(text).pipe(
    Effect.mapError(() =>
      ConfigError.InvalidData(
        ["EFFECT_BATCH_DRAIN_TIMEOUT"],
        `--drain-timeout: expected a duration such as "5 seconds"`
      )
    )
  )
const note = Options.text("note").pipe(Options.withDefault(""), Options.withDescription("a note for the record"))

const withClient = Client.withClient(BatchClient, layerFetch)

const printBatch = (batch: { readonly id: string; readonly state: { readonly _tag: string } }) =>
  Console.log(`${batch.id} ${batch.state._tag}`)

const demo = Command.make(
  "demo",
  {
    port,
    host,
    items: Options.integer("items").pipe(Options.withDefault(300)),
    untilReview: Options.boolean("until-review").pipe(
      Options.withDescription("exit once the batch and the campaign wait for review (for CI)")
    )
  },
  (o) =>
    Serve.demo({
      port: o.port,
      host: o.host,
      items: o.items,
      untilReview: o.untilReview || process.env["CI"] === "true"
    })
).pipe(Command.withDescription("serve the dashboard on the embedded database and run the demo batch and campaign"))

const serve = Command.make(
  "serve",
  {
    port,
    host,
    workflows: Options.text("workflows").pipe(
      Options.withDefault(process.env[Workflows.envVar] ?? ""),
      Options.withDescription(
        `the modules whose exported workflows to serve, comma-separated paths (or ${Workflows.envVar}); ` +
          "JavaScript, or TypeScript under a loader such as tsx"
      )
    ),
    tokensFile: Options.text("tokens-file").pipe(
      Options.withDefault(process.env[Auth.fileEnvVar] ?? ""),
      Options.withDescription(
        `a file of tokens, token=tenant[:actor] by line or comma, # comments (or ${Auth.fileEnvVar}); ` +
          `instead of ${Auth.envVar}`
      )
    ),
    drainTimeout: Options.text("drain-timeout").pipe(
      Options.withDefault(process.env["EFFECT_BATCH_DRAIN_TIMEOUT"] ?? "5 seconds"),
      Options.withDescription(
        "on SIGTERM or SIGINT, how long running attempts may take to finish before they are interrupted " +
          "and go back to the queue (or EFFECT_BATCH_DRAIN_TIMEOUT)"
      )
    ),
    demo: Options.boolean("demo").pipe(
      Options.withDescription(
        "serve the demo workflow and, without EFFECT_BATCH_TOKENS, accept the demo's token (never in production)"
      )
    )
  },
  (o) =>
    Effect.flatMap(decodeDrainTimeout(o.drainTimeout), (drainTimeout) =>
      Serve.serve({
        port: o.port,
        host: o.host,
        demo: o.demo,
        workflows: Workflows.parseList(o.workflows),
        tokensFile: Option.liftPredicate(o.tokensFile, (path) => path !== ""),
        drainTimeout
      }))
).pipe(
  Command.withDescription("serve the RPC, SSE and dashboard (DATABASE_URL or the embedded database)")
)

const submit = Command.make(
  "submit",
  {
    url,
    token,
    file: Args.file({ name: "file", exists: "yes" }),
    workflow: Options.text("workflow"),
    config: Options.text("config").pipe(Options.optional, Options.withDescription("the batch config as JSON")),
    idempotencyKey: Options.text("idempotency-key").pipe(Options.optional)
  },
  (o) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const items = yield* parseItems(yield* fs.readFileString(o.file))
      const config = Option.map(o.config, (text) => JSON.parse(text))
      const batch = yield* withClient(o, (client) =>
        client.create({
          workflow: o.workflow,
          items,
          ...Option.match(config, { onNone: () => ({}), onSome: (c) => ({ config: c }) }),
          ...Option.match(o.idempotencyKey, { onNone: () => ({}), onSome: (k) => ({ idempotencyKey: k }) })
        }))
      yield* printBatch(batch)
    })
).pipe(Command.withDescription("submit a JSON array or NDJSON file of { key, input } items"))

const watch = Command.make("watch", { url, token, batchId }, (o) =>
  withClient(o, (client) =>
    Watch.watch({
      events: client.watch(o.batchId),
      progress: client.progress(o.batchId),
      output: process.stdout,
      stopAt: (event) => event._tag === "ReviewRequested"
    }))).pipe(
    Command.withDescription("show a progress bar with counts, rate and ETA until the batch settles or waits for review")
  )

const status = Command.make(
  "status",
  { url, token, batchId },
  (o) =>
    withClient(
      o,
      (client) =>
        Effect.flatMap(client.progress(o.batchId), (progress) => Console.log(JSON.stringify(progress, null, 2)))
    )
).pipe(
  Command.withDescription("print the batch's progress snapshot as JSON")
)

const trends = Command.make(
  "trends",
  { url, token, batchId, json: Options.boolean("json").pipe(Options.withDescription("print the trends as JSON")) },
  (o) =>
    withClient(
      o,
      (client) =>
        Effect.flatMap(client.trends(o.batchId), (t) =>
          Console.log(o.json ? JSON.stringify(Schema.encodeSync(Views.Trends)(t), null, 2) : Trends.render(t)))
    )
).pipe(
  Command.withDescription("print the batch's slowdown status (off, learning, normal, slow) and its latest windows")
)

const results = Command.make(
  "results",
  { url, token, batchId },
  (o) =>
    withClient(o, (client) =>
      client.results(o.batchId).pipe(
        Stream.runForEach((result) => Console.log(JSON.stringify(result)))
      ))
).pipe(Command.withDescription("print every item's result as NDJSON, in key order"))

const simple = (
  name: "pause" | "resume" | "cancel" | "approve" | "reject",
  run: (
    client: BatchClient["Type"],
    id: string,
    note: string
  ) => Effect.Effect<{ readonly id: string; readonly state: { readonly _tag: string } }, unknown>
) =>
  Command.make(
    name,
    { url, token, batchId, note },
    (o) => withClient(o, (client) => Effect.flatMap(run(client, o.batchId, o.note), printBatch))
  ).pipe(
    Command.withDescription(`${name} a batch`)
  )

const retryFailed = Command.make(
  "retry-failed",
  { url, token, batchId, dryRun: Options.boolean("dry-run") },
  (o) =>
    withClient(o, (client) =>
      Effect.flatMap(
        client.retryFailed(o.batchId, { dryRun: o.dryRun }),
        (plan) =>
          Console.log(
            `${plan.dryRun ? "would re-queue" : "re-queued"} ${plan.count} item(s)${
              plan.items.length > 0 ? `: ${plan.items.join(", ")}${plan.count > plan.items.length ? ", ..." : ""}` : ""
            }`
          )
      ))
).pipe(Command.withDescription("re-queue the failed items of a settled batch (--dry-run shows which)"))

const rerunFromStep = Command.make(
  "rerun-from-step",
  {
    url,
    token,
    batchId,
    step: Options.text("step").pipe(Options.withDescription("the durable step to run again from")),
    keys: Options.text("keys").pipe(Options.withDescription("the items, comma-separated keys"))
  },
  (o) =>
    withClient(o, (client) =>
      Effect.flatMap(
        client.rerunFromStep(o.batchId, { itemKeys: o.keys.split(",").filter((k) => k !== ""), step: o.step }),
        (done) => Console.log(`re-queued ${done.requeued} item(s), discarded ${done.discarded} stored step(s)`)
      ))
).pipe(Command.withDescription("run items of a settled batch again from a named durable step"))

const formatLimiter = (l: SharedLimiter.View) =>
  [
    l.name,
    `${l.permitsInWindow}/${l.limit} per ${Duration.format(l.interval)}`,
    `available ${l.available}`,
    Option.match(l.heldBackUntil, {
      onNone: () => "not held back",
      onSome: (until) => `held back until ${DateTime.formatIso(until)}`
    }),
    `throttles ${l.throttles}`,
    `processes ${l.processes}`,
    `concurrency ${l.effectiveConcurrency}`
  ].join("  ")

const limiterName = Args.text({ name: "name" })

const limiters = Command.make("limiters").pipe(
  Command.withDescription("the tenant's shared rate limiters, exact across every process"),
  Command.withSubcommands([
    Command.make(
      "list",
      { url, token },
      (o) =>
        withClient(
          o,
          (client) =>
            Effect.flatMap(client.listLimiters(), (all) => Effect.forEach(all, (l) => Console.log(formatLimiter(l))))
        )
    ).pipe(
      Command.withDescription("each limiter with its state: permits in the window, hold, users")
    ),
    Command.make(
      "show",
      { url, token, name: limiterName },
      (o) => withClient(o, (client) => Effect.flatMap(client.getLimiter(o.name), (l) => Console.log(formatLimiter(l))))
    ).pipe(
      Command.withDescription("one limiter with its state")
    ),
    Command.make(
      "define",
      {
        url,
        token,
        name: limiterName,
        limit: Options.integer("limit").pipe(Options.withDescription("acquisitions allowed per interval")),
        interval: Options.text("interval").pipe(Options.withDescription("e.g. \"1 minute\", \"500 millis\""))
      },
      (o) =>
        withClient(o, (client) =>
          Effect.flatMap(
            client.defineLimiter({ name: o.name, limit: o.limit, interval: o.interval }),
            (l) => Console.log(formatLimiter(l))
          ))
    ).pipe(Command.withDescription("create a limiter or change its limit and interval")),
    Command.make(
      "delete",
      { url, token, name: limiterName },
      (o) => withClient(o, (client) => Effect.zipRight(client.deleteLimiter(o.name), Console.log(`deleted ${o.name}`)))
    ).pipe(
      Command.withDescription("delete a limiter (items that use it then fail with LimiterNotFound)")
    )
  ])
)

/**
 * The command tree.
 *
 * @since 0.1.0
 */
export const command = Command.make("effect-batch").pipe(
  Command.withSubcommands([
    demo,
    serve,
    submit,
    watch,
    status,
    trends,
    results,
    simple("pause", (c, id, n) => c.pause(id, n)),
    simple("resume", (c, id) => c.resume(id)),
    simple("cancel", (c, id, n) => c.cancel(id, n)),
    simple("approve", (c, id, n) => c.approve(id, n)),
    simple("reject", (c, id, n) => c.reject(id, n)),
    retryFailed,
    rerunFromStep,
    Campaign.make({ url, token, note }),
    limiters,
    ...Backup.commands
  ])
)

// package.json sits one level above this module in both `src` and `dist`
const { version } = Schema.decodeUnknownSync(Schema.Struct({ version: Schema.String }))(
  Module.createRequire(import.meta.url)("../package.json")
)

/**
 * Runs the command line on `argv`.
 *
 * @since 0.1.0
 */
export const run = Command.run(command, { name: "effect-batch", version })
