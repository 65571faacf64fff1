/**
 * Live campaign events across processes: a committed change is announced as a hint ("campaign X
 * has events up to sequence N") on a local `PubSub` and with `pg_notify`; readers read the rows of
 * the campaign's event log and poll as well, so a lost hint only delays them.
 *
 * @since 0.4.0
 */
import { CampaignEvent, CampaignId, CampaignState, type Errors } from "@effect-batch/domain"
import { CampaignRepo } from "@effect-batch/tables/CampaignRepo"
import { Notifier } from "@effect-batch/tables/Notifier"
import type { SqlError } from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Storage from "./internal/Storage.js"

/**
 * The notification channel of campaign hints.
 *
 * @since 0.4.0
 */
export const channel = "effect_batch_campaign_events"

const decodeId = Schema.decodeUnknownOption(CampaignId.CampaignId)

const parseHint = (payload: string): Option.Option<CampaignId.CampaignId> => decodeId(payload.split(":")[0])

/**
 * Live campaign events.
 *
 * @since 0.4.0
 */
export class CampaignEvents extends Effect.Service<CampaignEvents>()("@effect-batch/CampaignEvents", {
  scoped: Effect.gen(function*() {
    const repo = yield* CampaignRepo
    const notifier = yield* Notifier
    const hints = yield* PubSub.sliding<CampaignId.CampaignId>(4_096)
    const pollInterval = Duration.seconds(1)

    yield* notifier.listen(channel).pipe(
      Stream.filterMap(parseHint),
      Stream.runForEach((id) => PubSub.publish(hints, id)),
      Effect.tapErrorCause((cause) => Effect.logWarning("campaign notifications lost; polling meanwhile", cause)),
      Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("10 seconds")))),
      Effect.forkScoped
    )

    /** Announces that a campaign committed events up to `seq`, here and to the other processes. */
    const committed = (id: CampaignId.CampaignId, seq: number): Effect.Effect<void> =>
      PubSub.publish(hints, id).pipe(
        Effect.zipRight(notifier.notify(channel, `${id}:${seq}`)),
        Effect.catchAll((error) => Effect.logWarning("could not notify other processes; they will poll", error))
      )

    /** Every hint, of any campaign (what the runner wakes on). */
    const allHints = Stream.fromPubSub(hints)

    /**
     * The campaign's events after `after`: what the log holds, then the new ones as they commit, with
     * no gap and no duplicate. Ends after a terminal event at or beyond the sequence the campaign had
     * when the stream started, or, once caught up, when the campaign is found in a terminal state.
     */
    const events = (
      id: CampaignId.CampaignId,
      after: number
    ): Stream.Stream<CampaignEvent.CampaignEvent, Errors.StorageUnavailable> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const wake = yield* PubSub.subscribe(hints)
        const start = yield* repo.getAnyTenant(id)
        const current = Option.match(start, { onNone: () => 0, onSome: (c) => c.seq })
        const waitForNews = Effect.raceFirst(
          Queue.take(wake).pipe(Effect.repeat({ until: (hint) => hint === id }), Effect.zipLeft(Queue.takeAll(wake))),
          Effect.sleep(pollInterval)
        )
        const isStopped = Effect.map(
          repo.getAnyTenant(id),
          Option.match({ onNone: () => true, onSome: (c) => CampaignState.isTerminal(c.state) })
        )
        type Page = readonly [Chunk.Chunk<CampaignEvent.CampaignEvent>, Option.Option<number>]
        const next = (cursor: number): Effect.Effect<Page, SqlError> =>
          Effect.gen(function*() {
            const page = yield* repo.readAfter(id, cursor, 1_000)
            const last = page[page.length - 1]
            if (last !== undefined) return [Chunk.unsafeFromArray(page), Option.some(last.seq)] as const
            if (cursor >= current && (yield* isStopped)) return [Chunk.empty(), Option.none()] as const
            yield* waitForNews
            return [Chunk.empty(), Option.some(cursor)] as const
          })
        return Stream.paginateChunkEffect(after, next).pipe(
          Stream.takeUntil((event) => CampaignEvent.isTerminal(event) && event.seq >= current)
        )
      })).pipe(Storage.decideStream("following a campaign's events"))

    return { committed, events, allHints } as const
  }),
  dependencies: [CampaignRepo.Default]
}) {}
