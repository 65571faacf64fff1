import { Ids } from "@effect-batch/domain"
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { batchIdOf, cli, ok, paced, writeItems } from "./support/Cli.js"
import { rpcLine } from "./support/HttpServer.js"
import { apiOn, eventTags, itemStates, ledger } from "./support/Processes.js"
import { type Served, servedDatabases, serveEmbedded, start, tempDir } from "./support/ServeProcess.js"
import * as SseClient from "./support/SseClient.js"

const workflows = ["--workflows", "test/support/ServeWorkflows.ts"]
const token = "serve-file-token-0123456789"
const otherToken = "serve-other-token-0123456789"

/** A tokens file as a user writes one: a comment, one entry per line, another tenant's token. */
const writeTokens = (dir: string) => {
  const file = Path.join(dir, "tokens")
  Fs.writeFileSync(file, `# effect-batch tokens\n${token}=acme:ops\n\n  # globex\n${otherToken}=globex\n`)
  return file
}

/** How `serve` refuses to start: exited non-zero, with its output. */
const refusal = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>>) =>
  Effect.map(Effect.flip(serveEmbedded(args, env)), (error) => {
    assert.match(error.message, /serve exited with [1-9]/)
    return error.message
  })

describe("serve refuses to start", () => {
  const env = { EFFECT_BATCH_TOKENS: `${token}=acme` }

  it.scopedLive(
    "without workflows (naming --workflows), or with a module that does not import, exports none, or repeats a name",
    () =>
      Effect.gen(function*() {
        const none = yield* refusal([], env)
        assert.include(none, "--workflows")
        assert.include(none, "EFFECT_BATCH_WORKFLOWS")
        assert.include(none, "only with --demo")
        const cases: ReadonlyArray<readonly [modules: string, says: string]> = [
          [
            "test/support/ServeModules/Broken.ts",
            "workflow module test/support/ServeModules/Broken.ts: cannot be imported: this module is broken on purpose"
          ],
          ["./no/such/module.js", "workflow module ./no/such/module.js: cannot be imported"],
          [
            "test/support/ServeModules/NoWorkflow.ts",
            "workflow module test/support/ServeModules/NoWorkflow.ts: exports no workflow"
          ],
          [
            "test/support/ServeWorkflows.ts,test/support/ServeModules/OtherPaced.ts",
            "workflow module test/support/ServeModules/OtherPaced.ts: exports a workflow named \"paced\", " +
            "and so does test/support/ServeWorkflows.ts"
          ]
        ]
        for (const [modules, says] of cases) {
          assert.include(yield* refusal(["--workflows", modules], env), says)
        }
        // the variable, like the option
        assert.include(
          yield* refusal([], { ...env, EFFECT_BATCH_WORKFLOWS: "test/support/ServeModules/NoWorkflow.ts" }),
          "workflow module test/support/ServeModules/NoWorkflow.ts: exports no workflow"
        )
      }),
    180_000
  )

  it.scopedLive(
    "with tokens both inline and from a file (naming both), from a file that is missing or holds no token",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const file = writeTokens(dir)
        const both = yield* refusal([...workflows, "--tokens-file", file], env)
        assert.include(both, "EFFECT_BATCH_TOKENS and a tokens file (--tokens-file or EFFECT_BATCH_TOKENS_FILE)")
        const missing = Path.join(dir, "missing")
        assert.include(
          yield* refusal(workflows, { EFFECT_BATCH_TOKENS_FILE: missing }),
          `cannot read the tokens file ${missing}`
        )
        const empty = Path.join(dir, "empty")
        Fs.writeFileSync(empty, "# nothing yet\n")
        assert.include(yield* refusal([...workflows, "--tokens-file", empty], {}), "no token configured")
        assert.notInclude(both, token)
      }),
    180_000
  )
})

/** A client that sent half a request and waits (Node's server would wait for it until its headers timeout). */
const halfRequest = (url: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly socket: Net.Socket; readonly closed: () => boolean }>((resume) => {
      let closed = false
      const socket = Net.connect(Number(new URL(url).port), "127.0.0.1", () => {
        socket.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        resume(Effect.succeed({ socket, closed: () => closed }))
      })
      socket.on("close", () => closed = true)
      socket.on("error", () => {})
      socket.resume()
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

/** Submits `count` items of `ms` each with the CLI; gives the batch id. */
const submit = (served: Served, count: number, ms: number, config: unknown) =>
  Effect.map(
    cli([
      "submit",
      writeItems(paced(count, ms), true),
      "--workflow",
      "paced",
      "--config",
      JSON.stringify(config),
      "--url",
      served.url,
      "--token",
      token
    ]),
    (run) => Schema.decodeSync(Ids.BatchId)(batchIdOf(ok(run)).id)
  )

const watchToEnd = (served: Served, id: string) =>
  Effect.map(
    cli(["watch", id, "--url", served.url, "--token", token]),
    (run) => ok(run).trim().split("\n").at(-1) ?? ""
  )

for (const [name, database] of servedDatabases) {
  describe(`serve on the ${name} database`, () => {
    it.scopedLive(
      "serves the workflows of --workflows with tokens from a file: a batch submitted with the CLI completes",
      () =>
        Effect.gen(function*() {
          const db = yield* database
          const file = writeTokens(yield* tempDir)
          const served = yield* start([...workflows, "--tokens-file", file], db.env)
          assert.include(
            served.output(),
            "effect-batch workflows: echo (test/support/ServeWorkflows.ts), paced (test/support/ServeWorkflows.ts)"
          )
          assert.notInclude(served.output(), token)
          const id = yield* submit(served, 20, 10, { concurrency: 4 })
          assert.match(yield* watchToEnd(served, id), /100% 20\/20 ok 20 failed 0 .*\| Completed$/)
          const results = ok(yield* cli(["results", id, "--url", served.url, "--token", token])).trim().split("\n")
          assert.deepStrictEqual(results.map((line) => JSON.parse(line).state), Array(20).fill("Succeeded"))
          // the file's other token is another tenant's
          const other = yield* cli(["status", id, "--url", served.url, "--token", otherToken])
          assert.notStrictEqual(other.code, 0)
          assert.include(other.stderr, "BatchNotFound")
        }),
      180_000
    )

    for (const drain of [true, false]) {
      it.scopedLive(
        `SIGTERM mid-batch (${drain ? "running attempts finish" : "--drain-timeout 0: they are interrupted"}): ` +
          "exit 0 within the lease, the event streams end, a restarted serve finishes with one outcome per item",
        () =>
          Effect.gen(function*() {
            const db = yield* database
            const env = { ...db.env, EFFECT_BATCH_TOKENS_FILE: writeTokens(yield* tempDir) }
            const args = drain ? workflows : [...workflows, "--drain-timeout", "0 seconds"]
            const leaseMs = 10_000
            const first = yield* start(args, env)
            const id = yield* submit(first, 200, 50, { concurrency: 4, leaseDuration: `${leaseMs} millis` })
            const authorization = `Bearer ${token}`
            const sse = yield* SseClient.connect(`${first.url}/batches/${id}/events`, { authorization })
            const rpc = yield* SseClient.connect(`${first.url}/rpc`, {
              authorization,
              "content-type": "application/ndjson"
            }, { body: rpcLine("StreamProgress", { batchId: id, after: 0 }) })
            const stuck = yield* halfRequest(first.url)
            const succeeded = () => sse.events.filter((event) => event.event === "ItemSucceeded").length
            yield* SseClient.eventually(() => succeeded() >= 20, 60_000, "20 items succeeded")

            const stopped = yield* first.stop("SIGTERM")
            assert.strictEqual(stopped.code, 0, first.output())
            assert.isBelow(stopped.ms, leaseMs, "it exits within the lease duration")
            assert.strictEqual(yield* Deferred.await(sse.ended), "end", "the SSE stream ended")
            assert.strictEqual(yield* Deferred.await(rpc.ended), "end", "the StreamProgress answer ended")
            assert.isBelow(succeeded(), 200, "the batch was mid-flight")
            assert.isTrue(stuck.closed(), "the client that never finished its request was cut")

            const api = apiOn(db.layer)
            const states = yield* Effect.provide(itemStates(id), api)
            assert.strictEqual(states("leased") + states("running"), 0, "every lease went back at shutdown")

            const second = yield* start(args, env)
            assert.match(yield* watchToEnd(second, id), /100% 200\/200 ok 200 failed 0 .*\| Completed$/)
            assert.strictEqual((yield* second.stop("SIGTERM")).code, 0)

            const recorded = yield* Effect.provide(ledger(id), api)
            assert.deepStrictEqual(recorded.batch.counts, recorded.derived, "counters equal the item rows")
            assert.strictEqual(recorded.itemSucceeded, 200, "one ItemSucceeded per item")
            assert.strictEqual(recorded.distinctSucceeded, 200)
            assert.strictEqual(recorded.maxPerKey, 1)
            assert.strictEqual(recorded.otherOutcomes, 0)
            assert.strictEqual(recorded.maxSeq, recorded.events, "sequences are gapless")
            if (drain) {
              const starts = new Map<string, number>()
              for (const event of yield* Effect.provide(eventTags(id), api)) {
                if (event.tag === "ItemStarted" && event.key !== null) {
                  starts.set(event.key, (starts.get(event.key) ?? 0) + 1)
                }
              }
              assert.deepStrictEqual(
                [...starts.entries()].filter(([, n]) => n > 1),
                [],
                "no attempt was cut short: every item started once"
              )
            }
          }),
        240_000
      )
    }
  })
}
