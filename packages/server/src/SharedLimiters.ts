/**
 * Shared rate limiters: named limiters defined once per tenant and used by every batch (and step) of
 * the tenant through `ctx.limit(name)`, in every process on one database.
 *
 * Exact fleet-wide: at most `limit` acquisitions in any window of `interval`, whichever process
 * makes them. A process reserves small blocks of permits in the database (one round trip per block,
 * not per acquisition), uses them within the block's short lease and reports what it used; every
 * permit counts against the limit from its reservation until its use plus the interval, and a dead
 * process's block stops counting when it expires (see `@effect-batch/tables/sql/Limiter`). Process
 * clocks must agree (NTP): the accuracy across machines is their skew.
 *
 * A rate-limit answer (`RateLimited { retryAfter }`) through a shared limiter holds it back in every
 * process until then — stored in the database and announced at once with `NOTIFY`, so other processes
 * start nothing through it within milliseconds, and at the latest at their next reservation — and
 * halves the effective concurrency of each batch that uses it, in every process; successes raise it
 * again. No attempt is consumed.
 *
 * @since 0.4.0
 */
import { Errors, Ids, SharedLimiter } from "@effect-batch/domain"
import { LimiterRepo, type LimiterState, type Settlement } from "@effect-batch/tables/LimiterRepo"
import { Notifier } from "@effect-batch/tables/Notifier"
import { Tables } from "@effect-batch/tables/Tables"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Caller } from "./BatchOrchestrator.js"
import * as PermitBlock from "./internal/PermitBlock.js"
import * as Storage from "./internal/Storage.js"

/**
 * A user of shared limiters: one batch's runner in this process.
 *
 * @since 0.4.0
 */
export interface Subscriber {
  readonly tenant: Ids.TenantId
  /** whether the batch has acquired through the limiter */
  readonly uses: (name: string) => boolean
  /** the limiter was held back after a rate-limit answer (a new hold, not a longer one) */
  readonly throttled: (name: string) => void
  /** how many attempts the batch may execute at once now */
  readonly concurrency: () => number
}

/** How long acquisitions wait before asking again when the database did not answer. */
const retryAfterStorageError = 250

const HoldNotice = Schema.parseJson(Schema.Struct({ tenant: Schema.String, name: Schema.String, until: Schema.Number }))
const encodeNotice = Schema.encodeSync(HoldNotice)
const decodeNotice = Schema.decodeUnknownOption(HoldNotice)

const toView = (state: LimiterState): SharedLimiter.View =>
  new SharedLimiter.View({
    name: state.name,
    limit: state.permits,
    interval: Duration.millis(state.intervalMs),
    permitsInWindow: state.counted,
    available: Math.max(0, state.permits - state.counted),
    heldBackUntil: Option.liftPredicate(state.heldUntilMs, (ms) => ms > 0).pipe(Option.map(DateTime.unsafeMake)),
    throttles: state.throttles,
    lastThrottledAt: Option.map(state.lastThrottledAtMs, DateTime.unsafeMake),
    processes: state.processes,
    effectiveConcurrency: state.effectiveConcurrency
  })

/**
 * The shared limiters of this process.
 *
 * @since 0.4.0
 * @category services
 */
export class SharedLimiters extends Effect.Service<SharedLimiters>()("@effect-batch/SharedLimiters", {
  scoped: Effect.gen(function*() {
    const repo = yield* LimiterRepo
    const notifier = yield* Notifier
    const tables = yield* Tables
    const scope = yield* Effect.scope
    const owner = `${process.pid}-${crypto.randomUUID().slice(0, 8)}`
    const channel = `${tables.prefix}limiters`
    const blocks = new Map<string, PermitBlock.PermitBlock>()
    const subscribers = new Set<Subscriber>()

    const keyOf = (tenant: string, name: string) => `${tenant}\u0000${name}`
    const blockOf = (tenant: Ids.TenantId, name: string): PermitBlock.PermitBlock => {
      const key = keyOf(tenant, name)
      let block = blocks.get(key)
      if (block === undefined) {
        block = PermitBlock.make(tenant, name)
        blocks.set(key, block)
      }
      return block
    }

    /** The summed concurrency of this process's users of the limiter; none when it has none. */
    const concurrencyOf = (state: PermitBlock.PermitBlock): Option.Option<number> => {
      let total = 0
      let users = 0
      for (const s of subscribers) {
        if (s.tenant === state.tenant && s.uses(state.name)) {
          users++
          total += s.concurrency()
        }
      }
      return users === 0 ? Option.none() : Option.some(total)
    }

    /**
     * Applies a hold; a new one (the limiter was not held back) lowers the concurrency of its users
     * but `except`.
     */
    const applyHold = (state: PermitBlock.PermitBlock, untilMs: number, now: number, except?: Subscriber) => {
      if (untilMs <= state.heldUntilMs) return
      const fresh = state.heldUntilMs <= now
      state.heldUntilMs = untilMs
      if (!fresh) return
      for (const s of subscribers) {
        if (s !== except && s.tenant === state.tenant && s.uses(state.name)) s.throttled(state.name)
      }
    }

    /** Reports how a block was used and reserves `want` more (none: the limiter is gone). */
    const take = (
      block: PermitBlock.PermitBlock,
      now: number,
      want: number,
      settle: Option.Option<Settlement>
    ) =>
      repo.take({
        tenant: block.tenant,
        name: block.name,
        owner,
        now,
        want,
        leaseMs: block.leaseMs,
        settle,
        concurrency: concurrencyOf(block)
      })

    /** Gives back what is left of the block held: its unused permits stop counting. */
    const giveBack = (block: PermitBlock.PermitBlock) => {
      const settle = PermitBlock.surrender(block)
      return Option.isNone(settle)
        ? Effect.void
        : Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.asVoid(take(block, now, 0, settle)))
    }

    /** Settles a block when its lease ends, unless it was replaced before. */
    const settleLater = (block: PermitBlock.PermitBlock, grant: string, atMs: number, now: number) =>
      Effect.sleep(Duration.millis(Math.max(0, atMs - now))).pipe(
        Effect.zipRight(Effect.suspend(() =>
          block.grant !== grant
            ? Effect.void
            : block.lock.withPermits(1)(Effect.suspend(() => block.grant === grant ? giveBack(block) : Effect.void))
        )),
        Effect.catchAllCause((cause) => Effect.logDebug("settling a block of permits failed; it expires", cause)),
        Effect.forkIn(scope)
      )

    /** Reserves the next block (settling the last), unless another fiber already did. */
    const refill = (block: PermitBlock.PermitBlock): Effect.Effect<void> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (PermitBlock.usable(block, now) || PermitBlock.waitUntil(block) > now) return
        const taken = yield* take(block, now, PermitBlock.want(block), PermitBlock.surrender(block))
        if (Option.isNone(taken)) return yield* Effect.die(new Errors.LimiterNotFound({ name: block.name }))
        applyHold(block, taken.value.heldUntilMs, now)
        const grant = PermitBlock.granted(block, taken.value, now)
        if (Option.isSome(grant)) yield* settleLater(block, grant.value, taken.value.usableUntilMs, now)
      }).pipe(
        Effect.catchTag("SqlError", (error) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            block.blockedUntilMs = now + retryAfterStorageError
            return Effect.logWarning(`shared limiter ${block.name}: the database failed; retrying`, error)
          }))
      )

    /** Waits for one permit of the tenant's limiter `name`; dies with `LimiterNotFound` if there is none. */
    const acquire = (tenant: Ids.TenantId, name: string): Effect.Effect<void> => {
      const block = blockOf(tenant, name)
      const loop: Effect.Effect<void> = Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        const until = PermitBlock.waitUntil(block)
        if (until > now) return Effect.flatMap(Effect.sleep(Duration.millis(until - now)), () => loop)
        if (PermitBlock.tryTake(block, now)) return Effect.void
        block.waiting++
        return block.lock.withPermits(1)(refill(block)).pipe(
          Effect.ensuring(Effect.sync(() => block.waiting--)),
          Effect.zipRight(loop)
        )
      })
      return loop
    }

    /** Whether the limiter is held back at `now` in this process. */
    const heldBack = (tenant: Ids.TenantId, name: string, now: number): boolean =>
      (blocks.get(keyOf(tenant, name))?.heldUntilMs ?? 0) > now

    /**
     * Holds the limiter back until `untilMs` everywhere: at once here, then in the database and, by
     * notification, in the other processes. `source`, the user that saw the answer, lowers its own
     * concurrency.
     */
    const holdBack = (
      tenant: Ids.TenantId,
      name: string,
      untilMs: number,
      source?: Subscriber
    ): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        applyHold(blockOf(tenant, name), untilMs, now, source)
        return repo.hold(tenant, name, untilMs, now).pipe(
          Effect.zipRight(notifier.notify(channel, encodeNotice({ tenant, name, until: untilMs }))),
          Effect.catchAllCause((cause) =>
            Effect.logWarning(`shared limiter ${name}: recording the hold failed; it holds in this process`, cause)
          ),
          Effect.forkIn(scope),
          Effect.asVoid
        )
      })

    /** Registers a user of shared limiters for as long as the scope lasts. */
    const subscribe = (subscriber: Subscriber) =>
      Effect.acquireRelease(
        Effect.sync(() => subscribers.add(subscriber)),
        () => Effect.sync(() => subscribers.delete(subscriber))
      )

    // holds recorded by other processes (hints: a missed one shows at the next reservation)
    yield* notifier.listen(channel).pipe(
      Stream.runForEach((payload) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.sync(() => {
            const notice = decodeNotice(payload)
            if (Option.isNone(notice)) return
            const block = blocks.get(keyOf(notice.value.tenant, notice.value.name))
            if (block !== undefined) applyHold(block, notice.value.until, now)
          }))
      ),
      Effect.catchAllCause((cause) => Effect.logWarning("listening for shared limiter holds failed", cause)),
      Effect.forkIn(scope)
    )

    // what this process holds goes back when it stops
    yield* Effect.addFinalizer(() =>
      Effect.forEach(blocks.values(), giveBack, { discard: true }).pipe(
        Effect.timeout("2 seconds"),
        Effect.catchAllCause((cause) => Effect.logDebug("giving back permits failed; they expire", cause))
      )
    )

    const decide = Storage.decide("a shared limiter request")

    const views = (caller: Caller, name: Option.Option<string>): Effect.Effect<Array<SharedLimiter.View>, SqlError> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => repo.states(caller.tenant, now, name)).pipe(
        Effect.map((rows) => rows.map(toView))
      )

    const get = (
      caller: Caller,
      name: string
    ): Effect.Effect<SharedLimiter.View, Errors.LimiterNotFound | SqlError> =>
      views(caller, Option.some(name)).pipe(
        Effect.flatMap((rows) =>
          rows[0] === undefined ? Effect.fail(new Errors.LimiterNotFound({ name })) : Effect.succeed(rows[0])
        )
      )

    /** Creates or redefines one of the caller's limiters. */
    const define = (
      caller: Caller,
      definition: SharedLimiter.Definition
    ): Effect.Effect<SharedLimiter.View, Errors.LimitExceeded | SqlError> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const defined = yield* repo.define(
          caller.tenant,
          {
            name: definition.name,
            permits: definition.limit,
            intervalMs: Duration.toMillis(definition.interval)
          },
          now,
          SharedLimiter.maxPerTenant
        )
        if (!defined) {
          return yield* new Errors.LimitExceeded({
            limit: "shared limiters per tenant",
            max: SharedLimiter.maxPerTenant
          })
        }
        return yield* Effect.orDie(get(caller, definition.name))
      })

    return {
      /** A user of limiters in this process. */
      owner,
      acquire,
      heldBack,
      holdBack,
      subscribe,
      define: (caller: Caller, definition: SharedLimiter.Definition) => decide(define(caller, definition)),
      get: (caller: Caller, name: string) => decide(get(caller, name)),
      list: (caller: Caller) => decide(views(caller, Option.none())),
      remove: (caller: Caller, name: string): Effect.Effect<void, Errors.LimiterNotFound | Errors.StorageUnavailable> =>
        Effect.flatMap(
          repo.remove(caller.tenant, name),
          (removed) => removed ? Effect.void : Effect.fail(new Errors.LimiterNotFound({ name }))
        ).pipe(decide)
    } as const
  })
}) {}

/**
 * Defines shared limiters at start (creating or redefining them), e.g. from configuration:
 * `{ "acme": { "anthropic": { "limit": 10, "interval": "1 minute" } } }`.
 *
 * @since 0.4.0
 */
export const layerDefinitions = (
  definitions: typeof SharedLimiter.Definitions.Type
): Layer.Layer<never, Errors.InvalidRequest | Errors.LimitExceeded | Errors.StorageUnavailable, SharedLimiters> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const limiters = yield* SharedLimiters
    for (const [key, byName] of Object.entries(definitions)) {
      const tenant = yield* Schema.decodeUnknown(Ids.TenantId)(key).pipe(
        Effect.mapError((error) => new Errors.InvalidRequest({ message: `shared limiters: ${error.message}` }))
      )
      for (const [name, limit] of Object.entries(byName)) {
        yield* limiters.define(
          { tenant, actor: "configuration" },
          new SharedLimiter.Definition({ name, limit: limit.limit, interval: limit.interval })
        )
      }
    }
  }))
