/**
 * The typed errors of the embedded database's data folder and of its backups.
 *
 * @since 0.5.0
 */
import * as Schema from "effect/Schema"

/**
 * Another process (or another client in this one) has the data folder open. PGlite is one process's
 * database: nothing was read or written. Stop that process first; a holder on another host cannot be
 * checked, so if it is gone, delete the lock file.
 *
 * @since 0.5.0
 */
export class DataDirInUse extends Schema.TaggedError<DataDirInUse>()("DataDirInUse", {
  dataDir: Schema.String,
  lockFile: Schema.String,
  pid: Schema.Number,
  host: Schema.String
}) {
  override get message() {
    return `the embedded database in ${this.dataDir} is in use by process ${this.pid} on ${this.host} ` +
      `(lock file ${this.lockFile}): stop it first (effect-batch serve and demo hold it while they run)`
  }
}

/**
 * A restore into a data folder that already holds files, without `force`. Nothing was changed.
 *
 * @since 0.5.0
 */
export class DataDirNotEmpty extends Schema.TaggedError<DataDirNotEmpty>()("DataDirNotEmpty", {
  dataDir: Schema.String
}) {
  override get message() {
    return `${this.dataDir} is not empty: restore into an empty or missing folder, or pass --force to replace it`
  }
}

/**
 * The data folder, its lock or a folder beside it could not be read or written.
 *
 * @since 0.5.0
 */
export class DataDirError extends Schema.TaggedError<DataDirError>()("DataDirError", {
  dataDir: Schema.String,
  message: Schema.String,
  cause: Schema.Defect
}) {}

/**
 * The data folder holds no database (a backup would have opened an empty one).
 *
 * @since 0.5.0
 */
export class DatabaseNotFound extends Schema.TaggedError<DatabaseNotFound>()("DatabaseNotFound", {
  dataDir: Schema.String
}) {
  override get message() {
    return `no embedded database in ${this.dataDir} (set EFFECT_BATCH_DATA_DIR to the folder serve uses)`
  }
}

/**
 * The backup file does not exist.
 *
 * @since 0.5.0
 */
export class BackupNotFound extends Schema.TaggedError<BackupNotFound>()("BackupNotFound", {
  file: Schema.String
}) {
  override get message() {
    return `no backup file at ${this.file}`
  }
}

/**
 * The file is not a backup of the embedded database, or it is damaged: `reason` says what is wrong.
 * Nothing was changed.
 *
 * @since 0.5.0
 */
export class BackupInvalid extends Schema.TaggedError<BackupInvalid>()("BackupInvalid", {
  file: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.file} is not a usable backup of the embedded database: ${this.reason}`
  }
}

/**
 * The backup file could not be read or written.
 *
 * @since 0.5.0
 */
export class BackupFileError extends Schema.TaggedError<BackupFileError>()("BackupFileError", {
  file: Schema.String,
  message: Schema.String,
  cause: Schema.Defect
}) {}
