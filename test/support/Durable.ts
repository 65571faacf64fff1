/**
 * What the durability tests share with the worker processes they spawn: the workflow, the lines a
 * worker process writes on stdout, and a settlement hook that records each run in a table of its own.
 */
import { CampaignRunner, Worker, Workflow } from "@effect-batch/server"
import { type BatchRecord, type CampaignRecord, Tables } from "@effect-batch/tables"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { CommandTally } from "./Commands.js"

/** A worker process is up: its layers are built and its worker loop runs. */
export const Ready = Schema.TaggedStruct("Ready", { owner: Schema.String })

/** One finished attempt of the durable workflow, with wall-clock times in epoch millis. */
export const Attempt = Schema.TaggedStruct("Attempt", {
  owner: Schema.String,
  key: Schema.String,
  attempt: Schema.Number,
  start: Schema.Number,
  end: Schema.Number
})

/** An attempt of the durable workflow began (written before it runs, so a killed or interrupted one has it too). */
export const AttemptStarted = Schema.TaggedStruct("AttemptStarted", {
  owner: Schema.String,
  key: Schema.String,
  attempt: Schema.Number,
  start: Schema.Number
})

/** A worker process stored the batch it was told to submit (`SUBMIT_ITEMS`). */
export const Submitted = Schema.TaggedStruct("Submitted", { owner: Schema.String, batchId: Schema.String })

/** The settlement hook of a worker process started and has not committed yet. */
export const HookStarted = Schema.TaggedStruct("HookStarted", { owner: Schema.String, batchId: Schema.String })

/** A worker process follows a batch's events (it has received the first one). */
export const Watching = Schema.TaggedStruct("Watching", { owner: Schema.String, batchId: Schema.String })

/** What a worker process saw of a batch's events, from the first to the terminal one. */
export const Watched = Schema.TaggedStruct("Watched", {
  owner: Schema.String,
  batchId: Schema.String,
  events: Schema.Number,
  itemSucceeded: Schema.Number,
  distinctSucceeded: Schema.Number,
  gapless: Schema.Boolean,
  lastTag: Schema.String
})

/** The campaign settlement hook of a worker process started and has not committed yet. */
export const CampaignHookStarted = Schema.TaggedStruct("CampaignHookStarted", {
  owner: Schema.String,
  campaignId: Schema.String
})

/** A worker process ran the commands it was told to run on a batch (`COMMAND_BATCH`), and how they ended. */
export const CommandsDone = Schema.TaggedStruct("CommandsDone", { owner: Schema.String, ...CommandTally.fields })

/** A line a worker process writes on stdout. */
export const ChildMessage = Schema.Union(
  Ready,
  Attempt,
  AttemptStarted,
  Submitted,
  HookStarted,
  CampaignHookStarted,
  Watching,
  Watched,
  CommandsDone
)
export type ChildMessage = typeof ChildMessage.Type

const encodeLine = Schema.encodeSync(Schema.parseJson(ChildMessage))

/** Parses a stdout line; log lines and anything else that is not a message give `None`. */
export const parseLine = Schema.decodeUnknownOption(Schema.parseJson(ChildMessage))

/** Writes a message as one line on stdout (synchronous for pipes on Linux: it is out before a SIGKILL). */
export const emit = (message: ChildMessage): Effect.Effect<void> =>
  Effect.sync(() => {
    process.stdout.write(`${encodeLine(message)}\n`)
  })

/**
 * Wall-clock time in epoch millis, read from the one system clock every process shares: truncating to
 * the millisecond keeps the order of readings across processes (equal readings are ties).
 */
export const wallClock = (): number => Date.now()

export const WorkInput = Schema.Struct({ n: Schema.Number })
export const WorkOutput = Schema.Struct({ n: Schema.Number, doubled: Schema.Number })
export class WorkError extends Schema.TaggedError<WorkError>()("WorkError", { reason: Schema.String }) {}

/** The name of the durable workflow, the same in every process. */
export const workflowName = "durable-work"

/**
 * Takes `itemMs` of real time per item, reports each attempt as it begins to `onStart` and each
 * finished attempt to `onAttempt`; the attempts of the `poison` item end the process.
 */
export const durableWork = (options: {
  readonly itemMs: number
  readonly onAttempt?: ((attempt: typeof Attempt.Type) => Effect.Effect<void>) | undefined
  readonly onStart?: ((started: typeof AttemptStarted.Type) => Effect.Effect<void>) | undefined
  readonly owner?: string | undefined
  /**
   * runs the attempt under this rate limiter (`onStart` then reports when the limiter let it go);
   * the first attempt of a key ending in `-429` answers "rate limited, retry after `retryAfterMs`"
   */
  readonly limiter?: string | undefined
  readonly retryAfterMs?: number | undefined
  /** the key of an item whose every attempt ends its process at once (`process.exit(1)`): a poison pill */
  readonly poison?: string | undefined
}) =>
  Workflow.make({
    name: workflowName,
    input: WorkInput,
    output: WorkOutput,
    error: WorkError,
    run: (input, context) => {
      const attempt = Effect.gen(function*() {
        const start = wallClock()
        if (options.onStart !== undefined) {
          yield* options.onStart(
            AttemptStarted.make({ owner: options.owner ?? "", key: context.itemKey, attempt: context.attempt, start })
          )
        }
        if (context.itemKey === options.poison) return yield* Effect.sync(() => process.exit(1))
        if (options.limiter !== undefined && context.itemKey.endsWith("-429") && context.attempt === 1) {
          return yield* new Workflow.RateLimited({
            retryAfter: Duration.millis(options.retryAfterMs ?? 2_000),
            limiter: options.limiter
          })
        }
        if (options.itemMs > 0) yield* Effect.sleep(Duration.millis(options.itemMs))
        const end = wallClock()
        if (options.onAttempt !== undefined) {
          yield* options.onAttempt(
            Attempt.make({ owner: options.owner ?? "", key: context.itemKey, attempt: context.attempt, start, end })
          )
        }
        return { n: input.n, doubled: input.n * 2 }
      })
      return options.limiter === undefined ? attempt : context.limit(options.limiter)(attempt)
    }
  })

/** The table in which the stepped workflow records every run of a step body. */
export const stepRunsTable = "step_runs"

/** Creates a test table if it does not exist (a constant name and trusted DDL). */
const createTable = (name: string, columns: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE TABLE IF NOT EXISTS ${name} (${columns})`))

/** Creates the step runs' table if it does not exist. */
export const createStepRunsTable = createTable(
  stepRunsTable,
  "item_key text NOT NULL, step text NOT NULL, owner text NOT NULL"
)

/**
 * The durable workflow as two durable steps of `itemMs / 2` each (`first`, `second`); every run of a
 * step body is recorded in `step_runs` with the process's owner name.
 */
export const steppedWork = (options: { readonly itemMs: number; readonly owner: string }) =>
  Workflow.make({
    name: workflowName,
    input: WorkInput,
    output: WorkOutput,
    error: WorkError,
    steps: ["first", "second"],
    run: (input, context) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const body = <A>(step: string, value: A) =>
          sql`INSERT INTO ${sql(stepRunsTable)} (item_key, step, owner)
            VALUES (${context.itemKey}, ${step}, ${options.owner})`.pipe(
            Effect.zipRight(Effect.sleep(Duration.millis(options.itemMs / 2))),
            Effect.as(value),
            Effect.orDie
          )
        const n = yield* context.step("first", body("first", input.n), { output: Schema.Number })
        const doubled = yield* context.step("second", body("second", n * 2), { output: Schema.Number })
        return { n, doubled }
      })
  })

/** The items of a durable batch: `item-00000` … with `n` = index. */
export const workItems = (count: number) =>
  Array.from({ length: count }, (_, n) => ({ key: `item-${String(n).padStart(5, "0")}`, input: { n } }))

/** The table in which the recording hook writes one row per run. */
export const hookTable = "settled_hook_runs"

/** Creates the hook's table if it does not exist. */
export const createHookTable = createTable(
  hookTable,
  "run serial PRIMARY KEY, batch_id uuid NOT NULL, state_tag text NOT NULL, succeeded int NOT NULL, " +
    "failed int NOT NULL, owner text NOT NULL"
)

export const HookRun = Schema.Struct({
  batch_id: Schema.String,
  state_tag: Schema.String,
  succeeded: Schema.Number,
  failed: Schema.Number,
  owner: Schema.String
})

/** The committed hook runs of a batch, in order. */
export const hookRuns = (batchId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`SELECT batch_id::text AS batch_id, state_tag, succeeded, failed, owner FROM ${sql(hookTable)}
      WHERE batch_id = ${batchId}::uuid ORDER BY run`
  ).pipe(
    Effect.flatMap(Schema.decodeUnknown(Schema.Array(HookRun))),
    Effect.orDie
  )

/** A batch's hook state as stored (`none`, `pending`, `done`). */
export const hookState = (batchId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = yield* Tables.Tables
    const rows = yield* sql<{ hook_state: string }>`SELECT hook_state FROM ${sql(t.batches)}
      WHERE id = ${batchId}::uuid`
    return Option.fromNullable(rows[0]?.hook_state)
  }).pipe(Effect.orDie)

/**
 * A settlement hook that inserts a row into `hookTable` through the worker's own `SqlClient` (so the
 * row commits with the hook's "done" mark), then runs `after` (which may fail, signal or hang).
 */
export const recordingHook = (options: {
  readonly owner: string
  readonly after?: ((record: BatchRecord.BatchRecord) => Effect.Effect<void, unknown>) | undefined
}): Layer.Layer<Worker.SettledHook, never, SqlClient.SqlClient> =>
  Layer.effect(
    Worker.SettledHook,
    Effect.map(SqlClient.SqlClient, (sql) => (record: BatchRecord.BatchRecord) =>
      sql`INSERT INTO ${sql(hookTable)} (batch_id, state_tag, succeeded, failed, owner)
        VALUES (${record.id}::uuid, ${record.state._tag}, ${record.counts.succeeded}, ${record.counts.failed},
          ${options.owner})`.pipe(
        Effect.zipRight(options.after === undefined ? Effect.void : options.after(record)),
        Effect.asVoid
      ))
  )

/** The table in which the recording campaign hook writes one row per run. */
export const campaignHookTable = "campaign_hook_runs"

/** Creates the campaign hook's table if it does not exist. */
export const createCampaignHookTable = createTable(
  campaignHookTable,
  "run serial PRIMARY KEY, campaign_id uuid NOT NULL, state_tag text NOT NULL, results int NOT NULL, " +
    "succeeded int NOT NULL, owner text NOT NULL"
)

/** The committed campaign hook runs of a campaign, in order. */
export const campaignHookRuns = (campaignId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`SELECT state_tag, results, succeeded, owner FROM ${sql(campaignHookTable)}
      WHERE campaign_id = ${campaignId}::uuid ORDER BY run`
  ).pipe(
    Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({
      state_tag: Schema.String,
      results: Schema.Number,
      succeeded: Schema.Number,
      owner: Schema.String
    })))),
    Effect.orDie
  )

/**
 * A campaign settlement hook that reads the merged results and inserts a row (how many results, how
 * many succeeded) through the worker's own `SqlClient`, then runs `after` (which may hang).
 */
export const recordingCampaignHook = (options: {
  readonly owner: string
  readonly after?: ((record: CampaignRecord.CampaignRecord) => Effect.Effect<void, unknown>) | undefined
}): Layer.Layer<CampaignRunner.CampaignSettledHook, never, SqlClient.SqlClient> =>
  Layer.effect(
    CampaignRunner.CampaignSettledHook,
    Effect.map(SqlClient.SqlClient, (sql) => (record: CampaignRecord.CampaignRecord, results) =>
      Stream.runFold(results, { results: 0, succeeded: 0 }, (acc, r) => ({
        results: acc.results + 1,
        succeeded: acc.succeeded + (r.state === "Succeeded" ? 1 : 0)
      })).pipe(
        Effect.flatMap((counted) =>
          sql`INSERT INTO ${sql(campaignHookTable)} (campaign_id, state_tag, results, succeeded, owner)
            VALUES (${record.id}::uuid, ${record.state._tag}, ${counted.results}, ${counted.succeeded},
              ${options.owner})`
        ),
        Effect.zipRight(options.after === undefined ? Effect.void : options.after(record)),
        Effect.asVoid
      ))
  )
