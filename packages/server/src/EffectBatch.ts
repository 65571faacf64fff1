/**
 * The whole of effect-batch as one layer, for a server that embeds it.
 *
 * @since 0.1.0
 */
import type { StorageUnavailable } from "@effect-batch/domain/Errors"
import { BatchRepo } from "@effect-batch/tables/BatchRepo"
import { CampaignRepo } from "@effect-batch/tables/CampaignRepo"
import { EventLog } from "@effect-batch/tables/EventLog"
import { ItemReader } from "@effect-batch/tables/ItemReader"
import { ItemRepo } from "@effect-batch/tables/ItemRepo"
import { LimiterRepo } from "@effect-batch/tables/LimiterRepo"
import * as Migrations from "@effect-batch/tables/Migrations"
import type { Notifier } from "@effect-batch/tables/Notifier"
import { StepRepo } from "@effect-batch/tables/StepRepo"
import { TrendRepo } from "@effect-batch/tables/TrendRepo"
import type { MigrationError } from "@effect/sql/Migrator"
import type { SqlClient } from "@effect/sql/SqlClient"
import * as Layer from "effect/Layer"
import { BatchEvents } from "./BatchEvents.js"
import * as BatchOrchestrator from "./BatchOrchestrator.js"
import { BatchRunner } from "./BatchRunner.js"
import { CampaignEvents } from "./CampaignEvents.js"
import * as CampaignOrchestrator from "./CampaignOrchestrator.js"
import { CampaignRunner } from "./CampaignRunner.js"
import { BatchStateMachine } from "./internal/BatchStateMachine.js"
import * as Storage from "./internal/Storage.js"
import { SharedLimiters } from "./SharedLimiters.js"
import { Worker } from "./Worker.js"
import type { WorkflowRegistry } from "./WorkflowRegistry.js"

/**
 * The repositories over a migrated database.
 *
 * @since 0.1.0
 */
export const layerRepos: Layer.Layer<
  BatchRepo | ItemRepo | ItemReader | EventLog | StepRepo | LimiterRepo | CampaignRepo | TrendRepo,
  MigrationError | StorageUnavailable,
  SqlClient
> = Layer.mergeAll(
  BatchRepo.Default,
  ItemRepo.Default,
  ItemReader.Default,
  EventLog.Default,
  StepRepo.Default,
  LimiterRepo.Default,
  CampaignRepo.Default,
  TrendRepo.Default
).pipe(Layer.provide(Migrations.layer), Storage.decideLayer)

/**
 * The orchestrator with its worker loop, state machine and event fan-out, and the campaign
 * orchestrator with its runner, over a database
 * (`SqlClient` and `Notifier`, e.g. from `Database.layer`) and a `WorkflowRegistry`.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<
  | CampaignOrchestrator.CampaignOrchestrator
  | CampaignRunner
  | CampaignEvents
  | CampaignRepo
  | BatchOrchestrator.BatchOrchestrator
  | Worker
  | BatchEvents
  | BatchRepo
  | ItemRepo
  | ItemReader
  | EventLog
  | TrendRepo
  | SharedLimiters,
  MigrationError | StorageUnavailable,
  SqlClient | Notifier | WorkflowRegistry
> = CampaignOrchestrator.layer.pipe(
  Layer.provideMerge(CampaignRunner.DefaultWithoutDependencies),
  Layer.provideMerge(CampaignEvents.DefaultWithoutDependencies),
  Layer.provideMerge(BatchOrchestrator.layer),
  Layer.provideMerge(Worker.Default),
  Layer.provideMerge(BatchRunner.Default),
  Layer.provideMerge(SharedLimiters.Default),
  Layer.provide(BatchStateMachine.Default),
  Layer.provideMerge(BatchEvents.DefaultWithoutDependencies),
  Layer.provideMerge(layerRepos)
)
