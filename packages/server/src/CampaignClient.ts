/**
 * A typed client of the campaign RPCs (`CampaignRpcs`) over the server's `POST /rpc`, beside
 * `BatchClient`. Every method decodes its input first (a bad one fails with `InvalidRequest` and
 * sends nothing) and may fail like a `BatchClient` method (`ClientError`).
 *
 * @since 0.4.0
 */
import { CampaignRpcs } from "@effect-batch/domain"
import type { CampaignConfig, CampaignErrors, CampaignEvent, CampaignViews, Errors } from "@effect-batch/domain"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Stream from "effect/Stream"
import { call, callStream, type ClientError, decoder, makeProtocol, type Options, type Page } from "./BatchClient.js"

/** @since 0.4.0 */
export type CommandError =
  | CampaignErrors.CampaignNotFound
  | Errors.InvalidTransition
  | Errors.VersionConflict
  | ClientError

/** @since 0.4.0 */
export type Rpc = RpcClient.RpcClient<RpcGroup.Rpcs<typeof CampaignRpcs.CampaignRpcs>, RpcClientError>

/**
 * The campaign client.
 *
 * @since 0.4.0
 */
export class CampaignClient extends Context.Tag("@effect-batch/CampaignClient")<CampaignClient, {
  readonly create: (
    input: typeof CampaignRpcs.CreateCampaignPayload.Encoded
  ) => Effect.Effect<
    CampaignViews.CampaignView,
    | Errors.InvalidItems
    | Errors.EmptyBatch
    | CampaignErrors.InvalidCampaignConfig
    | Errors.WorkflowNotFound
    | ClientError
  >
  readonly get: (id: string) => Effect.Effect<CampaignViews.CampaignView, CampaignErrors.CampaignNotFound | ClientError>
  readonly list: (
    input?: typeof CampaignRpcs.ListCampaignsPayload.Encoded
  ) => Effect.Effect<Page<CampaignViews.CampaignView>, ClientError>
  readonly batches: (
    id: string,
    options?: { readonly after?: number; readonly limit?: number }
  ) => Effect.Effect<Page<CampaignViews.CampaignBatch>, CampaignErrors.CampaignNotFound | ClientError>
  readonly progress: (
    id: string
  ) => Effect.Effect<CampaignViews.CampaignProgress, CampaignErrors.CampaignNotFound | ClientError>
  /** Every outcome in (batch index, key) order, or those in one item state. */
  readonly results: (
    id: string,
    state?: string
  ) => Stream.Stream<CampaignViews.CampaignResult, CampaignErrors.CampaignNotFound | ClientError>
  /** The events after `after`, until the terminal event. */
  readonly events: (
    id: string,
    after?: number
  ) => Stream.Stream<CampaignEvent.CampaignEvent, CampaignErrors.CampaignNotFound | ClientError>
  readonly pause: (
    id: string,
    options?: { readonly note?: string; readonly cascade?: boolean }
  ) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  readonly resume: (id: string) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  readonly cancel: (id: string, note?: string) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  readonly approve: (id: string, note?: string) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  readonly reject: (id: string, note?: string) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  readonly retryFailed: (
    id: string,
    options?: { readonly dryRun?: boolean }
  ) => Effect.Effect<CampaignViews.CampaignRetryPlan, CommandError>
  readonly releaseQuarantined: (id: string) => Effect.Effect<{ readonly released: number }, CommandError>
  readonly updateConfig: (
    id: string,
    patch: typeof CampaignConfig.CampaignPatch.Encoded
  ) => Effect.Effect<CampaignViews.CampaignView, CommandError>
  /** The underlying RPC client. */
  readonly rpc: Rpc
}>() {}

const decodeCreate = decoder(CampaignRpcs.CreateCampaignPayload)
const decodeRef = decoder(CampaignRpcs.CampaignRef)
const decodeList = decoder(CampaignRpcs.ListCampaignsPayload)
const decodeBatches = decoder(CampaignRpcs.ListCampaignBatchesPayload)
const decodeResults = decoder(CampaignRpcs.CampaignResultsPayload)
const decodeEvents = decoder(CampaignRpcs.StreamCampaignEventsPayload)
const decodeCommand = decoder(CampaignRpcs.CampaignCommandPayload)
const decodePause = decoder(CampaignRpcs.PauseCampaignPayload)
const decodeRetry = decoder(CampaignRpcs.RetryFailedCampaignPayload)
const decodeUpdate = decoder(CampaignRpcs.UpdateCampaignConfigPayload)

const withNote = (campaignId: string, note: string | undefined) =>
  note === undefined ? { campaignId } : { campaignId, note }

/**
 * Builds the client over an `HttpClient`.
 *
 * @since 0.4.0
 */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const { protocol } = yield* makeProtocol(options)
    const rpc: Rpc = yield* RpcClient.make(CampaignRpcs.CampaignRpcs).pipe(
      Effect.provideService(RpcClient.Protocol, protocol)
    )
    return CampaignClient.of({
      create: (input) => call(decodeCreate(input), (p) => rpc.CreateCampaign(p)),
      get: (campaignId) => call(decodeRef({ campaignId }), (p) => rpc.GetCampaign(p)),
      list: (input = {}) => call(decodeList(input), (p) => rpc.ListCampaigns(p)),
      batches: (campaignId, o = {}) => call(decodeBatches({ ...o, campaignId }), (p) => rpc.ListCampaignBatches(p)),
      progress: (campaignId) => call(decodeRef({ campaignId }), (p) => rpc.GetCampaignProgress(p)),
      results: (campaignId, state) =>
        callStream(
          decodeResults(state === undefined ? { campaignId } : { campaignId, state }),
          (p) => rpc.GetCampaignResults(p)
        ),
      events: (campaignId, after = 0) =>
        callStream(decodeEvents({ campaignId, after }), (p) => rpc.StreamCampaignEvents(p)),
      pause: (campaignId, o = {}) => call(decodePause({ ...o, campaignId }), (p) => rpc.PauseCampaign(p)),
      resume: (campaignId) => call(decodeCommand({ campaignId }), (p) => rpc.ResumeCampaign(p)),
      cancel: (campaignId, note) => call(decodeCommand(withNote(campaignId, note)), (p) => rpc.CancelCampaign(p)),
      approve: (campaignId, note) => call(decodeCommand(withNote(campaignId, note)), (p) => rpc.ApproveCampaign(p)),
      reject: (campaignId, note) => call(decodeCommand(withNote(campaignId, note)), (p) => rpc.RejectCampaign(p)),
      retryFailed: (campaignId, o = {}) => call(decodeRetry({ ...o, campaignId }), (p) => rpc.RetryFailedCampaign(p)),
      releaseQuarantined: (campaignId) => call(decodeRef({ campaignId }), (p) => rpc.ReleaseCampaignQuarantined(p)),
      updateConfig: (campaignId, patch) =>
        call(decodeUpdate({ campaignId, patch }), (p) => rpc.UpdateCampaignConfig(p)),
      rpc
    })
  })

/**
 * The client over the `HttpClient` in context.
 *
 * @since 0.4.0
 */
export const layer = (options: Options): Layer.Layer<CampaignClient, never, HttpClient.HttpClient> =>
  Layer.scoped(CampaignClient, make(options))

/**
 * The client over `fetch`.
 *
 * @since 0.4.0
 */
export const layerFetch = (options: Options): Layer.Layer<CampaignClient> =>
  layer(options).pipe(Layer.provide(FetchHttpClient.layer))
