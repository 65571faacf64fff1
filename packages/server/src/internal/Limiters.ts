import type { BatchConfig, Ids } from "@effect-batch/domain"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { SharedLimiters } from "../SharedLimiters.js"

/** The key of the gate that holds back every limiter of a batch. */
export const allLimiters = "*"

/**
 * The rate limiters one batch's attempts see in this process. A name the batch's config declares is
 * its private limiter: an exact interval cap (at most `limit` acquisitions in any window of
 * `interval`) in this process. Any other name is a shared limiter of the batch's tenant, exact over
 * every process (`SharedLimiters`). Each can be held back until a time after a rate-limit answer.
 */
export interface Limiters {
  readonly limit: (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly holdBack: (name: string, untilMs: number) => Effect.Effect<void>
  /**
   * Whether a rate-limit answer naming `limiter` (or none) at `now` lowers the batch's concurrency:
   * always for the batch's own limiters; for a shared one, once per hold (the first answer of a hold,
   * wherever it came from, lowers the concurrency of all its users).
   */
  readonly lowersConcurrency: (limiter: Option.Option<string>, now: number) => boolean
}

/** The acquisitions of a private limiter within its window: `times` from `head` on, oldest first. */
interface SlidingLog {
  times: Array<number>
  head: number
}

export const make = (options: {
  readonly rateLimits: BatchConfig.BatchConfig["rateLimits"]
  readonly tenant: Ids.TenantId
  readonly shared: SharedLimiters
  /** lowers the batch's concurrency after a rate-limit answer */
  readonly throttled: () => void
  readonly concurrency: () => number
}): Effect.Effect<Limiters, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { rateLimits, shared, tenant } = options
    const gates = new Map<string, number>()
    const logs = new Map<string, SlidingLog>()
    for (const name of Object.keys(rateLimits)) logs.set(name, { times: [], head: 0 })
    const sharedUsed = new Set<string>()
    const subscriber = {
      tenant,
      uses: (name: string) => sharedUsed.has(name),
      throttled: options.throttled,
      concurrency: options.concurrency
    }
    yield* shared.subscribe(subscriber)

    /** Waits while the limiter, or every limiter of the batch, is held back after a rate-limit answer. */
    const waitForGate = (name: string): Effect.Effect<void> => {
      const loop: Effect.Effect<void> = Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        const until = Math.max(gates.get(name) ?? 0, gates.get(allLimiters) ?? 0)
        return until <= now ? Effect.void : Effect.flatMap(Effect.sleep(Duration.millis(until - now)), () => loop)
      })
      return loop
    }

    /**
     * An exact interval cap in this process: the times of the acquisitions within the window, oldest
     * first, in an array whose expired head is skipped (and compacted now and then), so that an
     * acquisition costs O(1) amortized whatever the limit.
     */
    const acquirePrivate = (log: SlidingLog, config: BatchConfig.RateLimit): Effect.Effect<void> => {
      const interval = Duration.toMillis(config.interval)
      const attempt = (now: number): number => {
        while (log.head < log.times.length && log.times[log.head]! <= now - interval) log.head++
        if (log.head > 1024 && log.head * 2 > log.times.length) {
          log.times = log.times.slice(log.head)
          log.head = 0
        }
        if (log.times.length - log.head < config.limit) {
          log.times.push(now)
          return 0
        }
        return log.times[log.head]! + interval - now
      }
      const loop: Effect.Effect<void> = Effect.clockWith((clock) => {
        const wait = attempt(clock.unsafeCurrentTimeMillis())
        return wait <= 0 ? Effect.void : Effect.flatMap(Effect.sleep(Duration.millis(wait)), () => loop)
      })
      return loop
    }

    const acquire = (name: string): Effect.Effect<void> => {
      const log = logs.get(name)
      const config = rateLimits[name]
      if (log !== undefined && config !== undefined) return acquirePrivate(log, config)
      sharedUsed.add(name)
      return shared.acquire(tenant, name)
    }

    const isSharedName = (name: string) => name !== allLimiters && !logs.has(name)

    return {
      limit: (name) => (effect) => waitForGate(name).pipe(Effect.zipRight(acquire(name)), Effect.zipRight(effect)),
      holdBack: (name, untilMs) => {
        if (!isSharedName(name)) {
          return Effect.sync(() => {
            gates.set(name, Math.max(gates.get(name) ?? 0, untilMs))
          })
        }
        // the batch that saw the answer has lowered its own concurrency already
        sharedUsed.add(name)
        return shared.holdBack(tenant, name, untilMs, subscriber)
      },
      lowersConcurrency: (limiter, now) =>
        Option.isNone(limiter) || !isSharedName(limiter.value) || !shared.heldBack(tenant, limiter.value, now)
    }
  })
