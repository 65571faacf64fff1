import type { BatchConfig } from "@effect-batch/domain"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

/** The key of the gate that holds back every limiter of a batch. */
export const allLimiters = "*"

/**
 * The named rate limiters of one batch in this process: each is an exact interval cap (at most
 * `limit` acquisitions in any window of `interval`), and each can be held back until a time after a
 * rate-limit answer.
 */
export interface Limiters {
  readonly limit: (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly holdBack: (name: string, untilMs: number) => Effect.Effect<void>
}

export const make = (rateLimits: BatchConfig.BatchConfig["rateLimits"]): Effect.Effect<Limiters> =>
  Effect.gen(function*() {
    const gates = yield* Ref.make(new Map<string, number>())
    const logs = new Map<string, Ref.Ref<ReadonlyArray<number>>>()
    for (const name of Object.keys(rateLimits)) logs.set(name, yield* Ref.make<ReadonlyArray<number>>([]))

    const waitForGate = (name: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (true) {
          const now = yield* Clock.currentTimeMillis
          const open = yield* Ref.get(gates)
          const until = Math.max(open.get(name) ?? 0, open.get(allLimiters) ?? 0)
          if (until <= now) return
          yield* Effect.sleep(Duration.millis(until - now))
        }
      })

    const acquire = (name: string): Effect.Effect<void> => {
      const log = logs.get(name)
      const config = rateLimits[name]
      if (log === undefined || config === undefined) return Effect.void
      const interval = Duration.toMillis(config.interval)
      return Effect.gen(function*() {
        while (true) {
          const now = yield* Clock.currentTimeMillis
          const wait = yield* Ref.modify(log, (times): [number, ReadonlyArray<number>] => {
            const recent = times.filter((t) => t > now - interval)
            const oldest = recent[0]
            return recent.length < config.limit || oldest === undefined
              ? [0, [...recent, now]]
              : [oldest + interval - now, recent]
          })
          if (wait <= 0) return
          yield* Effect.sleep(Duration.millis(wait))
        }
      })
    }

    return {
      limit: (name) => (effect) => waitForGate(name).pipe(Effect.zipRight(acquire(name)), Effect.zipRight(effect)),
      holdBack: (name, untilMs) =>
        Ref.update(gates, (open) => new Map(open).set(name, Math.max(open.get(name) ?? 0, untilMs)))
    }
  })
