/**
 * Every RPC the server answers on `POST /rpc`: batches, campaigns and shared limiters, each scoped
 * to the caller's tenant.
 *
 * @since 0.4.0
 */
import { CampaignRpcs } from "./CampaignRpcs.js"
import { BatchRpcs } from "./Rpcs.js"
import { SharedLimiterRpcs } from "./SharedLimiter.js"

/**
 * The whole RPC contract shared by the server and its clients.
 *
 * @since 0.4.0
 */
export const Api = BatchRpcs.merge(CampaignRpcs, SharedLimiterRpcs)
