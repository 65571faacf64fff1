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
 * The page's script is TypeScript in the server package's `dashboard/src` (type-checked by `tsc -b`
 * against the domain's unions and RPC answers), bundled by esbuild to `dashboard/app.js` by
 * `scripts/dashboard.ts`: `bun run build` writes it (and the package ships it), and so do the test
 * set-up, `bun run demo` and `bun run cli`. `layer` reads it once, when it is built.
 *
 * ```ts
 * Http.layer({ port: 8080, routes: Dashboard.layer })
 * ```
 *
 * @since 0.1.0
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs"
import * as Url from "node:url"
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
 * Where the page's script is read from: `dashboard/app.js` in the server package (this module and its
 * built form sit at the same depth, `src/Http/` and `dist/Http/`).
 *
 * @since 0.5.0
 */
export const scriptFile: string = Url.fileURLToPath(new URL("../../dashboard/app.js", import.meta.url))

/**
 * The page's script, read from `scriptFile`; a missing file is a defect that says how to build it.
 *
 * @since 0.5.0
 */
export const readScript: Effect.Effect<string> = Effect.try({
  try: () => Fs.readFileSync(scriptFile, "utf8"),
  catch: (cause) =>
    new Error(
      `The dashboard's script ${scriptFile} cannot be read: build it with \`bun run build\` or \`bun run dashboard\` ` +
        `(\`node --import tsx scripts/dashboard.ts\` in packages/server)`,
      { cause }
    )
}).pipe(Effect.orDie)

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
export const layer: Layer.Layer<never, never, HttpLayerRouter.HttpRouter> = Layer.unwrapEffect(
  Effect.map(readScript, (script) =>
    HttpLayerRouter.addAll([
      HttpLayerRouter.route("GET", path, asset(Page.html, "text/html; charset=utf-8", "no-store")),
      HttpLayerRouter.route("GET", scriptPath, asset(script, "text/javascript; charset=utf-8", "no-cache")),
      HttpLayerRouter.route("GET", stylePath, asset(Page.css, "text/css; charset=utf-8", "no-cache"))
    ]))
)
