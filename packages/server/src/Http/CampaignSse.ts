/**
 * `GET /campaigns/:id/events`: a campaign's events as a `text/event-stream`, with the guarantees of
 * the batch stream (`id:` the campaign's sequence, `event:` the tag, `data:` the JSON event; exact
 * resume with `Last-Event-ID` or `?after=N`; a heartbeat; the end after the terminal event).
 *
 * Answers: 200 (the stream), 204 (a terminal campaign with nothing after `Last-Event-ID`), 400, 401,
 * 404 (unknown or another tenant's campaign), 429 (too many open streams), 503.
 *
 * @since 0.4.0
 */
import type { CampaignViews, Ids } from "@effect-batch/domain"
import { CampaignErrors, CampaignEvent, CampaignId, CampaignState } from "@effect-batch/domain"
import type * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Caller } from "../BatchOrchestrator.js"
import { CampaignOrchestrator } from "../CampaignOrchestrator.js"
import type { HttpAuth } from "./Auth.js"
import type { OpenStreams } from "./OpenStreams.js"
import { frames, route } from "./Sse.js"

/**
 * The route of a campaign's event stream.
 *
 * @since 0.4.0
 */
export const path = "/campaigns/:id/events"

const decodeId = Schema.decodeUnknown(CampaignId.CampaignId)
const toFrame = frames(CampaignEvent.CampaignEvent)

/**
 * The events of a campaign after `after`, ending at its last one when it is terminal (what is left
 * of its log), or after its terminal event otherwise.
 *
 * @since 0.4.0
 */
export const follow = (
  campaigns: CampaignOrchestrator["Type"],
  caller: { readonly tenant: Ids.TenantId; readonly actor?: string | undefined },
  campaign: {
    readonly id: CampaignId.CampaignId
    readonly state: CampaignState.CampaignState
    readonly lastSeq: number
  },
  after: number
) => {
  const events = campaigns.events(caller, campaign.id, after)
  return CampaignState.isTerminal(campaign.state)
    ? events.pipe(Stream.takeUntil((event) => event.seq >= campaign.lastSeq))
    : events
}

const encodeNotFound = Schema.encodeSync(CampaignErrors.CampaignNotFound)

/** 404 with the typed error as JSON, as the other routes answer theirs. */
const notFound = (error: CampaignErrors.CampaignNotFound) =>
  Effect.succeed(HttpServerResponse.unsafeJson({ ...encodeNotFound(error), message: error.message }, {
    status: 404,
    headers: { "cache-control": "no-store" }
  }))

/**
 * The campaign event-stream route.
 *
 * @since 0.4.0
 */
export const layer: Layer.Layer<
  never,
  never,
  HttpLayerRouter.HttpRouter | HttpAuth | CampaignOrchestrator | OpenStreams
> = route(
  path,
  Effect.map(CampaignOrchestrator, (campaigns) => ({
    what: "campaign" as const,
    decodeId: decodeId,
    get: campaigns.get,
    ended: (campaign: CampaignViews.CampaignView) => CampaignState.isTerminal(campaign.state),
    follow: (caller: Caller, campaign: CampaignViews.CampaignView, after: number) =>
      follow(campaigns, caller, campaign, after),
    frame: toFrame,
    notFound
  }))
)
