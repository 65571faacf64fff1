/**
 * The claimer of one batch in this process: keeps the local queue leased ahead of the executors.
 * When the queue falls to its low-water mark it leases enough for the free slots plus the lookahead
 * (`Run.lookahead`) in one statement; when nothing is left to claim it waits for news (a command, a
 * retry coming due, another process's commit, the poll).
 */
import { ItemRepo } from "@effect-batch/tables/ItemRepo"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { average, retryForever, type Run } from "./Run.js"

/** The most items one claim leases. */
const maxClaim = 1_000

/** How many poll intervals a claimer with nothing to claim waits before it looks again unasked. */
const idlePollFactor = 5

/** The shortest wait for a due retry: a runner must not spin on an item it cannot claim. */
const minWaitMs = 10

export const make = (options: {
  readonly run: Run
  /** applies a share granted by the database */
  readonly applyShare: (slots: number) => void
}) =>
  Effect.gen(function*() {
    const { run } = options
    const items = yield* ItemRepo
    const slots = run.slots
    let granted = false

    /** Free slots plus the lookahead; before the first grant, the whole concurrency. */
    const target = () =>
      granted
        ? Math.max(0, slots.cap() - slots.executing()) + run.lookahead()
        : run.record.config.concurrency
    const claimable = () => run.record.state._tag === "Running" && !slots.holding() && !slots.stopped()
    const wantsMore = () => {
      const t = target()
      run.lowWater = Math.floor(t / 2)
      return claimable() && t > slots.size() && (slots.size() <= run.lowWater || !granted)
    }

    /**
     * Nothing left to claim now: wait for news (a command, a retry recorded here, leases reclaimed
     * here), for the next retry to come due, or for a slow poll (another process gave items back).
     */
    const waitForWork = Effect.gen(function*() {
      const poll = Duration.toMillis(run.options.pollInterval) * idlePollFactor
      const now = yield* Clock.currentTimeMillis
      const due = run.record.counts.retryScheduled > 0 ? yield* items.nextDue(run.batchId) : Option.none()
      const wait = Option.match(due, {
        onNone: () => poll,
        onSome: (at) => Math.min(poll, Math.max(minWaitMs, at - now))
      })
      yield* Effect.raceFirst(run.news.wait(() => false), Effect.sleep(Duration.millis(wait)))
      run.more = true
    })

    return yield* Effect.gen(function*() {
      while (!slots.stopped()) {
        if (!wantsMore()) {
          yield* Effect.raceFirst(run.low.wait(wantsMore), run.news.wait(wantsMore))
          continue
        }
        if (!run.more) {
          yield* waitForWork
          continue
        }
        const max = Math.min(maxClaim, target() - slots.size())
        const start = yield* Clock.currentTimeMillis
        const result = yield* items.claim({ ...run.shareRequest(start), max }).pipe(
          Effect.tapError((e) => Effect.logWarning("claiming failed; retrying", e)),
          // the schedule never ends: a claim is retried until the database answers
          Effect.retry(retryForever),
          Effect.orDie
        )
        if (Option.isNone(result)) return
        const claimed = result.value
        run.claimMs = average(run.claimMs, (yield* Clock.currentTimeMillis) - start)
        granted = true
        options.applyShare(claimed.slots)
        run.seen(claimed.version)
        slots.push(claimed.items)
        run.more = claimed.more
        if (claimed.items.length === 0 && !claimed.more) yield* waitForWork
      }
    }).pipe(Effect.annotateLogs({ fiber: "claimer" }))
  })
