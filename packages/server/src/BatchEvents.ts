/**
 * Live batch events for any number of subscribers, across processes.
 *
 * Committed events are announced as hints ("batch X has events up to sequence N") on a local
 * `PubSub` and, for other processes, with `pg_notify`. One tailer per followed batch and process
 * reads the new rows from the event log and fans them out on a sliding `PubSub`, so a slow subscriber
 * never slows the orchestrator or the other subscribers: when it falls behind, it refills the gap from
 * the event log. Notifications are hints only; tailers also poll.
 *
 * @since 0.1.0
 */
import { BatchEvent, type Errors } from "@effect-batch/domain"
import type { Ids } from "@effect-batch/domain"
import { BatchId } from "@effect-batch/domain/Ids"
import { EventLog } from "@effect-batch/tables/EventLog"
import { Notifier } from "@effect-batch/tables/Notifier"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as RcMap from "effect/RcMap"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fanout from "./internal/Fanout.js"
import * as Storage from "./internal/Storage.js"

/**
 * The notification channel shared by every process.
 *
 * @since 0.1.0
 */
export const channel = "effect_batch_events"

/**
 * The notification channel that carries "a command changed batch X".
 *
 * @since 0.2.0
 */
export const commandChannel = "effect_batch_commands"

interface Hint {
  readonly batchId: string
  readonly seq: number
}

const parseHint = (payload: string): Option.Option<Hint> => {
  const i = payload.lastIndexOf(":")
  const seq = Number(payload.slice(i + 1))
  return i > 0 && Number.isSafeInteger(seq) ? Option.some({ batchId: payload.slice(0, i), seq }) : Option.none()
}

/**
 * Tuning of the event fan-out.
 *
 * @since 0.1.0
 */
export interface Options {
  /** how often a tailer reads the log when no hint arrives */
  readonly pollInterval: Duration.DurationInput
  /** events buffered per subscriber before it has to refill from the log */
  readonly subscriberBuffer: number
}

/**
 * Live batch events.
 *
 * @since 0.1.0
 */
export class BatchEvents extends Effect.Service<BatchEvents>()("@effect-batch/BatchEvents", {
  scoped: Effect.gen(function*() {
    const log = yield* EventLog
    const notifier = yield* Notifier
    const options: Options = { pollInterval: "1 second", subscriberBuffer: 1_024 }
    const hints = yield* PubSub.sliding<Hint>(4_096)

    yield* notifier.listen(channel).pipe(
      Stream.filterMap(parseHint),
      Stream.runForEach((hint) => PubSub.publish(hints, hint)),
      Effect.tapErrorCause((cause) => Effect.logWarning("event notifications lost; polling meanwhile", cause)),
      Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("10 seconds")))),
      Effect.forkScoped
    )

    const tailers = yield* RcMap.make({
      idleTimeToLive: "5 seconds",
      lookup: (batchId: Ids.BatchId) =>
        Effect.gen(function*() {
          const out = yield* PubSub.sliding<BatchEvent.BatchEvent>(options.subscriberBuffer)
          const start = Option.getOrElse(yield* log.lastSeq(batchId), () => 0)
          const last = yield* Ref.make(start)
          const wake = yield* PubSub.subscribe(hints)
          const readNew = Ref.get(last).pipe(
            Effect.flatMap((after) =>
              log.stream(batchId, after).pipe(
                Stream.runForEach((event) => Ref.set(last, event.seq).pipe(Effect.zipRight(PubSub.publish(out, event))))
              )
            )
          )
          const waitForNews = Effect.raceFirst(
            Queue.take(wake).pipe(
              Effect.repeat({ until: (hint) => hint.batchId === batchId }),
              Effect.zipLeft(Queue.takeAll(wake))
            ),
            Effect.sleep(options.pollInterval)
          )
          yield* readNew.pipe(
            Effect.zipRight(waitForNews),
            Effect.forever,
            Effect.tapErrorCause((cause) => Effect.logWarning("event tailer failed; restarting", cause)),
            Effect.retry(Schedule.spaced("1 second")),
            Effect.forkScoped
          )
          return { out, start }
        })
    })

    const hubs = yield* RcMap.make({
      idleTimeToLive: "5 seconds",
      lookup: (batchId: Ids.BatchId) =>
        Effect.gen(function*() {
          const tailer = yield* RcMap.get(tailers, batchId)
          const live = yield* PubSub.subscribe(tailer.out)
          return yield* Fanout.make({ live, readAfter: (after, limit) => log.readAfter(batchId, after, limit) })
        })
    })

    /**
     * Delivers the events of a batch after `after` to `sink` (the replay from the log, then live, with
     * no gap and no duplicate, through the batch's one fan-out in this process) until the batch's latest
     * terminal event, or the event at `endAt` when given, then ends the sink; or until the scope closes.
     */
    const subscribe = (
      batchId: Ids.BatchId,
      after: number,
      sink: Fanout.Sink<BatchEvent.BatchEvent>,
      endAt?: number
    ): Effect.Effect<void, Errors.StorageUnavailable, Scope.Scope> =>
      Effect.gen(function*() {
        const hub = yield* RcMap.get(hubs, batchId)
        const current = endAt ?? Option.getOrElse(yield* log.lastSeq(batchId), () => 0)
        const isLast = endAt === undefined
          ? (event: BatchEvent.BatchEvent) => BatchEvent.isTerminal(event) && event.seq >= current
          : (event: BatchEvent.BatchEvent) => event.seq >= current
        yield* hub.join(after, isLast, sink)
      }).pipe(Storage.decide("following a batch's events"))

    /** Announces that a batch has committed events up to `seq` to this process's followers. */
    const committedHere = (batchId: Ids.BatchId, seq: number): Effect.Effect<void> =>
      Effect.asVoid(PubSub.publish(hints, { batchId, seq }))

    /** Announces that a batch has committed events up to `seq` to the other processes (`pg_notify`). */
    const committedElsewhere = (batchId: Ids.BatchId, seq: number): Effect.Effect<void> =>
      notifier.notify(channel, `${batchId}:${seq}`).pipe(
        Effect.catchAll((error) => Effect.logWarning("could not notify other processes; they will poll", error))
      )

    /** Announces that a batch has committed events up to `seq` (to this process and the others). */
    const committed = (batchId: Ids.BatchId, seq: number): Effect.Effect<void> =>
      Effect.zipRight(committedHere(batchId, seq), committedElsewhere(batchId, seq))

    /**
     * Subscribes to the hints of one batch (for the life of the scope) and gives an effect that waits
     * for the next one, or at most `poll`: cheaper than `events` for a caller that only needs to know
     * when to look at the batch again (no event is read or decoded).
     */
    const changes = (batchId: Ids.BatchId, poll: Duration.DurationInput = options.pollInterval) =>
      Effect.gen(function*() {
        const queue = yield* PubSub.subscribe(hints)
        // a hint arrives twice in the process that sent it (published here, and back through LISTEN)
        const seen = yield* Ref.make(-1)
        const isNew = (hint: Hint) =>
          Ref.modify(seen, (last) => hint.batchId === batchId && hint.seq > last ? [true, hint.seq] : [false, last])
        return Effect.raceFirst(
          Queue.take(queue).pipe(Effect.flatMap(isNew), Effect.repeat({ until: (fresh) => fresh }), Effect.asVoid),
          Effect.sleep(poll)
        )
      })

    /**
     * The events of a batch after sequence `after`: the replay from the log, then live, with no gap
     * and no duplicate. Ends after the batch's latest terminal event.
     */
    const events = (
      batchId: Ids.BatchId,
      after: number
    ): Stream.Stream<BatchEvent.BatchEvent, Errors.StorageUnavailable> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const tailer = yield* RcMap.get(tailers, batchId)
        const live = yield* PubSub.subscribe(tailer.out)
        const current = Option.getOrElse(yield* log.lastSeq(batchId), () => 0)
        const last = yield* Ref.make(after)
        const deliver = (event: BatchEvent.BatchEvent) => Ref.set(last, event.seq).pipe(Effect.as(event))
        const fill = (upTo: number) =>
          Stream.unwrap(Effect.map(Ref.get(last), (from) =>
            log.stream(batchId, from).pipe(
              Stream.takeWhile((e) => e.seq <= upTo),
              Stream.mapEffect(deliver)
            )))
        const replay = fill(Math.max(current, after))
        // Live events are checked a chunk at a time (a nested stream per event costs several times the
        // delivery itself with many subscribers); a gap is refilled from the log in order.
        const liveEvents = Stream.fromQueue(live).pipe(
          Stream.mapChunksEffect((chunk) =>
            Effect.gen(function*() {
              let seen = yield* Ref.get(last)
              const out: Array<BatchEvent.BatchEvent> = []
              for (const event of chunk) {
                if (event.seq <= seen) continue
                while (event.seq > seen + 1) {
                  const missing = yield* log.readAfter(batchId, seen, Math.min(1_000, event.seq - seen))
                  if (missing.length === 0) break
                  for (const e of missing) {
                    if (e.seq <= event.seq) {
                      out.push(e)
                      seen = e.seq
                    }
                  }
                }
                if (event.seq > seen) {
                  out.push(event)
                  seen = event.seq
                }
              }
              yield* Ref.set(last, seen)
              return Chunk.unsafeFromArray(out)
            })
          )
        )
        return Stream.concat(replay, liveEvents).pipe(
          Stream.takeUntil((event) => BatchEvent.isTerminal(event) && event.seq >= current)
        )
      })).pipe(Storage.decideStream("following a batch's events"))

    /**
     * Tells every process that a command changed a batch (its runners stop starting attempts until they
     * have read the batch again); `commands` is that stream, in every process.
     */
    const commanded = (batchId: Ids.BatchId): Effect.Effect<void> =>
      notifier.notify(commandChannel, batchId).pipe(
        Effect.catchAll((error) => Effect.logWarning("could not notify other processes of a command", error))
      )

    const commands: Stream.Stream<Ids.BatchId> = notifier.listen(commandChannel).pipe(
      Stream.filterMap((payload) => Schema.decodeUnknownOption(BatchId)(payload)),
      Stream.tapErrorCause((cause) => Effect.logWarning("command notifications lost; polling meanwhile", cause)),
      Stream.retry(Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("10 seconds")))),
      Stream.catchAllCause(() => Stream.empty)
    )

    return { committed, committedHere, committedElsewhere, changes, events, subscribe, commanded, commands } as const
  }),
  dependencies: [EventLog.Default]
}) {}
