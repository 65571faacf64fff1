/**
 * What one process knows of one shared limiter: the block of permits it holds, the hold after a
 * rate-limit answer, and how much to reserve next. Touched only synchronously; the round trips that
 * feed it are `SharedLimiters`'.
 */
import type { Ids } from "@effect-batch/domain"
import type { Settlement, Taken } from "@effect-batch/tables/LimiterRepo"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

export interface PermitBlock {
  readonly tenant: Ids.TenantId
  readonly name: string
  /** the block of permits this process holds, if any */
  grant: string | undefined
  remaining: number
  used: number
  lastUseMs: number
  usableUntilMs: number
  /** no acquisition through the limiter before this time (a rate-limit answer) */
  heldUntilMs: number
  /** nothing is free before this time: waiters sleep instead of asking again */
  blockedUntilMs: number
  /** fibers waiting for a permit */
  waiting: number
  /** how many to reserve next: doubled while blocks are used up, down to what was used otherwise */
  nextBlock: number
  leaseMs: number
  maxBlock: number
  /** one reservation at a time */
  readonly lock: Effect.Semaphore
}

/**
 * How long a reserved block may be used, for an interval: short enough that unused permits go back
 * soon, long enough that a busy process asks rarely.
 */
const leaseFor = (intervalMs: number) => Math.min(1_000, Math.max(10, Math.floor(intervalMs / 4)))

/**
 * The most permits one reservation takes, for a limit: a sixteenth of the limit, so that several
 * processes share a small limit, within 1 and 256.
 */
const blockFor = (limit: number) => Math.min(256, Math.max(1, Math.ceil(limit / 16)))

export const make = (tenant: Ids.TenantId, name: string): PermitBlock => ({
  tenant,
  name,
  grant: undefined,
  remaining: 0,
  used: 0,
  lastUseMs: 0,
  usableUntilMs: 0,
  heldUntilMs: 0,
  blockedUntilMs: 0,
  waiting: 0,
  nextBlock: 1,
  leaseMs: 10,
  maxBlock: 1,
  lock: Effect.unsafeMakeSemaphore(1)
})

/** Until when acquisitions must wait without asking the database (held back, or nothing free). */
export const waitUntil = (block: PermitBlock) => Math.max(block.heldUntilMs, block.blockedUntilMs)

/** Whether a permit could be taken at `now` without a round trip. */
export const usable = (block: PermitBlock, now: number) =>
  block.grant !== undefined && block.remaining > 0 && now <= block.usableUntilMs

/** Takes a permit of the block held, if one is left within its lease. */
export const tryTake = (block: PermitBlock, now: number): boolean => {
  if (!usable(block, now)) return false
  block.remaining--
  block.used++
  block.lastUseMs = now
  return true
}

/** How many permits the next reservation asks for. */
export const want = (block: PermitBlock) => Math.min(block.maxBlock, Math.max(1, block.waiting, block.nextBlock))

/** Gives up the block held, returning how it was used. */
export const surrender = (block: PermitBlock): Option.Option<Settlement> => {
  const grant = block.grant
  if (grant === undefined) return Option.none()
  // a block used up asks for twice as much next time; one left unused, for what it used
  block.nextBlock = block.remaining === 0 ? block.used * 2 : block.used
  const settlement = { grant, used: block.used, lastUseMs: block.lastUseMs }
  block.grant = undefined
  block.remaining = 0
  block.used = 0
  return Option.some(settlement)
}

/**
 * Records a reservation's answer (the hold aside, which the caller applies): the new block, or, when
 * nothing was granted, until when to wait before asking again. Returns the new block's id.
 */
export const granted = (block: PermitBlock, taken: Taken, now: number): Option.Option<string> => {
  block.leaseMs = leaseFor(taken.intervalMs)
  block.maxBlock = blockFor(taken.permits)
  if (Option.isSome(taken.grant) && taken.granted > 0) {
    block.grant = taken.grant.value
    block.remaining = taken.granted
    block.usableUntilMs = taken.usableUntilMs
    return taken.grant
  }
  // nothing free: ask again when a counted permit expires, or when another process may have given
  // back what it did not use
  block.blockedUntilMs = Math.max(
    now + 1,
    Math.min(Option.getOrElse(taken.nextFreeMs, () => now + block.leaseMs), now + block.leaseMs)
  )
  return Option.none()
}
