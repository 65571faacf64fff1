/**
 * The handlers of the campaign RPCs (`CampaignRpcs`), served on `POST /rpc` beside the batch RPCs,
 * calling the campaign orchestrator as the request's tenant.
 *
 * @since 0.4.0
 */
import { CampaignRpcs, Rpcs } from "@effect-batch/domain"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { Caller } from "../BatchOrchestrator.js"
import { CampaignOrchestrator } from "../CampaignOrchestrator.js"
import * as Storage from "../internal/Storage.js"
import { follow } from "./CampaignSse.js"
import { checkAfter } from "./Events.js"
import { OpenStreams } from "./OpenStreams.js"

const caller = Effect.map(Rpcs.CurrentTenant, (principal): Caller => ({
  tenant: principal.tenant,
  actor: principal.actor
}))

/**
 * The handlers of every campaign RPC.
 *
 * @since 0.4.0
 */
export const layerHandlers = CampaignRpcs.CampaignRpcs.toLayer(Effect.gen(function*() {
  const campaigns = yield* CampaignOrchestrator
  const streams = yield* OpenStreams
  const as = <A, E, R>(f: (caller: Caller) => Effect.Effect<A, E, R>) =>
    Storage.decide("campaign RPC")(Effect.flatMap(caller, f))

  return CampaignRpcs.CampaignRpcs.of({
    CreateCampaign: (payload) =>
      as((c) =>
        campaigns.submitEncoded(payload.workflow, payload.items, payload.config, {
          ...c,
          idempotencyKey: payload.idempotencyKey
        })
      ),
    GetCampaign: ({ campaignId }) => as((c) => campaigns.get(c, campaignId)),
    ListCampaigns: (payload) => as((c) => campaigns.list(c, payload)),
    ListCampaignBatches: ({ after, campaignId, limit }) =>
      as((c) => campaigns.batches(c, campaignId, { after, limit })),
    GetCampaignProgress: ({ campaignId }) => as((c) => campaigns.progress(c, campaignId)),
    GetCampaignResults: ({ campaignId, state }) =>
      Stream.unwrap(Effect.map(caller, (c) => campaigns.results(c, campaignId, { state }))).pipe(
        Storage.decideStream("campaign RPC")
      ),
    StreamCampaignEvents: ({ after, campaignId }) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const c = yield* caller
        const campaign = yield* campaigns.get(c, campaignId)
        yield* checkAfter(campaign, after, "campaign")
        yield* streams.acquire(c.tenant, "rpc")
        return follow(campaigns, c, campaign, after)
      })).pipe(Storage.decideStream("campaign RPC")),
    PauseCampaign: ({ campaignId, cascade, note }) => as((c) => campaigns.pause(c, campaignId, { note, cascade })),
    ResumeCampaign: ({ campaignId }) => as((c) => campaigns.resume(c, campaignId)),
    CancelCampaign: ({ campaignId, note }) => as((c) => campaigns.cancel(c, campaignId, note)),
    ApproveCampaign: ({ campaignId, note }) => as((c) => campaigns.approve(c, campaignId, note)),
    RejectCampaign: ({ campaignId, note }) => as((c) => campaigns.reject(c, campaignId, note)),
    RetryFailedCampaign: ({ campaignId, dryRun }) => as((c) => campaigns.retryFailed(c, campaignId, { dryRun })),
    ReleaseCampaignQuarantined: ({ campaignId }) => as((c) => campaigns.releaseQuarantined(c, campaignId)),
    UpdateCampaignConfig: ({ campaignId, patch }) => as((c) => campaigns.updateConfig(c, campaignId, patch))
  })
}))
