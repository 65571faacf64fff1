/**
 * A worker process for the durability tests: `node --conditions=@effect-batch/source --import tsx test/support/WorkerProcess.ts`.
 *
 * Environment: `DATABASE_URL` (required), `OWNER` (its lease owner name), `ITEM_MS` (real time per
 * item), `POLL_MS` (how often its worker loop looks for work and pending hooks), `LOG_ATTEMPTS` (write
 * an `Attempt` line per finished attempt), `LOG_STARTS` (write an `AttemptStarted` line as each attempt
 * begins), `PREFETCH` (the worker's lease-ahead limit; the engine's default when unset), `WATCH_BATCH`
 * (follow that batch's events: write `Watching` once subscribed, then `Watched` after the terminal event), `HOOK` (`none`; `record`: a settlement
 * hook that records a row; `hang`: records a row, writes `HookStarted` and never commits), `STEPS` (run
 * the workflow as two durable steps, recording each step run in `step_runs`), `LIMITER` (run each attempt
 * under that rate limiter; the first attempt of a key ending in `-429` is rate limited for `RETRY_AFTER_MS`),
 * `POISON_KEY` (every attempt of the item with that key ends the process with `process.exit(1)`),
 * `CAMPAIGNS` (`false`: run batches but drive no campaign), `CAMPAIGN_HOOK` (`none`; `record`: a campaign
 * settlement hook that records a row; `hang`: records a row, writes `CampaignHookStarted` and never commits),
 * `SUBMIT_ITEMS` (once up, submit a batch of that many work items with the config `BATCH_CONFIG`, a JSON
 * object, and write `Submitted`), `TOGGLE_BATCH` (once up, pause and resume that batch over and over; a
 * command refused because the batch moved on is tried again), `COMMAND_BATCH` (once up, run `COMMANDS`
 * random commands on that batch, up to `COMMAND_GAP_MS` apart, and write `CommandsDone`).
 */
import { Ids } from "@effect-batch/domain"
import { BatchOrchestrator, EffectBatch, Worker, WorkflowRegistry } from "@effect-batch/server"
import { Database } from "@effect-batch/tables"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { commandStorm } from "./Commands.js"
import {
  CampaignHookStarted,
  CommandsDone,
  durableWork,
  emit,
  HookStarted,
  Ready,
  recordingCampaignHook,
  recordingHook,
  steppedWork,
  Submitted,
  Watched,
  Watching,
  workItems
} from "./Durable.js"
import { caller } from "./Harness.js"

const settings = Config.all({
  url: Config.redacted("DATABASE_URL"),
  owner: Config.string("OWNER").pipe(Config.withDefault(`worker-${process.pid}`)),
  itemMs: Config.integer("ITEM_MS").pipe(Config.withDefault(10)),
  pollMs: Config.integer("POLL_MS").pipe(Config.withDefault(100)),
  logAttempts: Config.boolean("LOG_ATTEMPTS").pipe(Config.withDefault(false)),
  logStarts: Config.boolean("LOG_STARTS").pipe(Config.withDefault(false)),
  prefetch: Config.option(Config.integer("PREFETCH")),
  watch: Config.option(Config.string("WATCH_BATCH")),
  hook: Config.literal("none", "record", "hang")("HOOK").pipe(Config.withDefault("none")),
  steps: Config.boolean("STEPS").pipe(Config.withDefault(false)),
  limiter: Config.option(Config.string("LIMITER")),
  retryAfterMs: Config.integer("RETRY_AFTER_MS").pipe(Config.withDefault(2_000)),
  poison: Config.option(Config.string("POISON_KEY")),
  campaigns: Config.boolean("CAMPAIGNS").pipe(Config.withDefault(true)),
  campaignHook: Config.literal("none", "record", "hang")("CAMPAIGN_HOOK").pipe(Config.withDefault("none")),
  submitItems: Config.option(Config.integer("SUBMIT_ITEMS")),
  batchConfig: Config.string("BATCH_CONFIG").pipe(Config.withDefault("{}")),
  toggle: Config.option(Config.string("TOGGLE_BATCH")),
  command: Config.option(Config.string("COMMAND_BATCH")),
  commands: Config.integer("COMMANDS").pipe(Config.withDefault(20)),
  commandGapMs: Config.integer("COMMAND_GAP_MS").pipe(Config.withDefault(20))
})

type Settings = Config.Config.Success<typeof settings>

const layer = (s: Settings) => {
  const hook: Layer.Layer<never, never, SqlClient.SqlClient> = s.hook === "none"
    ? Layer.empty
    : recordingHook({
      owner: s.owner,
      after: s.hook === "hang"
        ? (record) => emit(HookStarted.make({ owner: s.owner, batchId: record.id })).pipe(Effect.zipRight(Effect.never))
        : undefined
    })
  const campaignHook: Layer.Layer<never, never, SqlClient.SqlClient> = s.campaignHook === "none"
    ? Layer.empty
    : recordingCampaignHook({
      owner: s.owner,
      after: s.campaignHook === "hang"
        ? (record) =>
          emit(CampaignHookStarted.make({ owner: s.owner, campaignId: record.id })).pipe(Effect.zipRight(Effect.never))
        : undefined
    })
  const workflow = s.steps ? steppedWork({ itemMs: s.itemMs, owner: s.owner }) : durableWork({
    itemMs: s.itemMs,
    owner: s.owner,
    onAttempt: s.logAttempts ? emit : undefined,
    onStart: s.logStarts ? emit : undefined,
    limiter: Option.getOrUndefined(s.limiter),
    retryAfterMs: s.retryAfterMs,
    poison: Option.getOrUndefined(s.poison)
  })
  return EffectBatch.layer.pipe(
    Layer.provide(Layer.mergeAll(
      WorkflowRegistry.layer(workflow),
      Worker.layerConfig({
        owner: s.owner,
        pollInterval: Duration.millis(s.pollMs),
        campaigns: s.campaigns,
        ...Option.match(s.prefetch, { onNone: () => ({}), onSome: (prefetch) => ({ prefetch }) })
      }),
      hook,
      campaignHook
    )),
    Layer.provide(Database.layerPostgres(s.url))
  )
}

/** Follows a batch from its first event to its terminal one and reports what arrived. */
const watch = (owner: string, batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
    const initial = { events: 0, itemSucceeded: 0, keys: new Set<string>(), gapless: true, lastTag: "" }
    const seen = yield* orchestrator.events(caller, batchId, 0).pipe(
      Stream.tap((event) => event.seq === 1 ? emit(Watching.make({ owner, batchId })) : Effect.void),
      Stream.runFold(initial, (acc, event) => {
        if (event._tag === "ItemSucceeded") acc.keys.add(event.itemKey)
        return {
          events: acc.events + 1,
          itemSucceeded: acc.itemSucceeded + (event._tag === "ItemSucceeded" ? 1 : 0),
          keys: acc.keys,
          gapless: acc.gapless && event.seq === acc.events + 1,
          lastTag: event._tag
        }
      })
    )
    yield* emit(Watched.make({
      owner,
      batchId,
      events: seen.events,
      itemSucceeded: seen.itemSucceeded,
      distinctSucceeded: seen.keys.size,
      gapless: seen.gapless,
      lastTag: seen.lastTag
    }))
  })

/** Submits `count` work items as one batch with `config` (encoded) and reports its id. */
const submit = (owner: string, count: number, config: unknown) =>
  Effect.gen(function*() {
    const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
    const batch = yield* Effect.orDie(
      orchestrator.submitEncoded(durableWork({ itemMs: 0 }).name, workItems(count), config, caller)
    )
    yield* emit(Submitted.make({ owner, batchId: batch.id }))
  })

/** Pauses and resumes a batch until the process ends; a refused command (the batch moved on) is tried again. */
const toggle = (batchId: Ids.BatchId) =>
  Effect.gen(function*() {
    const orchestrator = yield* BatchOrchestrator.BatchOrchestrator
    const once = (command: Effect.Effect<unknown, unknown>) =>
      command.pipe(Effect.retry(Schedule.spaced("5 millis")), Effect.zipRight(Effect.sleep("20 millis")))
    return yield* Effect.forever(
      Effect.zipRight(once(orchestrator.pause(caller, batchId)), once(orchestrator.resume(caller, batchId)))
    )
  })

const main = Effect.gen(function*() {
  const s = yield* settings
  const watched = yield* Effect.transposeMapOption(s.watch, Schema.decodeUnknown(Ids.BatchId))
  const toggled = yield* Effect.transposeMapOption(s.toggle, Schema.decodeUnknown(Ids.BatchId))
  const commanded = yield* Effect.transposeMapOption(s.command, Schema.decodeUnknown(Ids.BatchId))
  const batchConfig = yield* Schema.decodeUnknown(Schema.parseJson())(s.batchConfig)
  yield* Effect.gen(function*() {
    yield* emit(Ready.make({ owner: s.owner }))
    if (Option.isSome(watched)) yield* watch(s.owner, watched.value)
    if (Option.isSome(s.submitItems)) yield* submit(s.owner, s.submitItems.value, batchConfig)
    if (Option.isSome(toggled)) yield* toggle(toggled.value)
    if (Option.isSome(commanded)) {
      const tally = yield* commandStorm(commanded.value, { count: s.commands, gapMs: s.commandGapMs })
      yield* emit(CommandsDone.make({ owner: s.owner, ...tally }))
    }
    return yield* Effect.never
  }).pipe(Effect.provide(layer(s)))
})

// The test that started this process holds its stdin open: if that test's process goes away, so does this one.
process.stdin.on("end", () => process.kill(process.pid, "SIGTERM"))
process.stdin.resume()

NodeRuntime.runMain(main)
