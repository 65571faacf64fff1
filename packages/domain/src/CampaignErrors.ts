/**
 * The typed errors of campaigns (the others are shared with batches, in `Errors`).
 *
 * @since 0.4.0
 */
import * as Schema from "effect/Schema"

/**
 * No campaign with this id exists for the caller's tenant.
 *
 * @since 0.4.0
 */
export class CampaignNotFound extends Schema.TaggedError<CampaignNotFound>()("CampaignNotFound", {
  campaignId: Schema.String
}) {
  override get message() {
    return `campaign ${this.campaignId} not found`
  }
}

/**
 * A campaign config that does not decode; `message` names each bad field.
 *
 * @since 0.4.0
 */
export class InvalidCampaignConfig extends Schema.TaggedError<InvalidCampaignConfig>()("InvalidCampaignConfig", {
  message: Schema.String
}) {}
