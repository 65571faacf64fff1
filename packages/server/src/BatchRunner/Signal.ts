/**
 * A wake-up for fibers that wait for a condition: `wait(ready)` returns at once when `ready()` holds,
 * and otherwise until the next `notify`. The check and the registration happen together, so a
 * notification cannot slip between them; every waiter is woken (each checks its condition again).
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"

export interface Signal {
  readonly notify: () => void
  readonly wait: (ready: () => boolean) => Effect.Effect<void>
  /** whether a fiber waits on this signal now */
  readonly waiting: () => boolean
}

export const make = (): Signal => {
  let waiters: Array<Deferred.Deferred<void>> = []
  return {
    notify: () => {
      if (waiters.length === 0) return
      const woken = waiters
      waiters = []
      for (const deferred of woken) Deferred.unsafeDone(deferred, Exit.void)
    },
    wait: (ready) =>
      Effect.suspend(() => {
        if (ready()) return Effect.void
        const deferred = Deferred.unsafeMake<void>(FiberId.none)
        waiters.push(deferred)
        return Deferred.await(deferred).pipe(
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              waiters = waiters.filter((d) => d !== deferred)
            })
          )
        )
      }),
    waiting: () => waiters.length > 0
  }
}
