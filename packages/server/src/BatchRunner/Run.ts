/**
 * What the parts of one batch's runner share in this process: the latest known batch record, the
 * local queue and its slots, the share request sent with every hot statement, the measurements that
 * size the lease-ahead, and the signals between the parts. Touched only synchronously.
 */
import { type Ids, Policy } from "@effect-batch/domain"
import type { BatchRecord } from "@effect-batch/tables/BatchRecord"
import type { ClaimedItem, ShareRequest } from "@effect-batch/tables/ItemRepo"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Signal from "./Signal.js"
import * as Slots from "./Slots.js"

/**
 * Tuning of a runner.
 *
 * @since 0.1.0
 */
export interface RunnerOptions {
  /** this process's lease owner name */
  readonly owner: string
  /** how long the runner waits for news before it looks at the batch again */
  readonly pollInterval: Duration.Duration
  /** the most start marks and outcomes recorded in one statement */
  readonly maxGroup: number
  /** the largest encoded output of a durable step, in bytes */
  readonly maxStepOutputBytes: number
  /**
   * the most items leased ahead of the free slots; the runner leases less when attempts are slow
   * (enough to cover two claim round trips at the measured attempt rate), and 0 leases only what runs
   */
  readonly prefetch: number
  /**
   * when the runner stops (the process shuts down): how long the attempts running here may take to
   * finish before they are interrupted and their leases given back; zero interrupts them at once
   */
  readonly drainTimeout: Duration.Duration
}

export interface Run {
  readonly batchId: Ids.BatchId
  readonly options: RunnerOptions
  readonly leaseMs: number
  readonly slots: Slots.Slots
  /** the latest known record: state and config from reads, counters from the latest statement */
  record: BatchRecord
  /** whether queued items may be left to claim */
  more: boolean
  /** wakes the claimer when work may have become claimable */
  readonly news: Signal.Signal
  /** wakes the claimer when the local queue ran low */
  readonly low: Signal.Signal
  /** the queue size at which the claimer leases more */
  lowWater: number
  /** the items executing now, to release if the runner stops in the middle of them */
  readonly inflight: Set<ClaimedItem>
  /**
   * outcomes whose policy decision stops the batch (abort, budget) that are not committed yet: while
   * there are any, nothing starts
   */
  pendingStops: number
  /** asks lease renewal to renegotiate the share now; a request made while a renewal runs is kept for the next */
  readonly renewNow: () => void
  /** waits until renewal is asked for, and takes the request */
  readonly renewAsked: Effect.Effect<void>
  /** wakes the control loop to read the batch again */
  readonly changed: Signal.Signal
  /** set when the batch's version moved past the record's: a command changed it */
  stale: boolean
  /** the adaptive concurrency: lowered by rate-limit answers, raised again by successes */
  aimd: Policy.Aimd
  /** a rate-limit answer (here, or anywhere for a shared limiter this batch uses): lowers the concurrency */
  readonly throttled: () => void
  /** moving averages that size the lease-ahead */
  attemptMs: number
  claimMs: number
  readonly shareRequest: (now: number) => ShareRequest
  /** how many items the claimer should keep leased but not started */
  readonly lookahead: () => number
  /** a slot or the local queue changed: wakes the claimer if the queue is at its low-water mark */
  readonly nudge: () => void
  /** work may have become claimable (a command, a retry recorded, a resume): look again */
  readonly claimable: () => void
  /** marks the record stale when a statement reports a newer version */
  readonly seen: (version: number) => void
}

/** How a hot statement is retried while the database does not answer: forever, backing off to 5 s. */
export const retryForever = Schedule.exponential("50 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))

/** The weight of a new sample in the moving averages. */
const alpha = 0.2

export const average = (current: number, sample: number) =>
  Number.isNaN(current) ? sample : current + alpha * (sample - current)

export const make = (batchId: Ids.BatchId, record: BatchRecord, options: RunnerOptions): Run => {
  const slots = Slots.make({ share: 0, limit: record.config.concurrency })
  const renewSignal = Signal.make()
  let renewWanted = false
  const run: Run = {
    batchId,
    options,
    leaseMs: Duration.toMillis(record.config.leaseDuration),
    slots,
    record,
    more: true,
    news: Signal.make(),
    low: Signal.make(),
    lowWater: 0,
    inflight: new Set(),
    pendingStops: 0,
    renewNow: () => {
      renewWanted = true
      renewSignal.notify()
    },
    renewAsked: Effect.suspend(() => renewSignal.wait(() => renewWanted)).pipe(
      Effect.zipRight(Effect.sync(() => {
        renewWanted = false
      }))
    ),
    changed: Signal.make(),
    stale: false,
    aimd: Policy.aimdStart(record.config.concurrency),
    throttled: () => {
      run.aimd = Policy.aimdOnThrottle(run.aimd)
      slots.setLimit(run.aimd.limit)
    },
    attemptMs: Number.NaN,
    claimMs: Number.NaN,
    shareRequest: (now) => {
      const concurrency = run.record.config.concurrency
      return {
        batchId,
        owner: options.owner,
        now,
        leaseMs: run.leaseMs,
        // what this process may execute until it hears back: the attempts running, or its grant in use,
        // whichever is more; a lower grant takes effect in the database with the next statement
        executing: Math.max(slots.executing(), slots.share()),
        wanted: Math.min(
          concurrency,
          slots.executing() + slots.size() + (run.more || run.record.counts.retryScheduled > 0 ? concurrency : 0)
        )
      }
    },
    lookahead: () => {
      const cap = slots.cap()
      if (options.prefetch === 0 || cap === 0) return 0
      if (Number.isNaN(run.attemptMs) || Number.isNaN(run.claimMs)) return Math.min(options.prefetch, cap)
      // the attempts that finish during two claims, at the measured rate
      const rate = cap / Math.max(run.attemptMs, 0.001)
      return Math.min(options.prefetch, Math.ceil(2 * rate * run.claimMs))
    },
    nudge: () => {
      if (slots.size() <= run.lowWater && run.low.waiting()) run.low.notify()
    },
    claimable: () => {
      run.more = true
      run.news.notify()
    },
    seen: (version) => {
      if (version !== run.record.version) {
        run.stale = true
        run.changed.notify()
      }
    }
  }
  return run
}
