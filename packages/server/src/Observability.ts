/**
 * Logs and traces, configured from the environment the same way for `serve` and for a program that
 * embeds the orchestrator:
 *
 * - `EFFECT_BATCH_LOG_FORMAT`: `logfmt` (the default), `json` (one JSON object per line), `pretty`
 *   or `structured`; `EFFECT_BATCH_LOG_LEVEL`: `All`, `Trace`, `Debug`, `Info` (the default),
 *   `Warning`, `Error`, `Fatal` or `None`. Nothing is logged per item at `Info`.
 * - Traces over OTLP/HTTP (JSON) when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
 *   `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL, `/v1/traces` appended) is set, with
 *   `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,…`), `OTEL_SERVICE_NAME` (default `effect-batch`) and
 *   `OTEL_RESOURCE_ATTRIBUTES`. Spans: every HTTP request (continuing a caller's `traceparent`), every
 *   RPC, submit, every command, every commit of outcomes, and a sample of attempts
 *   (`EFFECT_BATCH_TRACE_ATTEMPTS`, the fraction of attempts with a span of their own, default 0.01).
 *   The exporter is `@effect/opentelemetry`, an optional peer dependency: install it to export traces.
 *
 * @since 0.4.0
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"

/**
 * One attempt in this many gets a span of its own (0: none). Set by the tracing layers.
 *
 * @since 0.4.0
 */
export class AttemptSpans extends Context.Reference<AttemptSpans>()("@effect-batch/server/AttemptSpans", {
  defaultValue: () => 0
}) {}

/**
 * The log formats `EFFECT_BATCH_LOG_FORMAT` accepts.
 *
 * @since 0.4.0
 */
export const logFormats = ["pretty", "json", "logfmt", "structured"] as const

/**
 * A log format.
 *
 * @since 0.4.0
 */
export type LogFormat = typeof logFormats[number]

const loggers: { readonly [F in LogFormat]: Layer.Layer<never> } = {
  pretty: Logger.pretty,
  json: Logger.json,
  logfmt: Logger.logFmt,
  structured: Logger.structured
}

/**
 * Logs in `format` from `level` up.
 *
 * @since 0.4.0
 */
export const layerLogs = (options: { readonly format: LogFormat; readonly level: LogLevel.LogLevel }) =>
  Layer.merge(loggers[options.format], Logger.minimumLogLevel(options.level))

/**
 * The logs `EFFECT_BATCH_LOG_FORMAT` and `EFFECT_BATCH_LOG_LEVEL` ask for.
 *
 * @since 0.4.0
 */
export const layerLogsConfig: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      format: Config.literal(...logFormats)("EFFECT_BATCH_LOG_FORMAT").pipe(Config.withDefault("logfmt" as const)),
      level: Config.logLevel("EFFECT_BATCH_LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
    }),
    layerLogs
  )
)

/**
 * Where and how to export traces.
 *
 * @since 0.4.0
 */
export interface OtlpOptions {
  /** the collector's traces URL, e.g. `http://127.0.0.1:4318/v1/traces` */
  readonly url: string
  readonly serviceName?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** the fraction of attempts that get a span of their own (0 to 1; default 0.01) */
  readonly attemptSampleRate?: number | undefined
  readonly exportInterval?: Duration.DurationInput | undefined
}

const exporterMissing = (cause: unknown) =>
  ConfigError.InvalidData(
    ["OTEL_EXPORTER_OTLP_ENDPOINT"],
    `exporting traces needs the optional peer dependency @effect/opentelemetry (npm install @effect/opentelemetry): ${
      String(cause)
    }`
  )

/**
 * Exports spans to an OTLP/HTTP collector (JSON encoding) through `client`'s HTTP client.
 *
 * @since 0.4.0
 */
export const layerOtlpWith = (
  options: OtlpOptions
): Layer.Layer<never, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const [tracer, serialization] = yield* Effect.tryPromise({
      try: () =>
        Promise.all([import("@effect/opentelemetry/OtlpTracer"), import("@effect/opentelemetry/OtlpSerialization")]),
      catch: exporterMissing
    })
    const rate = Math.min(1, Math.max(0, options.attemptSampleRate ?? 0.01))
    return tracer.layer({
      url: options.url,
      resource: { serviceName: options.serviceName ?? "effect-batch" },
      ...(options.headers === undefined ? {} : { headers: options.headers }),
      ...(options.exportInterval === undefined ? {} : { exportInterval: options.exportInterval })
    }).pipe(
      Layer.provide(serialization.layerJson),
      Layer.merge(Layer.succeed(AttemptSpans, rate === 0 ? 0 : Math.round(1 / rate)))
    )
  }))

/**
 * Exports spans to an OTLP/HTTP collector with the runtime's `fetch`.
 *
 * @since 0.4.0
 */
export const layerOtlp = (options: OtlpOptions): Layer.Layer<never, ConfigError.ConfigError> =>
  layerOtlpWith(options).pipe(Layer.provide(FetchHttpClient.layer))

const headerPairs = (text: string): Record<string, string> =>
  Object.fromEntries(
    text.split(",").map((pair) => pair.split("=")).filter((kv) => kv.length === 2 && kv[0]!.trim() !== "").map((
      [k, v]
    ) => [k!.trim(), decodeURIComponent(v!.trim())])
  )

/**
 * Traces as the standard `OTEL_*` variables say (nothing when no endpoint is set).
 *
 * @since 0.4.0
 */
export const layerTracesConfig: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const full = yield* Config.option(Config.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    const base = yield* Config.option(Config.string("OTEL_EXPORTER_OTLP_ENDPOINT"))
    const url = Option.orElse(full, () => Option.map(base, (b) => `${b.replace(/\/+$/, "")}/v1/traces`))
    if (Option.isNone(url)) return Layer.empty
    const headers = yield* Config.string("OTEL_EXPORTER_OTLP_HEADERS").pipe(Config.withDefault(""))
    const serviceName = yield* Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault("effect-batch"))
    const attemptSampleRate = yield* Config.number("EFFECT_BATCH_TRACE_ATTEMPTS").pipe(
      Config.validate({ message: "a fraction from 0 to 1", validation: (n) => n >= 0 && n <= 1 }),
      Config.withDefault(0.01)
    )
    return layerOtlp({ url: url.value, serviceName, headers: headerPairs(headers), attemptSampleRate })
  })
)

/**
 * Logs and traces as the environment says.
 *
 * @since 0.4.0
 */
export const layerConfig: Layer.Layer<never, ConfigError.ConfigError> = Layer.merge(
  layerLogsConfig,
  layerTracesConfig
)
