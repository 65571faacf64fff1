/**
 * Typed error answers of the HTTP routes: a status and the schema-encoded error as JSON
 * (`{ "_tag": "BatchNotFound", "batchId": "…", "message": "…" }`).
 *
 * @since 0.1.0
 */
import { Errors } from "@effect-batch/domain"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/**
 * Every error an HTTP route answers with (outside the RPC protocol).
 *
 * @since 0.1.0
 */
export const HttpError = Schema.Union(
  Errors.Unauthorized,
  Errors.InvalidRequest,
  Errors.BatchNotFound,
  Errors.LimitExceeded,
  Errors.StorageUnavailable
)
/** @since 0.1.0 */
export type HttpError = typeof HttpError.Type

/**
 * The HTTP status of each error.
 *
 * @since 0.1.0
 */
export const statusOf: Record<HttpError["_tag"], number> = {
  Unauthorized: 401,
  InvalidRequest: 400,
  BatchNotFound: 404,
  LimitExceeded: 429,
  StorageUnavailable: 503
}

const encode = Schema.encode(HttpError)

/**
 * Answers with an error: its status, and its encoded fields plus its `message` as JSON.
 *
 * @since 0.1.0
 */
export const failure = (
  error: HttpError,
  options: { readonly status?: number; readonly headers?: Record<string, string> } = {}
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  encode(error).pipe(
    Effect.map((encoded) =>
      HttpServerResponse.unsafeJson({ ...encoded, message: error.message }, {
        status: options.status ?? statusOf[error._tag],
        headers: { "cache-control": "no-store", ...options.headers }
      })
    ),
    Effect.orDie
  )
