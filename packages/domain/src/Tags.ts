/**
 * The tags of the domain's unions and the tables over them, as plain constants without `effect`, for
 * code that must agree with the domain but not load it (the dashboard's browser script). The Schema
 * modules build their literals from these lists or check at compile time that the lists name every
 * member of their unions, so a new state, event or command changes these lists first.
 *
 * @since 0.5.0
 */

/**
 * Every batch state tag, in the union's order.
 *
 * @since 0.5.0
 */
export const batchStates = [
  "Pending",
  "Running",
  "Paused",
  "AwaitingReview",
  "Completed",
  "Failed",
  "Cancelled",
  "Rejected"
] as const

/** @since 0.5.0 */
export type BatchState = typeof batchStates[number]

/**
 * Batch states that end a batch's event stream (a redrive starts a new stream of events).
 *
 * @since 0.5.0
 */
export const batchTerminalStates = ["Completed", "Failed", "Cancelled", "Rejected"] as const satisfies ReadonlyArray<
  BatchState
>

/**
 * Batch states after which the batch's settled hook runs (a cancelled batch has no results to act on).
 *
 * @since 0.5.0
 */
export const batchSettledStates = ["Completed", "Failed", "Rejected"] as const satisfies ReadonlyArray<BatchState>

/**
 * Every batch command tag, in the union's order.
 *
 * @since 0.5.0
 */
export const batchCommands = [
  "Start",
  "Pause",
  "Resume",
  "Cancel",
  "Settle",
  "Approve",
  "Reject",
  "RetryFailed",
  "NextRound",
  "Fail",
  "UpdateConfig"
] as const

/** @since 0.5.0 */
export type BatchCommand = typeof batchCommands[number]

/**
 * Which commands each batch state accepts.
 *
 * @since 0.5.0
 */
export const batchAllowed: { readonly [K in BatchState]: ReadonlyArray<BatchCommand> } = {
  Pending: ["Start", "Cancel", "UpdateConfig"],
  Running: ["Pause", "Cancel", "Settle", "NextRound", "Fail", "UpdateConfig"],
  Paused: ["Resume", "Cancel", "UpdateConfig"],
  AwaitingReview: ["Approve", "Reject", "Cancel"],
  Completed: ["RetryFailed"],
  Failed: ["RetryFailed"],
  Cancelled: [],
  Rejected: ["RetryFailed"]
}

/**
 * Every batch event tag, in the union's order (the event names of a batch's event stream).
 *
 * @since 0.5.0
 */
export const batchEvents = [
  "BatchCreated",
  "BatchStarted",
  "BatchPaused",
  "BatchResumed",
  "ReviewRequested",
  "BatchApproved",
  "BatchRejected",
  "BatchCompleted",
  "BatchFailed",
  "BatchCancelled",
  "BatchRedriven",
  "ConfigChanged",
  "ItemStarted",
  "ItemSucceeded",
  "ItemFailed",
  "ItemRetryScheduled",
  "ItemTimedOut",
  "StepCompleted",
  "StepsDiscarded",
  "ItemQuarantined",
  "ItemReleased",
  "ItemSkipped",
  "Throttled",
  "SlowdownDetected",
  "SlowdownRecovered"
] as const

/** @since 0.5.0 */
export type BatchEvent = typeof batchEvents[number]

/**
 * Batch events that end a batch's event stream.
 *
 * @since 0.5.0
 */
export const batchTerminalEvents = [
  "BatchCompleted",
  "BatchFailed",
  "BatchCancelled",
  "BatchRejected"
] as const satisfies ReadonlyArray<BatchEvent>

/**
 * Every item state tag, in the union's order.
 *
 * @since 0.5.0
 */
export const itemStates = [
  "Queued",
  "Running",
  "RetryScheduled",
  "Succeeded",
  "Failed",
  "Quarantined",
  "Skipped"
] as const

/** @since 0.5.0 */
export type ItemState = typeof itemStates[number]

/**
 * The fields of the item counts, one per item state, in display order.
 *
 * @since 0.5.0
 */
export const itemCountFields = [
  "queued",
  "running",
  "retryScheduled",
  "succeeded",
  "failed",
  "quarantined",
  "skipped"
] as const

/** @since 0.5.0 */
export type ItemCountField = typeof itemCountFields[number]

/**
 * The item state each field of the item counts counts.
 *
 * @since 0.5.0
 */
export const itemCountStates: { readonly [K in ItemCountField]: ItemState } = {
  queued: "Queued",
  running: "Running",
  retryScheduled: "RetryScheduled",
  succeeded: "Succeeded",
  failed: "Failed",
  quarantined: "Quarantined",
  skipped: "Skipped"
}

/**
 * Every campaign state tag, in the union's order.
 *
 * @since 0.5.0
 */
export const campaignStates = [
  "Running",
  "Paused",
  "AwaitingReview",
  "Completed",
  "Failed",
  "Cancelled",
  "Rejected"
] as const

/** @since 0.5.0 */
export type CampaignState = typeof campaignStates[number]

/**
 * Campaign states that end a campaign's event stream (a redrive starts it again).
 *
 * @since 0.5.0
 */
export const campaignTerminalStates = ["Completed", "Failed", "Cancelled", "Rejected"] as const satisfies ReadonlyArray<
  CampaignState
>

/**
 * Campaign states after which the settlement hook runs (once every child batch has stopped).
 *
 * @since 0.5.0
 */
export const campaignSettledStates = ["Completed", "Failed", "Rejected"] as const satisfies ReadonlyArray<
  CampaignState
>

/**
 * Every campaign command tag, in the union's order.
 *
 * @since 0.5.0
 */
export const campaignCommands = [
  "Pause",
  "Resume",
  "Cancel",
  "Settle",
  "Fail",
  "Approve",
  "Reject",
  "RetryFailed",
  "UpdateConfig"
] as const

/** @since 0.5.0 */
export type CampaignCommand = typeof campaignCommands[number]

/**
 * Which commands each campaign state accepts.
 *
 * @since 0.5.0
 */
export const campaignAllowed: { readonly [K in CampaignState]: ReadonlyArray<CampaignCommand> } = {
  Running: ["Pause", "Cancel", "Settle", "Fail", "UpdateConfig"],
  Paused: ["Resume", "Cancel", "UpdateConfig"],
  AwaitingReview: ["Approve", "Reject", "Cancel"],
  Completed: ["RetryFailed"],
  Failed: ["RetryFailed"],
  Cancelled: [],
  Rejected: ["RetryFailed"]
}

/**
 * Every campaign event tag, in the union's order (the event names of a campaign's event stream).
 *
 * @since 0.5.0
 */
export const campaignEvents = [
  "CampaignCreated",
  "CampaignStarted",
  "CampaignBatchStarted",
  "CampaignBatchSettled",
  "CampaignProgress",
  "CampaignPaused",
  "CampaignResumed",
  "CampaignReviewRequested",
  "CampaignApproved",
  "CampaignRejected",
  "CampaignCompleted",
  "CampaignFailed",
  "CampaignCancelled",
  "CampaignRedriven",
  "CampaignItemsReleased",
  "CampaignConfigChanged"
] as const

/** @since 0.5.0 */
export type CampaignEvent = typeof campaignEvents[number]

/**
 * Campaign events that end a campaign's event stream.
 *
 * @since 0.5.0
 */
export const campaignTerminalEvents = [
  "CampaignRejected",
  "CampaignCompleted",
  "CampaignFailed",
  "CampaignCancelled"
] as const satisfies ReadonlyArray<CampaignEvent>

/**
 * `L` when it names every member of `T`, else an object naming the missing ones: a Schema module
 * writes `list satisfies Every<Union["_tag"], typeof list>` to tie a list here to its union.
 *
 * @since 0.5.0
 */
export type Every<T extends string, L extends ReadonlyArray<T>> = [Exclude<T, L[number]>] extends [never] ? L
  : { readonly missing: Exclude<T, L[number]> }
