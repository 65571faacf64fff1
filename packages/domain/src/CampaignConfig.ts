/**
 * The configuration of a campaign: how its items are split into batches, how many batches run at
 * once, the config every batch runs with, the campaign's own failure tolerance and its review gate.
 *
 * @since 0.4.0
 */
import * as Schema from "effect/Schema"
import { BatchConfig } from "./BatchConfig.js"

const intBetween = (name: string, min: number, max: number) =>
  Schema.Int.pipe(
    Schema.between(min, max, { message: () => `${name} must be an integer between ${min} and ${max}` })
  )

const ratio = (name: string) =>
  Schema.Number.pipe(Schema.between(0, 1, { message: () => `${name} must be a number between 0 and 1` }))

/**
 * What happens to the batches still running when the campaign's tolerance is exceeded:
 * `finish` lets them settle (their results roll up; nothing new starts), `cancel` cancels them.
 *
 * @since 0.4.0
 */
export const OnExceeded = Schema.Literal("finish", "cancel")
/** @since 0.4.0 */
export type OnExceeded = typeof OnExceeded.Type

/**
 * The campaign's failure tolerance, over its batches and over all its items. Every bound is
 * optional; with none, the campaign never fails on its own and settles whatever its batches did.
 *
 * @since 0.4.0
 */
export class Tolerance extends Schema.Class<Tolerance>("Tolerance")({
  /** the most batches that may end `Failed` */
  maxFailedBatches: Schema.optionalWith(intBetween("tolerance.maxFailedBatches", 0, 1_000_000), { exact: true }),
  /** the largest share of `Failed` batches among the settled ones, checked once `minSettledBatches` settled */
  maxFailedBatchRatio: Schema.optionalWith(ratio("tolerance.maxFailedBatchRatio"), { exact: true }),
  minSettledBatches: Schema.optionalWith(intBetween("tolerance.minSettledBatches", 0, 1_000_000), {
    default: () => 1,
    exact: true
  }),
  /** the largest share of failed items among the settled items of the whole campaign */
  maxItemFailureRatio: Schema.optionalWith(ratio("tolerance.maxItemFailureRatio"), { exact: true }),
  /** how many items must have settled before the item ratio is checked */
  minSettledItems: Schema.optionalWith(intBetween("tolerance.minSettledItems", 0, 100_000_000), {
    default: () => 100,
    exact: true
  }),
  onExceeded: Schema.optionalWith(OnExceeded, { default: () => "finish" as const, exact: true })
}) {}

/**
 * The configuration of a campaign. `batchConfig` is the config of every child batch (its own
 * policy, retries and error budget).
 *
 * @since 0.4.0
 */
export class CampaignConfig extends Schema.Class<CampaignConfig>("CampaignConfig")({
  batchSize: Schema.optionalWith(intBetween("batchSize", 1, 100_000), { default: () => 100, exact: true }),
  /** how many child batches run at once */
  concurrency: Schema.optionalWith(intBetween("concurrency", 1, 1_000), { default: () => 1, exact: true }),
  batchConfig: Schema.optionalWith(BatchConfig, { default: () => BatchConfig.make({}), exact: true }),
  tolerance: Schema.optionalWith(Tolerance, { default: () => Tolerance.make({}), exact: true }),
  review: Schema.optionalWith(Schema.Boolean, { default: () => false, exact: true })
}) {}

/**
 * The parts of a campaign's config that can change while it runs.
 *
 * @since 0.4.0
 */
export class CampaignPatch extends Schema.Class<CampaignPatch>("CampaignPatch")({
  concurrency: Schema.optionalWith(intBetween("concurrency", 1, 1_000), { exact: true }),
  tolerance: Schema.optionalWith(Tolerance, { exact: true })
}) {}

/**
 * Applies a patch to a config.
 *
 * @since 0.4.0
 */
export const applyPatch = (config: CampaignConfig, patch: CampaignPatch): CampaignConfig =>
  CampaignConfig.make({
    ...config,
    ...(patch.concurrency !== undefined ? { concurrency: patch.concurrency } : {}),
    ...(patch.tolerance !== undefined ? { tolerance: patch.tolerance } : {})
  })

/**
 * Decodes a config from JSON (applying defaults), failing with a `ParseError` naming the field.
 *
 * @since 0.4.0
 */
export const decode = Schema.decodeUnknown(CampaignConfig, { errors: "all", onExcessProperty: "error" })
