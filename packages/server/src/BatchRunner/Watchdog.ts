/**
 * Per-attempt deadlines: one fiber per batch interrupts the attempts past their deadline. A timer and
 * a race per attempt (`Effect.timeoutFail`) would cost more than a short attempt itself. Every
 * attempt registers with its own deadline, computed when it starts, so a retry is bounded exactly
 * like a first attempt.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Signal from "./Signal.js"

/** the fiber an attempt runs on */
export type Attempt = Fiber.RuntimeFiber<unknown, unknown>

export interface Watchdog {
  /** watches an attempt until `unwatch`; interrupts it at `deadline` (epoch millis) */
  readonly watch: (fiber: Attempt, deadline: number) => void
  /** stops watching; says whether the watchdog had timed the attempt out */
  readonly unwatch: (fiber: Attempt) => boolean
  /** the fiber that does the watching */
  readonly run: Effect.Effect<never>
}

/** The longest the watchdog sleeps before it looks again (a deadline may have been added meanwhile). */
const maxSleepMs = 1_000

export const make = (): Watchdog => {
  const wake = Signal.make()
  // insertion order is deadline order while the batch's timeout does not change
  const deadlines = new Map<Attempt, number>()
  const timedOut = new Set<Attempt>()
  let earliestSleep = Number.POSITIVE_INFINITY

  const run = Effect.gen(function*() {
    while (true) {
      if (deadlines.size === 0) {
        earliestSleep = Number.POSITIVE_INFINITY
        yield* wake.wait(() => deadlines.size > 0)
        continue
      }
      const now = yield* Clock.currentTimeMillis
      let next = now + maxSleepMs
      for (const [fiber, deadline] of deadlines) {
        if (deadline <= now) {
          deadlines.delete(fiber)
          timedOut.add(fiber)
          yield* Fiber.interruptFork(fiber)
        } else if (deadline < next) {
          next = deadline
        }
      }
      earliestSleep = next
      const until = next
      yield* Effect.raceFirst(
        Effect.sleep(Duration.millis(Math.max(1, until - now))),
        wake.wait(() => earliestSleep < until)
      )
    }
  })

  return {
    watch: (fiber, deadline) => {
      deadlines.set(fiber, deadline)
      // wake the watchdog only when this deadline is earlier than the one it sleeps until
      if (deadline < earliestSleep) {
        earliestSleep = deadline
        wake.notify()
      }
    },
    unwatch: (fiber) => {
      deadlines.delete(fiber)
      return timedOut.delete(fiber)
    },
    run
  }
}
