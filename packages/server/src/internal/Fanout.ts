/**
 * One fan-out per followed stream of sequence-numbered events (a batch's, in one process): the live
 * events, read once by the stream's tailer, are handed to every live subscriber in one synchronous
 * pass, as the same array when the subscriber is up to date. A live subscriber costs a record in a
 * set: no stream, queue or fiber step per event.
 *
 * A subscriber first replays what it missed from the log, then joins live with no gap and no duplicate:
 * while it reads the log, live events wait in its pending list, and it turns live in one synchronous
 * step once the log and the pending list meet. A live subscriber that sees a gap (the tailer's buffer
 * slid past the hub) goes back to reading the log the same way.
 */
import * as Effect from "effect/Effect"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

/**
 * Where a subscriber's events go: in order, gapless, each once.
 */
export interface Sink<A> {
  readonly deliver: (events: ReadonlyArray<A>) => void
  /** after the last event the subscriber wanted */
  readonly end: () => void
  /** waits until the subscriber can take more replayed events (a replay reads a page at a time) */
  readonly ready?: Effect.Effect<void> | undefined
  /** registers what ends the subscription early (the subscriber went away): `join` then returns */
  readonly onGone?: ((leave: () => void) => void) | undefined
}

/**
 * The fan-out of one followed stream.
 */
export interface Hub<A, E> {
  /**
   * Delivers the events after `after` to `sink` until `isLast` holds for a delivered event (then ends
   * the sink) or the scope closes. Fails only when reading the log fails.
   */
  readonly join: (after: number, isLast: (event: A) => boolean, sink: Sink<A>) => Effect.Effect<void, E, Scope.Scope>
}

interface Member<A> {
  last: number
  /** live events that arrived while the member reads the log; undefined once it is live */
  pending: Array<A> | undefined
  done: boolean
  readonly isLast: (event: A) => boolean
  readonly sink: Sink<A>
  wake: () => void
}

/** Pending events a member keeps while it reads the log; past this it reads them from the log too. */
const maxPending = 4_096
const pageSize = 1_000

/**
 * Hands `events` (ascending) to `member` from the first one it lacks; at a gap the member goes back to
 * the log (its fiber is woken), after the last wanted event it ends.
 */
const feed = <A extends { readonly seq: number }>(member: Member<A>, events: ReadonlyArray<A>): void => {
  let from = 0
  while (from < events.length && events[from]!.seq <= member.last) from++
  if (from === events.length) return
  let to = from
  let gap = false
  for (; to < events.length; to++) {
    const event = events[to]!
    if (event.seq !== member.last + 1 + (to - from)) {
      gap = true
      break
    }
    if (member.isLast(event)) {
      to++
      member.done = true
      break
    }
  }
  if (to > from) {
    member.sink.deliver(from === 0 && to === events.length ? events : events.slice(from, to))
    member.last = events[to - 1]!.seq
  }
  if (member.done) {
    member.sink.end()
    member.wake()
  } else if (gap) {
    member.pending = events.slice(to)
    member.wake()
  }
}

/**
 * A hub over `live` (the tailer's events in order, as subscribed for the hub's life) and the log.
 */
export const make = <A extends { readonly seq: number }, E>(options: {
  readonly live: Queue.Dequeue<A>
  readonly readAfter: (after: number, limit: number) => Effect.Effect<ReadonlyArray<A>, E>
}): Effect.Effect<Hub<A, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const members = new Set<Member<A>>()

    // a waiting taker is woken with one event: what arrived with it is taken in the same pass
    const take = Effect.flatMap(
      options.live.take,
      (first) => Effect.map(options.live.takeUpTo(pageSize - 1), (rest) => [first, ...rest])
    )
    yield* take.pipe(
      Effect.map((events) => {
        for (const member of members) {
          if (member.done) continue
          if (member.pending === undefined) feed(member, events)
          else if (member.pending.length + events.length <= maxPending) member.pending.push(...events)
          else member.pending.length = 0
        }
      }),
      Effect.forever,
      Effect.forkScoped
    )

    /** Reads the log until it meets the pending events, then turns live in the same synchronous step. */
    const catchUp = (member: Member<A>) =>
      Effect.gen(function*() {
        while (!member.done) {
          if (member.sink.ready !== undefined) yield* member.sink.ready
          if (member.done) return
          const page = yield* options.readAfter(member.last, pageSize)
          if (page.length > 0) {
            // fed as a live member would be (the log has no gap), the pending list set aside meanwhile
            const pending = member.pending
            member.pending = undefined
            feed(member, page)
            member.pending = pending ?? []
          }
          if (member.done || page.length === pageSize) continue
          const pending = member.pending ?? []
          const next = pending.findIndex((event) => event.seq > member.last)
          if (next < 0 || pending[next]!.seq === member.last + 1) {
            member.pending = undefined
            if (next >= 0) feed(member, pending.slice(next))
            return
          }
        }
      })

    const join = (after: number, isLast: (event: A) => boolean, sink: Sink<A>) =>
      Effect.gen(function*() {
        const woken = yield* Effect.makeLatch(false)
        const member: Member<A> = { last: after, pending: [], done: false, isLast, sink, wake: () => {} }
        member.wake = () => woken.unsafeOpen()
        sink.onGone?.(() => {
          member.done = true
          member.wake()
        })
        members.add(member)
        yield* Effect.addFinalizer(() => Effect.sync(() => members.delete(member)))
        while (!member.done) {
          yield* catchUp(member)
          if (member.done) break
          yield* woken.await
          yield* woken.close
        }
      })

    return { join }
  })
