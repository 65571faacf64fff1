/**
 * The dashboard's browser tests: a server on a free port over a test database with the
 * dashboard's routes, and a page of a real headless Chromium (Debian's `/usr/bin/chromium`).
 */
import { Dashboard, EffectBatch, Http, Worker, WorkflowRegistry } from "@effect-batch/server"
import * as Demo from "@effect-batch/server/Demo"
import { TestDatabase } from "@effect-batch/tables"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Playwright from "playwright-core"
import { paced, tokens } from "./HttpServer.js"

/** The server, running `paced` and the demo's workflow, with the tokens of `acme` (alice) and `globex`. */
export const server = (db: TestDatabase.TestDatabase) =>
  Http.layer({ port: 0, host: "127.0.0.1", routes: Dashboard.layer }).pipe(
    Layer.provideMerge(Http.layerAuth([
      { token: tokens.acme, tenant: "acme", actor: "alice" },
      { token: tokens.globex, tenant: "globex" }
    ])),
    Layer.provideMerge(
      EffectBatch.layer.pipe(
        Layer.provide(WorkflowRegistry.layer(paced, Demo.workflow)),
        Layer.provide(Worker.layerConfig({ pollInterval: Duration.millis(100) }))
      )
    ),
    Layer.provideMerge(db),
    Layer.orDie
  )

export const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

/** A page of a fresh headless Chromium, closed with the test's scope; uncaught page errors are collected. */
export const openPage = Effect.gen(function*() {
  const browser = yield* Effect.acquireRelease(
    promise(() =>
      Playwright.chromium.launch({
        executablePath: "/usr/bin/chromium",
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run"
        ]
      })
    ),
    (b) => promise(() => b.close())
  )
  const page = yield* promise(() => browser.newPage({ viewport: { width: 1280, height: 900 } }))
  const errors: Array<string> = []
  page.on("pageerror", (error) => errors.push(error.message))
  return { page, errors }
})

/** Reads `read` until `ok` holds, every 100 ms, for at most `timeoutMs`. */
export const until = <A, E, R>(
  read: Effect.Effect<A, E, R>,
  ok: (a: A) => boolean,
  timeoutMs: number,
  what: string
) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const value = yield* read
      if (ok(value)) return value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`${what} not reached within ${timeoutMs} ms`)
      yield* Effect.sleep("100 millis")
    }
  })

/** The text of the first element matching `selector`. */
export const text = (page: Playwright.Page, selector: string) =>
  promise(() => page.locator(selector).first().textContent()).pipe(Effect.map((t) => t ?? ""))

/** Waits for `selector` (10 s at most). */
export const shown = (page: Playwright.Page, selector: string, state: "visible" | "hidden" | "attached" = "attached") =>
  promise(() => page.waitForSelector(selector, { state, timeout: 10_000 }))
