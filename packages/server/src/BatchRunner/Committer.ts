/**
 * The committer of one batch in this process: the one writer of its item outcomes and item events.
 * Executors hand it start marks and outcomes; it records whatever arrived while its previous statement
 * ran, as one statement (`ItemRepo.commit`), up to a maximum group, and hands the committed counters
 * to the runner's policy. A failing statement is retried: the entries stay in order.
 */
import type { CommitResult, Entry } from "@effect-batch/tables/ItemRepo"
import { ItemRepo } from "@effect-batch/tables/ItemRepo"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as AttemptMetrics from "../internal/AttemptMetrics.js"
import type { Decided } from "../internal/Decide.js"
import { retryForever, type Run } from "./Run.js"
import * as Signal from "./Signal.js"

/**
 * An entry with, for an outcome, what the policy decided for it; for a start mark someone waits
 * for, who to tell whether it was recorded.
 */
export interface Pending {
  readonly entry: Entry
  readonly decided?: Decided | undefined
  readonly recorded?: ((recorded: boolean) => void) | undefined
}

export interface Committer {
  readonly started: (entry: Entry) => void
  /** buffers a start mark and waits until it is committed: whether it was recorded (not fenced out) */
  readonly startedDurably: (entry: Entry) => Effect.Effect<boolean>
  readonly finished: (entry: Entry, decided: Decided) => void
  /** buffers a completed durable step (after its attempt's start mark) */
  readonly step: (entry: Entry) => void
  /** nothing is buffered or being written */
  readonly idle: () => boolean
  /** the loop; `onCommit` runs after every statement, in order */
  readonly run: <E>(
    onCommit: (group: ReadonlyArray<Pending>, result: CommitResult) => Effect.Effect<void, E>
  ) => Effect.Effect<void, E, ItemRepo>
  /** writes what is buffered or was being written (entries already recorded are fenced out) */
  readonly flush: Effect.Effect<void, never, ItemRepo>
}

/** Tells those waiting for start marks of `group` whether theirs was recorded. */
const tellRecorded = (group: ReadonlyArray<Pending>, result: CommitResult) => {
  // start marks are numbered in entry order (see `ItemRepo.commit`)
  const started = new Set(result.started)
  let mark = 0
  for (const pending of group) {
    if (pending.entry._tag !== "Started") continue
    pending.recorded?.(started.has(mark))
    mark++
  }
}

/** Counts the outcomes a statement recorded, and those it fenced out, once each. */
const countOutcomes = (group: ReadonlyArray<Pending>, applied: ReadonlyArray<number>) => {
  const recorded = new Set(applied)
  let idx = 0
  for (const pending of group) {
    if (pending.entry._tag !== "Finished") continue
    const failure = pending.decided?.failure
    const category = failure !== undefined && Option.isSome(failure) ? failure.value.category : "none"
    AttemptMetrics.outcome(recorded.has(idx) ? pending.entry.outcome.state : "fenced", category)
    idx++
  }
}

export const make = (run: Run): Committer => {
  let buffer: Array<Pending> = []
  let inFlight: ReadonlyArray<Pending> = []
  const signal = Signal.make()
  /** start marks waited for that are buffered or being written */
  let waiting = 0

  const write = (group: ReadonlyArray<Pending>) =>
    Effect.gen(function*() {
      const items = yield* ItemRepo
      const now = yield* Clock.currentTimeMillis
      const result = yield* items.commit({
        ...run.shareRequest(now),
        entries: group.map((p) => p.entry)
      })
      if (Option.isSome(result)) countOutcomes(group, result.value.applied)
      return result
    }).pipe(Effect.withSpan("BatchRunner.commit", { attributes: { batchId: run.batchId, entries: group.length } }))

  return {
    started: (entry) => {
      buffer.push({ entry })
      signal.notify()
    },
    startedDurably: (entry) =>
      Effect.async<boolean>((resume) => {
        waiting++
        buffer.push({
          entry,
          recorded: (recorded) => {
            waiting--
            resume(Effect.succeed(recorded))
          }
        })
        signal.notify()
      }),
    step: (entry) => {
      buffer.push({ entry })
      signal.notify()
    },
    finished: (entry, decided) => {
      buffer.push({ entry, decided })
      signal.notify()
    },
    idle: () => buffer.length === 0 && inFlight.length === 0,
    run: (onCommit) =>
      Effect.gen(function*() {
        while (true) {
          yield* signal.wait(() => buffer.length > 0)
          // let the attempts that are ready finish first, so that they are recorded together
          yield* Effect.yieldNow()
          const group = buffer.length <= run.options.maxGroup ? buffer : buffer.slice(0, run.options.maxGroup)
          buffer = group === buffer ? [] : buffer.slice(group.length)
          inFlight = group
          const result = yield* write(group).pipe(
            Effect.tapError((e) => Effect.logWarning("recording outcomes failed; retrying", e)),
            // the schedule never ends: a commit is retried until the database answers
            Effect.retry(retryForever),
            Effect.orDie
          )
          inFlight = []
          if (Option.isNone(result)) return
          yield* onCommit(group, result.value)
          if (waiting > 0) tellRecorded(group, result.value)
        }
      }).pipe(Effect.annotateLogs({ fiber: "committer" })),
    flush: Effect.suspend(() => {
      const group = [...inFlight, ...buffer]
      inFlight = []
      buffer = []
      return group.length === 0 ? Effect.void : Effect.asVoid(write(group))
    }).pipe(Effect.catchAll((e) => Effect.logWarning("recording the last outcomes failed; they run again", e)))
  }
}
