/**
 * `Server.layerConfig`: the server a program embeds, configured from the variables `serve` reads — on
 * both databases, over real HTTP.
 */
import { Server } from "@effect-batch/server"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Net from "node:net"
import { echo, request, rpcExit, rpcLine, rpcOutcome } from "./support/HttpServer.js"
import { pollUntil } from "./support/Processes.js"
import { servedDatabases } from "./support/ServeProcess.js"

const token = "server-layer-token-0123456789"

/** A port nothing listens on now. */
const freePort = Effect.async<number>((resume) => {
  const probe = Net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const address = probe.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    probe.close(() => resume(Effect.succeed(port)))
  })
})

const withEnv = (env: Readonly<Record<string, string>>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

const post = (port: number, body: string, bearer: string | undefined) =>
  Effect.orDie(request(`http://127.0.0.1:${port}/rpc`, {
    method: "POST",
    headers: {
      "content-type": "application/ndjson",
      ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` })
    },
    body
  }))

describe("Server.layerConfig", () => {
  for (const [name, database] of servedDatabases) {
    it.scopedLive(`listens, authenticates and limits as the environment says (${name})`, () =>
      Effect.gen(function*() {
        const db = yield* database
        const port = yield* freePort
        yield* Layer.build(Server.layerConfig([echo])).pipe(withEnv({
          ...db.env,
          PORT: String(port),
          EFFECT_BATCH_TOKENS: `${token}=acme:ops`,
          EFFECT_BATCH_MAX_RPC_BODY_BYTES: "4096",
          EFFECT_BATCH_LIMITERS: JSON.stringify({ acme: { llm: { limit: 5, interval: "1 minute" } } })
        }))

        // healthy once the worker has ticked (until then /health answers 503: not ready)
        yield* pollUntil(
          "/health answers 200",
          Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`).then((health) => health.status === 200)),
          "15 seconds"
        )
        assert.strictEqual((yield* post(port, rpcLine("ListBatches", {}), undefined)).status, 401)

        const created = yield* post(
          port,
          rpcLine("CreateBatch", { workflow: "echo", items: [{ key: "a", input: 1 }, { key: "b", input: 2 }] }),
          token
        )
        assert.strictEqual(rpcOutcome(created), "success", created.body)
        const counts: Record<string, number> = rpcExit(created).value.counts
        assert.strictEqual(Object.values(counts).reduce((a, b) => a + b, 0), 2)

        const limiters = yield* post(port, rpcLine("ListLimiters", {}), token)
        assert.deepStrictEqual(
          rpcExit(limiters).value.map((
            view: { readonly name: string; readonly limit: number }
          ) => [view.name, view.limit]),
          [["llm", 5]]
        )

        const large = yield* post(
          port,
          rpcLine("CreateBatch", { workflow: "echo", items: [{ key: "big", input: "x".repeat(8_000) }] }),
          token
        )
        assert.strictEqual(large.status, 413)
      }), { timeout: 60_000 })
  }

  it.scopedLive("refuses to start without tokens, naming the variables", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Server.layerConfig([echo])).pipe(withEnv({ PORT: "1" })))
      assert.match(String(error), /EFFECT_BATCH_TOKENS/)
      assert.match(String(error), /EFFECT_BATCH_TOKENS_FILE/)
      // a program has no --demo or --tokens-file to pass
      assert.notMatch(String(error), /--demo|--tokens-file/)
    }))
})
