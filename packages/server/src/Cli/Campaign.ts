/**
 * `effect-batch campaign …`: submit, watch, status, results (with an export by state) and the
 * campaign commands, over the campaign RPCs.
 *
 * @since 0.4.0
 */
import { CampaignEvent } from "@effect-batch/domain"
import type { CampaignViews } from "@effect-batch/domain"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { CampaignClient, layerFetch } from "../CampaignClient.js"
import * as CampaignWatch from "./CampaignWatch.js"
import * as Client from "./Client.js"
import { parseItems } from "./Items.js"

/** The states a results export writes one JSONL file for. */
const exported = ["succeeded", "failed", "quarantined", "skipped"] as const
const fileOf: Record<CampaignViews.CampaignResult["state"], typeof exported[number] | undefined> = {
  Queued: undefined,
  Running: undefined,
  RetryScheduled: undefined,
  Succeeded: "succeeded",
  Failed: "failed",
  Quarantined: "quarantined",
  Skipped: "skipped"
}

export const make = (common: {
  readonly url: Options.Options<string>
  readonly token: Options.Options<string>
  readonly note: Options.Options<string>
}) => {
  const { note, token, url } = common
  const campaignId = Args.text({ name: "campaign-id" })
  const withClient = Client.withClient(CampaignClient, layerFetch)
  const print = (c: CampaignViews.CampaignView) =>
    Console.log(`${c.id} ${c.state._tag} batches ${c.batches.done}/${c.batches.total}`)

  const submit = Command.make(
    "submit",
    {
      url,
      token,
      file: Args.file({ name: "file", exists: "yes" }),
      workflow: Options.text("workflow"),
      batchSize: Options.integer("batch-size").pipe(Options.withDefault(100)),
      concurrency: Options.integer("concurrency").pipe(
        Options.withDefault(1),
        Options.withDescription("batches at once")
      ),
      review: Options.boolean("review").pipe(Options.withDescription("wait for approval once every batch settled")),
      config: Options.text("config").pipe(
        Options.optional,
        Options.withDescription("more of the campaign config as JSON (batchConfig, tolerance)")
      ),
      idempotencyKey: Options.text("idempotency-key").pipe(Options.optional)
    },
    (o) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const items = yield* parseItems(yield* fs.readFileString(o.file))
        const extra = Option.match(o.config, { onNone: () => ({}), onSome: (text) => JSON.parse(text) })
        const campaign = yield* withClient(o, (client) =>
          client.create({
            workflow: o.workflow,
            items,
            config: { ...extra, batchSize: o.batchSize, concurrency: o.concurrency, review: o.review },
            ...Option.match(o.idempotencyKey, { onNone: () => ({}), onSome: (k) => ({ idempotencyKey: k }) })
          }))
        yield* print(campaign)
      })
  ).pipe(Command.withDescription("submit a JSON array or NDJSON file of { key, input } items as a campaign"))

  const watch = Command.make("watch", { url, token, campaignId }, (o) =>
    withClient(o, (client) =>
      CampaignWatch.watch({
        events: client.events(o.campaignId),
        progress: client.progress(o.campaignId),
        output: process.stdout,
        stopAt: (event) => event._tag === "CampaignReviewRequested" || CampaignEvent.isTerminal(event)
      }))).pipe(
      Command.withDescription("two-level progress (batches and items, rate, ETA) until the campaign settles")
    )

  const status = Command.make(
    "status",
    { url, token, campaignId },
    (o) =>
      withClient(
        o,
        (client) => Effect.flatMap(client.progress(o.campaignId), (p) => Console.log(JSON.stringify(p, null, 2)))
      )
  ).pipe(
    Command.withDescription("print the campaign's progress as JSON")
  )

  const results = Command.make(
    "results",
    {
      url,
      token,
      campaignId,
      status: Options.choice("status", ["succeeded", "failed", "quarantined", "skipped"]).pipe(Options.optional),
      out: Options.directory("out").pipe(
        Options.optional,
        Options.withDescription("write one JSONL file per state and a manifest.json here")
      )
    },
    (o) =>
      withClient(o, (client) =>
        Effect.gen(function*() {
          const state = Option.map(o.status, (s) => `${s[0]!.toUpperCase()}${s.slice(1)}`)
          const stream = client.results(o.campaignId, Option.getOrUndefined(state))
          if (Option.isNone(o.out)) {
            return yield* Stream.runForEach(stream, (r) => Console.log(JSON.stringify(r)))
          }
          const fs = yield* FileSystem.FileSystem
          const path = yield* Path.Path
          const dir = o.out.value
          yield* fs.makeDirectory(dir, { recursive: true })
          const files = yield* Effect.forEach(
            exported,
            (name) =>
              Effect.map(fs.open(path.join(dir, `${name}.jsonl`), { flag: "w" }), (file) => [name, file] as const)
          )
          const byName = new Map(files)
          const counts: Record<string, number> = Object.fromEntries(exported.map((n) => [n, 0]))
          const keys = new Set<string>()
          let duplicated = 0
          const encoder = new TextEncoder()
          yield* Stream.runForEach(stream, (r) =>
            Effect.suspend(() => {
              if (keys.has(r.key)) duplicated++
              keys.add(r.key)
              const name = fileOf[r.state]
              const file = name === undefined ? undefined : byName.get(name)
              if (name === undefined || file === undefined) return Effect.void
              counts[name] = (counts[name] ?? 0) + 1
              return file.write(encoder.encode(`${JSON.stringify(r)}\n`))
            }))
          const campaign = yield* client.get(o.campaignId)
          const outcomes = exported.reduce((n, name) => n + (counts[name] ?? 0), 0)
          const manifest = {
            campaignId: campaign.id,
            state: campaign.state._tag,
            total: campaign.total,
            ...(Option.isSome(o.status) ? { status: o.status.value } : {}),
            counts,
            merge: Option.isSome(o.status) ? undefined : {
              expected: campaign.total,
              outcomes,
              missing: Math.max(campaign.total - outcomes, 0),
              duplicated,
              ok: outcomes === campaign.total && duplicated === 0
            }
          }
          yield* fs.writeFileString(path.join(dir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`)
          yield* Console.log(`wrote ${outcomes} result(s) to ${dir}: ${JSON.stringify(counts)}`)
        }).pipe(Effect.scoped))
  ).pipe(Command.withDescription("print every outcome as NDJSON in (batch, key) order, or export them by state"))

  const simple = (
    name: "resume" | "cancel" | "approve" | "reject",
    run: (
      client: CampaignClient["Type"],
      id: string,
      note: string
    ) => Effect.Effect<CampaignViews.CampaignView, unknown>
  ) =>
    Command.make(
      name,
      { url, token, campaignId, note },
      (o) => withClient(o, (client) => Effect.flatMap(run(client, o.campaignId, o.note), print))
    ).pipe(
      Command.withDescription(`${name} a campaign`)
    )

  const pause = Command.make(
    "pause",
    {
      url,
      token,
      campaignId,
      note,
      cascade: Options.boolean("cascade").pipe(Options.withDescription("pause the running batches too"))
    },
    (o) =>
      withClient(o, (client) => Effect.flatMap(client.pause(o.campaignId, { note: o.note, cascade: o.cascade }), print))
  ).pipe(Command.withDescription("start no new batch of a campaign"))

  const retryFailed = Command.make(
    "retry-failed",
    { url, token, campaignId, dryRun: Options.boolean("dry-run") },
    (o) =>
      withClient(
        o,
        (client) =>
          Effect.flatMap(client.retryFailed(o.campaignId, { dryRun: o.dryRun }), (plan) =>
            Console.log(
              `${
                plan.dryRun ? "would re-run" : "re-running"
              } ${plan.items} failed item(s) of ${plan.batches.length} batch(es)${
                plan.batches.map((b) =>
                  `\n  batch ${b.index}: ${b.keys.join(", ")}${b.count > b.keys.length ? ", ..." : ""}`
                )
                  .join("")
              }`
            ))
      )
  ).pipe(Command.withDescription("re-run only the failed items of the failed batches (--dry-run shows which)"))

  const release = Command.make(
    "release-quarantined",
    { url, token, campaignId },
    (o) =>
      withClient(
        o,
        (client) =>
          Effect.flatMap(client.releaseQuarantined(o.campaignId), (r) => Console.log(`released ${r.released} item(s)`))
      )
  ).pipe(
    Command.withDescription("put every quarantined item of a campaign back in its batch's queue")
  )

  const update = Command.make(
    "update",
    {
      url,
      token,
      campaignId,
      concurrency: Options.integer("concurrency").pipe(Options.optional),
      tolerance: Options.text("tolerance").pipe(Options.optional, Options.withDescription("the tolerance as JSON"))
    },
    (o) =>
      withClient(o, (client) =>
        Effect.flatMap(
          client.updateConfig(o.campaignId, {
            ...Option.match(o.concurrency, { onNone: () => ({}), onSome: (n) => ({ concurrency: n }) }),
            ...Option.match(o.tolerance, { onNone: () => ({}), onSome: (t) => ({ tolerance: JSON.parse(t) }) })
          }),
          print
        ))
  ).pipe(Command.withDescription("change a campaign's concurrency or tolerance while it runs"))

  return Command.make("campaign").pipe(
    Command.withDescription("campaigns: large item lists run as batches of batches"),
    Command.withSubcommands([
      submit,
      watch,
      status,
      results,
      pause,
      simple("resume", (c, id) => c.resume(id)),
      simple("cancel", (c, id, n) => c.cancel(id, n)),
      simple("approve", (c, id, n) => c.approve(id, n)),
      simple("reject", (c, id, n) => c.reject(id, n)),
      retryFailed,
      release,
      update
    ])
  )
}
