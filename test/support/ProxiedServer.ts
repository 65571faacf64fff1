/**
 * The test server over a Postgres database behind a TCP proxy. Apart from `HttpServer.ts`, which
 * `serve` child processes import: this module reaches the test harness.
 */
import { BatchOrchestrator, Http } from "@effect-batch/server"
import { Database } from "@effect-batch/tables"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { server } from "./HttpServer.js"
import { freshDatabase } from "./Processes.js"
import * as TcpProxy from "./TcpProxy.js"

/**
 * The test server (`HttpServer.server`) over a fresh Postgres database reached through a TCP proxy (to take the database
 * out of reach): the proxy, the database's direct URL, the server's base URL and its orchestrator.
 */
export const serverBehindProxy = Effect.gen(function*() {
  const direct = new URL(yield* freshDatabase)
  const proxy = yield* TcpProxy.make(`http://127.0.0.1:${direct.port}`)
  const proxied = new URL(direct)
  proxied.port = new URL(proxy.url).port
  const context = yield* Layer.build(server(Database.layerPostgres(proxied.toString())))
  const base = yield* Effect.provide(Http.url, context)
  const orchestrator = yield* Effect.provide(BatchOrchestrator.BatchOrchestrator, context)
  return { proxy, direct: direct.toString(), base, orchestrator }
})
