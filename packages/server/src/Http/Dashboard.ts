/**
 * The dashboard: one page at `GET /` (with its script and stylesheet under `/dashboard/`) that lists
 * the tenant's batches with live progress bars and shows one batch: counts per item state, throughput,
 * ETA, item durations, a filterable item table with errors and attempts, the latest errors, the live
 * events, and the pause, resume, cancel, approve, reject and retry-failed buttons (retry-failed shows
 * its dry run first). It lists the tenant's campaigns too and shows one campaign: the roll-up of its
 * items and batches, its batches as a grid (each opens its batch), its quarantined items, its live
 * events and its commands.
 *
 * The page is static and dependency-free; it reads data only through the authenticated routes: the
 * RPCs on `POST /rpc` (`Authorization: Bearer`) and the events on `GET /batches/:id/events` and
 * `GET /campaigns/:id/events`.
 * It takes its token from `?token=` in its address (the `serve` and `demo` commands print that
 * address), removes it from the address bar, and keeps it for the tab (and as the `effect_batch_token`
 * cookie). A strict Content-Security-Policy allows only its own script, styles and requests.
 *
 * ```ts
 * Http.layer({ port: 8080, routes: Dashboard.layer })
 * ```
 *
 * @since 0.1.0
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Layer from "effect/Layer"
import * as App from "./Dashboard/App.js"
import * as CampaignControls from "./Dashboard/CampaignControls.js"
import * as Campaigns from "./Dashboard/Campaigns.js"
import * as Client from "./Dashboard/Client.js"
import * as Controls from "./Dashboard/Controls.js"
import * as Limiters from "./Dashboard/Limiters.js"
import * as Page from "./Dashboard/Page.js"

/**
 * The path of the page.
 *
 * @since 0.1.0
 */
export const path = "/"

/**
 * The path of the page's script.
 *
 * @since 0.1.0
 */
export const scriptPath = "/dashboard/app.js"

/**
 * The path of the page's stylesheet.
 *
 * @since 0.1.0
 */
export const stylePath = "/dashboard/app.css"

/**
 * The page's script: the client helpers, the controls, the application, the limiters panel and the
 * campaigns, in one function scope.
 *
 * @since 0.1.0
 */
export const script = `(function () {\n${
  [Client.script, Controls.script, App.script, Limiters.script, Campaigns.script, CampaignControls.script].join("\n")
}\n})();\n`

/**
 * The security headers of every dashboard answer.
 *
 * @since 0.1.0
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  "content-security-policy": [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join("; "),
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY"
}

const asset = (body: string, contentType: string, cacheControl: string) =>
  HttpServerResponse.text(body, {
    contentType,
    headers: { ...securityHeaders, "cache-control": cacheControl }
  })

/**
 * The dashboard's routes, to pass as `routes` to `Http.layer`.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<never, never, HttpLayerRouter.HttpRouter> = HttpLayerRouter.addAll([
  HttpLayerRouter.route("GET", path, asset(Page.html, "text/html; charset=utf-8", "no-store")),
  HttpLayerRouter.route("GET", scriptPath, asset(script, "text/javascript; charset=utf-8", "no-cache")),
  HttpLayerRouter.route("GET", stylePath, asset(Page.css, "text/css; charset=utf-8", "no-cache"))
])
