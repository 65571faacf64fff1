/**
 * @since 0.1.0
 */
export * as BatchRecord from "./BatchRecord.js"
export * as BatchRepo from "./BatchRepo.js"
export * as Database from "./Database.js"
export * as EventLog from "./EventLog.js"
export * as HotSql from "./HotSql.js"
export * as ItemReader from "./ItemReader.js"
export * as ItemRepo from "./ItemRepo.js"
export * as Migrations from "./Migrations.js"
export * as Notifier from "./Notifier.js"
export * as PgliteClient from "./PgliteClient.js"
export * as StatsReader from "./StatsReader.js"
export * as StepRepo from "./StepRepo.js"
export * as Tables from "./Tables.js"
export * as TestDatabase from "./TestDatabase.js"
