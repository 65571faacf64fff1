import { Ids } from "@effect-batch/domain"
import { CampaignClient, CampaignOrchestrator, Http } from "@effect-batch/server"
import { TestDatabase } from "@effect-batch/tables"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Playwright from "playwright-core"
import { openPage, promise, server, shown, text, until } from "./support/Browser.js"
import { items, paced, tokens } from "./support/HttpServer.js"

/**
 * The dashboard's campaign list and campaign view in a real headless Chromium, against a server on
 * a free port over each test database; what the browser did is checked through the campaign RPCs.
 */

const tenant = Schema.decodeSync(Ids.TenantId)
const acme = { tenant: tenant("acme"), actor: "alice" }
const globex = { tenant: tenant("globex") }

/** The typed campaign client over HTTP, as `token`'s tenant. */
const clientAs = (token: string) =>
  Effect.flatMap(Http.url, (url) => CampaignClient.make({ url, token })).pipe(Effect.provide(FetchHttpClient.layer))

const open = (page: Playwright.Page, token: string, hash = "") =>
  Effect.flatMap(Http.url, (base) => promise(() => page.goto(`${base}/?token=${encodeURIComponent(token)}${hash}`)))

const click = (page: Playwright.Page, selector: string) => promise(() => page.click(selector))

/** Each batch tile's index and state, in the grid's order. */
const tiles = (page: Playwright.Page) =>
  promise(() =>
    page.locator("#campaign-batches .tile").evaluateAll((els) =>
      els.map((el) => [el.dataset["index"], el.dataset["state"]])
    )
  )

const cells = (page: Playwright.Page, selector: string) =>
  promise(() => page.locator(`${selector} td`).allTextContents())

for (const [name, db] of TestDatabase.databases) {
  layer(server(db), { excludeTestServices: true, timeout: "60 seconds" })(
    `dashboard campaigns in headless Chromium (${name})`,
    (it) => {
      it.scoped("the list and the view roll a campaign up to 100%, a batch opens its view, Approve completes it", () =>
        Effect.gen(function*() {
          const campaigns = yield* CampaignOrchestrator.CampaignOrchestrator
          const client = yield* clientAs(tokens.acme)
          const campaign = yield* campaigns.submitEncoded(
            paced.name,
            items(40, 20),
            { batchSize: 10, concurrency: 2, review: true },
            acme
          )

          const { errors, page } = yield* openPage
          yield* open(page, tokens.acme)
          const row = `#campaign-rows tr[data-campaign-id="${campaign.id}"]`
          yield* shown(page, row)
          const listed = yield* cells(page, row)
          assert.deepStrictEqual([listed[0], listed[1]], [paced.name, campaign.id.slice(0, 8)])
          yield* click(page, row)

          yield* promise(() => page.waitForSelector("#campaign-state[data-state=AwaitingReview]", { timeout: 15_000 }))
          assert.include(yield* text(page, "#campaign-title"), campaign.id)
          assert.isTrue(yield* promise(() => page.locator("#batch").isHidden()))
          assert.deepStrictEqual(
            [
              yield* text(page, "#campaign-settled"),
              yield* text(page, "#campaign-total"),
              yield* text(page, "#campaign-percent"),
              yield* text(page, "#campaign-batches-done"),
              yield* text(page, "#campaign-batches-total"),
              yield* text(page, "#campaign-batches-percent")
            ],
            ["40", "40", "(100%)", "4", "4", "(100%)"]
          )
          const itemsBar = yield* promise(() =>
            page.locator("#campaign-bar span").evaluateAll((els) => els.map((el) => [el.className, el.style.width]))
          )
          assert.deepStrictEqual(itemsBar, [["s-succeeded", "100%"]])
          assert.deepStrictEqual(yield* tiles(page), [0, 1, 2, 3].map((i) => [String(i), "Completed"]))
          assert.deepStrictEqual(
            yield* promise(() => page.locator("#campaign-batches .tile .mono").allTextContents()),
            ["10 / 10", "10 / 10", "10 / 10", "10 / 10"]
          )
          assert.strictEqual(yield* text(page, "#campaign-quarantined-count"), "0")
          // the review request came over the campaign's event stream, which stays open while it waits
          yield* shown(page, "#campaign-events li:has-text('CampaignReviewRequested')")
          yield* shown(page, "#live[data-live=on]")
          yield* until(cells(page, row), (c) => c[2] === "AwaitingReview" && c[4] === "40 / 40", 5_000, "the list row")
          assert.strictEqual((yield* cells(page, row))[5], "4 / 4")

          // the third batch opens in the batch view, and leads back to its campaign
          const children = yield* client.batches(campaign.id)
          const third = children.items[2]?.batch
          if (third === undefined) return yield* Effect.dieMessage("the campaign has no third batch")
          yield* click(page, "#campaign-batches .tile[data-index='2']")
          yield* promise(() => page.waitForSelector("#batch-state[data-state=Completed]", { timeout: 10_000 }))
          assert.include(yield* text(page, "#batch-title"), third.id)
          assert.strictEqual(yield* text(page, "#settled"), "10")
          assert.isTrue(yield* promise(() => page.locator("#campaign").isHidden()))
          yield* click(page, "#batch-campaign")
          yield* shown(page, "#campaign-state[data-state=AwaitingReview]", "visible")
          assert.isTrue(yield* promise(() => page.locator("#batch").isHidden()))

          yield* promise(() => page.fill("#campaign-note", "spot-checked 4 items"))
          yield* click(page, "button[data-campaign-action=approve]")
          yield* shown(page, "#campaign-state[data-state=Completed]")
          const approved = yield* client.get(campaign.id)
          assert.strictEqual(approved.state._tag, "Completed")
          if (approved.state._tag === "Completed") assert.strictEqual(approved.state.approvedBy, "alice")
          assert.strictEqual(yield* text(page, "#campaign-detail"), "approved by alice")
          yield* shown(page, "#campaign-events li:has-text('CampaignCompleted')")
          assert.deepStrictEqual(errors, [])
        }))

      it.scoped("pause with cascade, the concurrency and resume from the browser; retry failed shows its dry run first", () =>
        Effect.gen(function*() {
          const campaigns = yield* CampaignOrchestrator.CampaignOrchestrator
          const client = yield* clientAs(tokens.acme)
          // about 3 s: 4 batches one after the other, each 10 items of 150 ms two at a time; two fail for good
          const work = items(40, 150).map((item, i) => ({
            ...item,
            input: { ...item.input, fail: i === 3 || i === 27 }
          }))
          const campaign = yield* campaigns.submitEncoded(
            paced.name,
            work,
            { batchSize: 10, concurrency: 1, batchConfig: { concurrency: 2 } },
            acme
          )

          const { errors, page } = yield* openPage
          yield* open(page, tokens.acme, `#campaign=${campaign.id}`)
          yield* shown(page, "#campaign-state[data-state=Running]")
          yield* promise(() => page.check("#campaign-cascade"))
          yield* click(page, "button[data-campaign-action=pause]")
          yield* shown(page, "#campaign-state[data-state=Paused]")
          const paused = yield* client.get(campaign.id)
          assert.strictEqual(paused.state._tag, "Paused")
          // the pause cascaded: no batch runs, and the grid shows each batch's state as the RPC does
          const states = (yield* client.batches(campaign.id)).items.map((b) => [String(b.index), b.batch.state._tag])
          assert.notInclude(states.map((s) => s[1]), "Running")
          yield* until(tiles(page), (t) => JSON.stringify(t) === JSON.stringify(states), 5_000, "the grid's states")
          assert.isTrue(yield* promise(() => page.locator("button[data-campaign-action=approve]").isDisabled()))

          yield* promise(() => page.fill("#campaign-concurrency", "2"))
          yield* click(page, "button[data-campaign-action=concurrency]")
          yield* until(client.get(campaign.id), (c) => c.config.concurrency === 2, 5_000, "concurrency 2")
          yield* shown(page, "#campaign-message:has-text('2 batches at once')")

          yield* click(page, "button[data-campaign-action=resume]")
          yield* shown(page, "#campaign-state[data-state=Running]")
          yield* promise(() => page.waitForSelector("#campaign-state[data-state=Completed]", { timeout: 15_000 }))
          const done = yield* client.get(campaign.id)
          assert.strictEqual(done.counts.failed, 2)
          assert.strictEqual(yield* text(page, "#campaign-settled"), "40")

          yield* click(page, "button[data-campaign-action=retry]")
          yield* shown(page, "#confirm[open]")
          assert.strictEqual(yield* text(page, "#confirm-title"), "Retry 2 failed items?")
          assert.include(yield* text(page, "#confirm-text"), "2 batches")
          assert.deepStrictEqual(
            yield* promise(() => page.locator("#confirm-list li").allTextContents()),
            ["batch 0: item-0003", "batch 2: item-0027"]
          )
          assert.strictEqual((yield* client.get(campaign.id)).version, done.version, "a dry run changes nothing")
          yield* click(page, "#confirm-yes")
          yield* until(client.get(campaign.id), (c) => "round" in c.state && c.state.round === 2, 10_000, "round 2")
          yield* shown(page, "#campaign-round:text-is('2')")
          yield* promise(() => page.waitForSelector("#campaign-state[data-state=Completed]", { timeout: 15_000 }))
          assert.strictEqual((yield* client.get(campaign.id)).counts.failed, 2, "the two items failed again")
          yield* shown(page, "#campaign-events li:has-text('CampaignRedriven')")
          assert.deepStrictEqual(errors, [])
        }))

      it.scoped("another tenant's dashboard shows none of the campaigns of acme", () =>
        Effect.gen(function*() {
          const campaigns = yield* CampaignOrchestrator.CampaignOrchestrator
          const theirs = yield* campaigns.submitEncoded(paced.name, items(2, 1), { batchSize: 1 }, globex)
          const ours = yield* campaigns.submitEncoded(paced.name, items(2, 1), { batchSize: 1 }, acme)

          const { errors, page } = yield* openPage
          yield* open(page, tokens.globex, `#campaign=${ours.id}`)
          yield* shown(page, "#campaign-message.error")
          assert.strictEqual(
            yield* text(page, "#campaign-message"),
            "This campaign does not exist (or belongs to another tenant)."
          )
          yield* shown(page, `#campaign-rows tr[data-campaign-id="${theirs.id}"]`)
          const listed = yield* promise(() =>
            page.locator("#campaign-rows tr").evaluateAll((rows) => rows.map((r) => r.dataset["campaignId"]))
          )
          assert.deepStrictEqual(listed, [theirs.id])
          assert.deepStrictEqual(errors, [])
        }))
    }
  )
}
