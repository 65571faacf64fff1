/**
 * The tokens `serve` and `demo` accept: from `EFFECT_BATCH_TOKENS`, or from a file
 * (`--tokens-file` or `EFFECT_BATCH_TOKENS_FILE`), never both.
 *
 * @since 0.5.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Demo from "../Demo.js"
import * as Auth from "../Http/Auth.js"

/**
 * What the server accepts.
 *
 * @since 0.5.0
 */
export interface Configured {
  readonly tokens: ReadonlyArray<Auth.Token>
  /** whether the demo's token is the one accepted (nothing was configured) */
  readonly demo: boolean
}

const fromText = (path: Array<string>, parse: typeof Auth.parse, text: string, demo: boolean) =>
  Either.match(parse(text), {
    onLeft: (message) => Effect.fail(ConfigError.InvalidData(path, `${path.join(", ")}: ${message}`)),
    onRight: (tokens): Effect.Effect<Configured> => Effect.succeed({ tokens, demo })
  })

/**
 * Reads the tokens file at `path`; a missing or unreadable file names it.
 *
 * @since 0.5.0
 */
export const readFile = (path: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(path)).pipe(
    Effect.mapError((error) =>
      ConfigError.InvalidData([Auth.fileEnvVar], `cannot read the tokens file ${path}: ${error.message}`)
    ),
    Effect.flatMap((text) => fromText([Auth.fileEnvVar], Auth.parseFile, text, false))
  )

/**
 * The configured tokens. Without any, `demo` (and `serve --demo`) accepts the demo's token, and
 * `serve` refuses to start: a server nobody configured is not open to everyone.
 *
 * @since 0.5.0
 */
export const configured = (options: {
  readonly demo: boolean
  readonly file: Option.Option<string>
  /** who asks: `serve` names its flags in the refusal, a program embedding the server only the variables */
  readonly asker?: "serve" | "library" | undefined
}) =>
  Effect.flatMap(Config.option(Config.redacted(Auth.envVar)), (inline) => {
    if (Option.isSome(inline) && Option.isSome(options.file)) {
      return Effect.fail(ConfigError.InvalidData(
        [Auth.envVar, Auth.fileEnvVar],
        `both ${Auth.envVar} and a tokens file (--tokens-file or ${Auth.fileEnvVar}) are set: use one`
      ))
    }
    if (Option.isSome(options.file)) return readFile(options.file.value)
    if (Option.isSome(inline)) return fromText([Auth.envVar], Auth.parse, Redacted.value(inline.value), false)
    if (!options.demo) {
      return Effect.fail(ConfigError.MissingData(
        [Auth.envVar],
        options.asker === "library"
          ? `the server needs tokens: set ${Auth.envVar}=<token>=<tenant>[:<actor>],…, or name a file of them ` +
            `with ${Auth.fileEnvVar}`
          : `serve needs tokens: set ${Auth.envVar}=<token>=<tenant>[:<actor>],…, or name a file of them with ` +
            `--tokens-file or ${Auth.fileEnvVar} (or pass --demo to accept the demo token)`
      ))
    }
    return fromText([Auth.envVar], Auth.parse, `${Demo.token}=${Demo.tenant}:demo-user`, true)
  })
