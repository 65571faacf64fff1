/**
 * The id of a campaign.
 *
 * @since 0.4.0
 */
import * as Schema from "effect/Schema"

/**
 * The id of a campaign: a UUID.
 *
 * @since 0.4.0
 */
export const CampaignId = Schema.UUID.pipe(Schema.brand("CampaignId")).annotations({ identifier: "CampaignId" })
/** @since 0.4.0 */
export type CampaignId = typeof CampaignId.Type
