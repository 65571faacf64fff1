/**
 * @since 0.1.0
 */
export * as BatchCommand from "./BatchCommand.js"
export * as BatchConfig from "./BatchConfig.js"
export * as BatchEvent from "./BatchEvent.js"
export * as BatchState from "./BatchState.js"
export * as Duration from "./Duration.js"
export * as Errors from "./Errors.js"
export * as FailurePolicy from "./FailurePolicy.js"
export * as Ids from "./Ids.js"
export * as ItemCounts from "./ItemCounts.js"
export * as ItemError from "./ItemError.js"
export * as ItemState from "./ItemState.js"
export * as Policy from "./Policy.js"
export * as Rpcs from "./Rpcs.js"
export * as Summary from "./Summary.js"
export * as Transition from "./Transition.js"
export * as Views from "./Views.js"
