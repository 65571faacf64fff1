import { BatchConfig, Ids, SharedLimiter } from "@effect-batch/domain"
import { BatchOrchestrator, Http, SharedLimiters } from "@effect-batch/server"
import * as Demo from "@effect-batch/server/Demo"
import { TestDatabase } from "@effect-batch/tables"
import { assert, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Url from "node:url"
import type * as Playwright from "playwright-core"
import { openPage, promise, server, text, until } from "./support/Browser.js"
import { items, paced, tokens } from "./support/HttpServer.js"

/**
 * The dashboard in a real headless Chromium, against a server on a free port over each test
 * database. `UPDATE_DASHBOARD_SCREENSHOT=1` rewrites `docs/dashboard.png`.
 */

const acme = { tenant: Schema.decodeSync(Ids.TenantId)("acme"), actor: "alice" }
const screenshotPath = Url.fileURLToPath(new URL("../docs/dashboard.png", import.meta.url))
// sorts before every "item-…" key, so it comes first in listings
const hostileKey = "<img src=x onerror=\"window.__xss=1\">"

const settledShown = (page: Playwright.Page) => Effect.map(text(page, "#settled"), Number)

const stateOf = (id: Ids.BatchId) =>
  Effect.flatMap(BatchOrchestrator.BatchOrchestrator, (o) => o.get(acme, id)).pipe(Effect.orDie)

for (const [name, db] of TestDatabase.databases) {
  layer(server(db), { excludeTestServices: true, timeout: "60 seconds" })(
    `dashboard in headless Chromium (${name})`,
    (it) => {
      it.scoped("the progress shown advances while the batch runs, and Pause pauses the batch", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const o = yield* BatchOrchestrator.BatchOrchestrator
          // an earlier, settled batch for the list; then the demo's documents, ~25 s at this concurrency
          const earlier = yield* o.submitEncoded(paced.name, items(8, 1), {}, acme)
          yield* o.await(acme, earlier.id)
          const config = BatchConfig.BatchConfig.make({
            ...Demo.config,
            concurrency: 4,
            slowdown: BatchConfig.SlowdownConfig.make({
              window: Duration.seconds(1),
              baselineWindows: 2,
              minItems: 1
            })
          })
          const batch = yield* o.submit(Demo.workflow, Demo.documents(300), config, acme)

          const { errors, page } = yield* openPage
          yield* promise(() => page.goto(`${base}/?token=${encodeURIComponent(tokens.acme)}`))
          // the newest batch opens by itself; the token leaves the address bar
          yield* promise(() => page.waitForSelector("#batch-state[data-state=Running]", { timeout: 15_000 }))
          assert.notInclude(page.url(), "token=")
          assert.include(yield* text(page, "#batch-title"), batch.id)
          yield* promise(() =>
            page.waitForSelector(`#batch-rows tr[data-batch-id="${earlier.id}"]`, { timeout: 10_000 })
          )
          assert.strictEqual(
            yield* text(page, `#batch-rows tr[data-batch-id="${earlier.id}"] td:nth-child(5)`),
            "8 / 8"
          )

          const first = yield* until(settledShown(page), (n) => n > 0, 15_000, "a settled item shown")
          const second = yield* until(settledShown(page), (n) => n > first, 15_000, "the settled count growing")
          assert.isAbove(second, first)
          assert.strictEqual(yield* text(page, "#total"), "300")
          assert.match(yield* text(page, "#throughput"), /^[0-9.]+ items\/s$/)

          yield* promise(() => page.waitForSelector("#item-rows tr td.mono", { timeout: 10_000 }))
          assert.strictEqual(yield* text(page, "#item-rows tr td.mono"), "doc-0000")

          // the demo's documents go through three durable steps: the batch's stage breakdown and each
          // item's steps done
          yield* until(
            text(page, "#stages"),
            (t) => /^mentions \d+ \/ 300 · entities \d+ \/ 300 · relations \d+ \/ 300$/.test(t),
            15_000,
            "the stage breakdown"
          )
          assert.match(yield* text(page, "#steps"), /^\d+ \/ 900$/)
          yield* until(
            text(page, "#item-rows tr:first-child td:nth-child(5)"),
            (t) => t === "3 / 3",
            15_000,
            "doc-0000's steps"
          )

          // the trends of its 1-second windows: the status line and a throughput line in the chart
          yield* promise(() => page.waitForSelector("#trends svg polyline.trend-throughput", { timeout: 15_000 }))
          assert.match(
            yield* text(page, "#trends .trends-head"),
            /^Trends: (learning its baseline|normal|slowed down) · windows of 1 second/
          )

          // doc-0042 is corrupt: quarantined a few seconds in, and listed among the latest errors
          yield* until(text(page, ".count.c-quarantined strong"), (t) => t === "1", 15_000, "a quarantined item shown")
          assert.include(yield* text(page, "#errors"), "CorruptDocument")

          const shot = yield* promise(() =>
            page.screenshot(
              process.env["UPDATE_DASHBOARD_SCREENSHOT"] === "1" && name === "embedded" ? { path: screenshotPath } : {}
            )
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

      it.scoped("the shared limiters panel shows the tenant's limiters with their state", () =>
        Effect.gen(function*() {
          const base = yield* Http.url
          const limiters = yield* SharedLimiters.SharedLimiters
          yield* limiters.define(
            acme,
            new SharedLimiter.Definition({ name: "anthropic", limit: 10, interval: Duration.minutes(1) })
          )
          const { errors, page } = yield* openPage
          yield* promise(() => page.goto(`${base}/?token=${tokens.acme}`))
          yield* promise(() =>
            page.waitForSelector("#limiters:not([hidden]) tr[data-limiter=anthropic]", { timeout: 10_000 })
          )
          const cells = yield* promise(() => page.locator("tr[data-limiter=anthropic] td").allTextContents())
          assert.deepStrictEqual(cells, ["anthropic", "0/10 per 1 minute", "10", "no", "0", "0", "0"])
          yield* limiters.remove(acme, "anthropic")
          yield* promise(() => page.waitForSelector("#limiters", { state: "hidden", timeout: 10_000 }))
          assert.deepStrictEqual(errors, [])
        }))
    }
  )
}
