/**
 * The whole server — RPC, event streams, dashboard, `/health`, `/metrics` and the worker loop — as one
 * layer for a program that embeds it, configured from the same variables as `effect-batch serve`:
 *
 * | variable | meaning | default |
 * |---|---|---|
 * | `DATABASE_URL` | Postgres | unset: the embedded database |
 * | `EFFECT_BATCH_DATA_DIR` | the embedded database's folder | `./.effect-batch/db` |
 * | `PORT`, `EFFECT_BATCH_HOST` | where to listen | `3000`, `127.0.0.1` |
 * | `EFFECT_BATCH_TOKENS` or `EFFECT_BATCH_TOKENS_FILE` | `token=tenant[:actor]` entries | required |
 * | `EFFECT_BATCH_LIMITERS` | shared rate limiters by tenant, as JSON | none |
 * | `EFFECT_BATCH_DRAIN_TIMEOUT` | how long attempts may finish on shutdown | `5 seconds` |
 * | `EFFECT_BATCH_MAX_RPC_BODY_BYTES`, `EFFECT_BATCH_MAX_STREAMS_PER_TENANT`, `EFFECT_BATCH_REQUEST_TIMEOUT` | HTTP limits | `HttpConfig`'s |
 * | `EFFECT_BATCH_LOG_FORMAT`, `EFFECT_BATCH_LOG_LEVEL`, `OTEL_EXPORTER_OTLP_ENDPOINT` | logs and traces | see `Observability` |
 *
 * ```ts
 * Layer.launch(Server.layerConfig([WordCount])).pipe(NodeRuntime.runMain)
 * ```
 *
 * @since 0.6.0
 */
import { SharedLimiter } from "@effect-batch/domain"
import { Database } from "@effect-batch/tables"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Tokens from "./Cli/Tokens.js"
import * as EffectBatch from "./EffectBatch.js"
import * as Http from "./Http.js"
import type * as Auth from "./Http/Auth.js"
import type * as HttpConfig from "./Http/Config.js"
import * as Dashboard from "./Http/Dashboard.js"
import * as Storage from "./internal/Storage.js"
import * as Observability from "./Observability.js"
import * as SharedLimiters from "./SharedLimiters.js"
import * as Worker from "./Worker.js"
import * as WorkflowRegistry from "./WorkflowRegistry.js"

/**
 * The interface the server listens on unless configured otherwise: this machine only.
 *
 * @since 0.6.0
 */
export const defaultHost = "127.0.0.1"

/**
 * The port (`PORT`, default 3000).
 *
 * @since 0.6.0
 */
export const port: Config.Config<number> = Config.port("PORT").pipe(Config.withDefault(3000))

/**
 * The interface to listen on (`EFFECT_BATCH_HOST`, default `127.0.0.1`; `0.0.0.0` for every one).
 *
 * @since 0.6.0
 */
export const host: Config.Config<string> = Config.string("EFFECT_BATCH_HOST").pipe(Config.withDefault(defaultHost))

/**
 * How long running attempts may take to finish on shutdown (`EFFECT_BATCH_DRAIN_TIMEOUT`, default 5 s).
 *
 * @since 0.6.0
 */
export const drainTimeout: Config.Config<Duration.Duration> = Config.duration("EFFECT_BATCH_DRAIN_TIMEOUT").pipe(
  Config.withDefault(Duration.seconds(5))
)

/**
 * The file of tokens (`EFFECT_BATCH_TOKENS_FILE`), used instead of `EFFECT_BATCH_TOKENS`.
 *
 * @since 0.6.0
 */
export const tokensFile: Config.Config<Option.Option<string>> = Config.option(Config.string("EFFECT_BATCH_TOKENS_FILE"))

/**
 * The variable that defines shared rate limiters at start, as JSON by tenant and name:
 * `{"acme":{"anthropic":{"limit":10,"interval":"1 minute"}}}`.
 *
 * @since 0.6.0
 */
export const limitersVar = "EFFECT_BATCH_LIMITERS"

const decodeDefinitions = Schema.decodeUnknown(Schema.parseJson(SharedLimiter.Definitions))

/**
 * The shared limiters `EFFECT_BATCH_LIMITERS` defines (none when it is unset).
 *
 * @since 0.6.0
 */
export const limiters: Effect.Effect<typeof SharedLimiter.Definitions.Type, ConfigError.ConfigError> = Effect.flatMap(
  Config.option(Config.string(limitersVar)),
  (text) =>
    Option.isNone(text) ? Effect.succeed({}) : decodeDefinitions(text.value).pipe(
      Effect.mapError((error) =>
        ConfigError.InvalidData([limitersVar], `${limitersVar}: ${ParseResult.TreeFormatter.formatErrorSync(error)}`)
      )
    )
)

/**
 * The HTTP limits the environment overrides: `EFFECT_BATCH_MAX_RPC_BODY_BYTES`,
 * `EFFECT_BATCH_MAX_STREAMS_PER_TENANT`, `EFFECT_BATCH_REQUEST_TIMEOUT`.
 *
 * @since 0.6.0
 */
export const httpLimits: Config.Config<HttpConfig.HttpOptionsInput> = Config.all({
  maxRpcBodyBytes: Config.option(Config.integer("EFFECT_BATCH_MAX_RPC_BODY_BYTES")),
  maxStreamsPerTenant: Config.option(Config.integer("EFFECT_BATCH_MAX_STREAMS_PER_TENANT")),
  requestTimeout: Config.option(Config.duration("EFFECT_BATCH_REQUEST_TIMEOUT"))
}).pipe(
  Config.validate({
    message: "EFFECT_BATCH_MAX_RPC_BODY_BYTES and EFFECT_BATCH_MAX_STREAMS_PER_TENANT must be positive",
    validation: (limits) =>
      Option.getOrElse(limits.maxRpcBodyBytes, () => 1) > 0 && Option.getOrElse(limits.maxStreamsPerTenant, () => 1) > 0
  }),
  Config.map((limits) => ({
    ...Option.match(limits.maxRpcBodyBytes, { onNone: () => ({}), onSome: (n) => ({ maxRpcBodyBytes: n }) }),
    ...Option.match(limits.maxStreamsPerTenant, { onNone: () => ({}), onSome: (n) => ({ maxStreamsPerTenant: n }) }),
    ...Option.match(limits.requestTimeout, { onNone: () => ({}), onSome: (d) => ({ requestTimeout: d }) })
  }))
)

/**
 * What the server runs with.
 *
 * @since 0.6.0
 */
export interface Options<Ws extends ReadonlyArray<WorkflowRegistry.AnyWorkflow>> {
  readonly workflows: Ws
  readonly port: number
  readonly host: string
  readonly tokens: ReadonlyArray<Auth.Token>
  readonly limiters?: typeof SharedLimiter.Definitions.Type | undefined
  readonly drainTimeout?: Duration.DurationInput | undefined
  readonly http?: HttpConfig.HttpOptionsInput | undefined
}

/**
 * The server with `options`, on the database of the environment (`DATABASE_URL`, else the embedded one).
 *
 * @since 0.6.0
 */
export const layer = <const Ws extends ReadonlyArray<WorkflowRegistry.AnyWorkflow>>(options: Options<Ws>) =>
  Http.layer({ port: options.port, host: options.host, routes: Dashboard.layer, config: options.http }).pipe(
    Layer.provideMerge(
      SharedLimiters.layerDefinitions(options.limiters ?? {}).pipe(Layer.provideMerge(EffectBatch.layer))
    ),
    Layer.provide(Http.layerAuth(options.tokens)),
    Layer.provide(WorkflowRegistry.layer(...options.workflows)),
    Layer.provide(Worker.layerConfig(
      options.drainTimeout === undefined ? {} : { drainTimeout: Duration.decode(options.drainTimeout) }
    )),
    Layer.provide(Storage.decideLayer(Database.layer))
  )

/**
 * The server for `workflows`, everything else read from the environment as `effect-batch serve` reads
 * it (see the table above), with the logs and traces it asks for. Without tokens it fails with a
 * `ConfigError` naming the variables.
 *
 * @since 0.6.0
 */
export const layerConfig = <const Ws extends ReadonlyArray<WorkflowRegistry.AnyWorkflow>>(workflows: Ws) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const configured = yield* Tokens.configured({ demo: false, file: yield* tokensFile, asker: "library" })
    return layer({
      workflows,
      port: yield* port,
      host: yield* host,
      tokens: configured.tokens,
      limiters: yield* limiters,
      drainTimeout: yield* drainTimeout,
      http: yield* httpLimits
    })
  })).pipe(Layer.provide(Layer.mergeAll(Observability.layerConfig, NodeFileSystem.layer)))
