/**
 * @since 0.1.0
 */
export * as BatchClient from "./BatchClient.js"
export * as BatchEvents from "./BatchEvents.js"
export * as BatchOrchestrator from "./BatchOrchestrator.js"
export * as BatchRunner from "./BatchRunner.js"
export * as BatchStateMachine from "./BatchStateMachine.js"
export * as EffectBatch from "./EffectBatch.js"
export * as Http from "./Http.js"
export * as Dashboard from "./Http/Dashboard.js"
export * as Worker from "./Worker.js"
export * as Workflow from "./Workflow.js"
export * as WorkflowRegistry from "./WorkflowRegistry.js"
