/**
 * How the client commands reach the server: a client layer built from `--url` and `--token`, and no
 * default credential.
 *
 * @since 0.4.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"

/**
 * The client commands need a token: there is no default credential.
 *
 * @since 0.4.0
 */
export class TokenMissing extends Data.TaggedError("TokenMissing")<{ readonly message: string }> {}

/**
 * Runs `f` with the client that `layer` builds for the given server and token.
 *
 * @since 0.4.0
 */
export const withClient = <I, S>(
  tag: Effect.Effect<S, never, I>,
  layer: (options: { readonly url: string; readonly token: string }) => Layer.Layer<I>
) =>
<A, E, R>(
  options: { readonly url: string; readonly token: string },
  f: (client: S) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | TokenMissing, Exclude<R, I>> =>
  options.token === ""
    ? Effect.fail(new TokenMissing({ message: "pass --token or set EFFECT_BATCH_TOKEN" }))
    : Effect.flatMap(tag, f).pipe(Effect.provide(layer({ url: options.url, token: options.token })))
