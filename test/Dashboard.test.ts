import { BatchConfig, Ids } from "@effect-batch/domain"
import { BatchOrchestrator, Dashboard, EffectBatch, Http, Worker, WorkflowRegistry } from "@effect-batch/server"
import * as Demo from "@effect-batch/server/Demo"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Url from "node:url"
import * as Playwright from "playwright-core"
import { items, paced, tokens } from "./support/HttpServer.js"

/**
 * The dashboard in a real headless Chromium (Debian's `/usr/bin/chromium`), against a server on a free
 * port over the embedded database. `UPDATE_DASHBOARD_SCREENSHOT=1` rewrites `docs/dashboard.png`.
 */

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }
const screenshotPath = Url.fileURLToPath(new URL("../docs/dashboard.png", import.meta.url))
// sorts before every "item-…" key, so it comes first in listings
const hostileKey = "<img src=x onerror=\"window.__xss=1\">"

const server = Http.layer({ port: 0, host: "127.0.0.1", routes: Dashboard.layer }).pipe(
  Layer.provideMerge(Http.layerAuth([{ token: tokens.acme, tenant: "acme", actor: "alice" }])),
  Layer.provideMerge(
    EffectBatch.layer.pipe(
      Layer.provide(WorkflowRegistry.layer(paced, Demo.workflow)),
      Layer.provide(Worker.layerConfig({ pollInterval: Duration.millis(100) }))
    )
  ),
  Layer.provideMerge(TestDatabase.layerEmbedded),
  Layer.orDie
)

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

/** A page of a fresh headless Chromium, closed with the test's scope; uncaught page errors are collected. */
const openPage = Effect.gen(function*() {
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
const until = <A, R>(read: Effect.Effect<A, never, R>, ok: (a: A) => boolean, timeoutMs: number, what: string) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const value = yield* read
      if (ok(value)) return value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`${what} not reached within ${timeoutMs} ms`)
      yield* Effect.sleep("100 millis")
    }
  })

const text = (page: Playwright.Page, selector: string) =>
  promise(() => page.locator(selector).first().textContent()).pipe(Effect.map((t) => t ?? ""))

const settledShown = (page: Playwright.Page) => Effect.map(text(page, "#settled"), Number)

const stateOf = (id: Ids.BatchId) =>
  Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (o) => o.get(acme, id)).pipe(Effect.orDie)

layer(server, { excludeTestServices: true, timeout: "60 seconds" })("dashboard in headless Chromium", (it) => {
  it.scoped("the progress shown advances while the batch runs, and Pause pauses the batch", () =>
    Effect.gen(function*() {
      const base = yield* Http.url
      const o = yield* BatchOrchestrator.BatchOrchestrator
      // an earlier, settled batch for the list; then the demo's documents, ~25 s at this concurrency
      const earlier = yield* o.submitEncoded(paced.name, items(8, 1), {}, acme)
      yield* o.await(acme, earlier.id)
      const config = BatchConfig.BatchConfig.make({ ...Demo.config, concurrency: 4 })
      const batch = yield* o.submit(Demo.workflow, Demo.documents(300), config, acme)

      const { errors, page } = yield* openPage
      yield* promise(() => page.goto(`${base}/?token=${encodeURIComponent(tokens.acme)}`))
      // the newest batch opens by itself; the token leaves the address bar
      yield* promise(() => page.waitForSelector("#batch-state[data-state=Running]", { timeout: 15_000 }))
      assert.notInclude(page.url(), "token=")
      assert.include(yield* text(page, "#batch-title"), batch.id)
      yield* promise(() => page.waitForSelector(`#batch-rows tr[data-batch-id="${earlier.id}"]`, { timeout: 10_000 }))
      assert.strictEqual(yield* text(page, `#batch-rows tr[data-batch-id="${earlier.id}"] td:nth-child(5)`), "8 / 8")

      const first = yield* until(settledShown(page), (n) => n > 0, 15_000, "a settled item shown")
      const second = yield* until(settledShown(page), (n) => n > first, 15_000, "the settled count growing")
      assert.isAbove(second, first)
      assert.strictEqual(yield* text(page, "#total"), "300")
      assert.match(yield* text(page, "#throughput"), /^[0-9.]+ items\/s$/)

      yield* promise(() => page.waitForSelector("#item-rows tr td.mono", { timeout: 10_000 }))
      assert.strictEqual(yield* text(page, "#item-rows tr td.mono"), "doc-0000")

      // doc-0042 is corrupt: quarantined a few seconds in, and listed among the latest errors
      yield* until(text(page, ".count.c-quarantined strong"), (t) => t === "1", 15_000, "a quarantined item shown")
      assert.include(yield* text(page, "#errors"), "CorruptDocument")

      const shot = yield* promise(() =>
        page.screenshot(process.env["UPDATE_DASHBOARD_SCREENSHOT"] === "1" ? { path: screenshotPath } : {})
      )
      assert.isAbove(shot.length, 10_000)

      const before = yield* stateOf(batch.id)
      assert.strictEqual(before.state._tag, "Running")
      yield* promise(() => page.click("button[data-action=pause]"))
      yield* promise(() => page.waitForSelector("#batch-state[data-state=Paused]", { timeout: 10_000 }))
      const after = yield* stateOf(batch.id)
      assert.strictEqual(after.state._tag, "Paused")
      if (after.state._tag === "Paused") {
        assert.strictEqual(after.state.reason._tag, "PausedByUser")
      }
      assert.isBelow(yield* settledShown(page), 300)
      assert.deepStrictEqual(errors, [])
      yield* o.cancel(acme, batch.id).pipe(Effect.orDie)
    }))

  it.scoped("without a token the page asks for one; retry failed shows its dry run, then re-queues", () =>
    Effect.gen(function*() {
      const base = yield* Http.url
      const o = yield* BatchOrchestrator.BatchOrchestrator
      const work = items(6, 1).map((item, i) => ({ ...item, input: { ...item.input, fail: i < 2 } }))
      const batch = yield* o.submitEncoded(
        paced.name,
        [{ key: hostileKey, input: { ms: 1, fail: true } }, ...work],
        {},
        acme
      )
      const done = yield* o.await(acme, batch.id)
      assert.strictEqual(done.state._tag, "Completed")

      const { errors, page } = yield* openPage
      yield* promise(() => page.goto(`${base}/#batch=${batch.id}`))
      yield* promise(() => page.waitForSelector("#auth", { state: "visible", timeout: 10_000 }))
      yield* promise(() => page.fill("#auth-token", tokens.acme))
      yield* promise(() => page.click("#auth-form button[type=submit]"))
      yield* promise(() => page.waitForSelector("#batch-state[data-state=Completed]", { timeout: 10_000 }))
      assert.strictEqual(yield* text(page, "#settled"), "7")
      // server strings are text, never markup
      yield* promise(() => page.waitForSelector("#item-rows tr td.mono", { timeout: 10_000 }))
      assert.strictEqual(yield* text(page, "#item-rows tr td.mono"), hostileKey)

      yield* promise(() => page.click("button[data-action=retry]"))
      yield* promise(() => page.waitForSelector("#confirm[open]", { timeout: 10_000 }))
      const planned = yield* promise(() => page.locator("#confirm-list li").allTextContents())
      assert.deepStrictEqual(planned, [hostileKey, "item-0000", "item-0001"])
      assert.strictEqual((yield* stateOf(batch.id)).version, done.version, "a dry run changes nothing")
      yield* promise(() => page.click("#confirm-yes"))
      const redriven = yield* until(
        stateOf(batch.id),
        (b) => "round" in b.state && b.state.round === 2,
        10_000,
        "round 2"
      )
      assert.notStrictEqual(redriven.state._tag, "Cancelled")
      yield* promise(() => page.waitForSelector("#round:text-is('2')", { timeout: 10_000 }))
      assert.isFalse(yield* promise(() => page.evaluate(() => "__xss" in window)))
      assert.deepStrictEqual(errors, [])
    }))
})
