/**
 * One process per data folder of the embedded database. PGlite itself lets a second process open a
 * folder that another one has open, and the two then lose each other's writes; this lock refuses the
 * second one with `DataDirInUse` instead.
 *
 * The lock is a file beside the folder, `<dataDir>.lock` (outside it, so that a backup of the folder
 * does not carry it), naming the process that holds it. A lock left by a process that died is taken
 * over; one held from another host cannot be checked and counts as held.
 *
 * @since 0.5.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { DataDirError, DataDirInUse } from "./EmbeddedErrors.js"
import { errorCode } from "./internal/ErrorCode.js"

const Holder = Schema.Struct({ pid: Schema.Int, host: Schema.String, nonce: Schema.String })
type Holder = typeof Holder.Type

const encodeHolder = Schema.encodeSync(Schema.parseJson(Holder))
const decodeHolder = Schema.decodeUnknownOption(Schema.parseJson(Holder))

/** The locks this process holds, by nonce: a lock with this pid and another nonce is a previous process's. */
const heldHere = new Set<string>()

/**
 * The lock file of a data folder.
 *
 * @since 0.5.0
 */
export const lockFile = (dataDir: string): string => `${Path.resolve(dataDir)}.lock`

const isAlive = (holder: Holder): boolean => {
  if (holder.host !== Os.hostname()) return true
  if (holder.pid === process.pid) return heldHere.has(holder.nonce)
  try {
    process.kill(holder.pid, 0)
    return true
  } catch (cause) {
    return errorCode(cause) === "EPERM"
  }
}

/** Creates the lock file with its whole content at once (a hard link of a written file), or finds it taken. */
const create = async (file: string, content: string): Promise<boolean> => {
  const written = `${file}.${Crypto.randomUUID()}`
  await Fs.writeFile(written, content, { flag: "wx" })
  try {
    await Fs.link(written, file)
    return true
  } catch (cause) {
    if (errorCode(cause) === "EEXIST") return false
    throw cause
  } finally {
    await Fs.rm(written, { force: true })
  }
}

const readText = (file: string): Promise<string | undefined> =>
  Fs.readFile(file, "utf8").catch((cause) => errorCode(cause) === "ENOENT" ? undefined : Promise.reject(cause))

/**
 * Removes a lock file whose holder is gone, unless another process took it over in between: the file
 * is moved aside, and put back if it is no longer the one that was judged stale.
 */
const removeStale = async (file: string, stale: string): Promise<void> => {
  const aside = `${file}.stale-${Crypto.randomUUID()}`
  try {
    await Fs.rename(file, aside)
  } catch (cause) {
    if (errorCode(cause) === "ENOENT") return
    throw cause
  }
  try {
    if ((await readText(aside)) !== stale) await Fs.link(aside, file).catch(() => undefined)
  } finally {
    await Fs.rm(aside, { force: true })
  }
}

type Attempt = { readonly _tag: "Held" } | { readonly _tag: "InUse"; readonly holder: Holder } | {
  readonly _tag: "Retry"
}

const attempt = async (file: string, content: string): Promise<Attempt> => {
  if (await create(file, content)) return { _tag: "Held" }
  const text = await readText(file)
  if (text === undefined) return { _tag: "Retry" }
  const holder = decodeHolder(text)
  if (Option.isSome(holder) && isAlive(holder.value)) return { _tag: "InUse", holder: holder.value }
  await removeStale(file, text)
  return { _tag: "Retry" }
}

/**
 * Holds the lock of `dataDir` for the life of the scope; fails with `DataDirInUse` when a live process
 * (this one included) holds it.
 *
 * @since 0.5.0
 */
export const acquire = (dataDir: string): Effect.Effect<void, DataDirInUse | DataDirError, Scope.Scope> => {
  const file = lockFile(dataDir)
  const holder: Holder = { pid: process.pid, host: Os.hostname(), nonce: Crypto.randomUUID() }
  const content = encodeHolder(holder)
  const io = <A>(what: string, f: () => Promise<A>) =>
    Effect.tryPromise({
      try: f,
      catch: (cause) => new DataDirError({ dataDir: Path.resolve(dataDir), message: `${what} ${file}`, cause })
    })
  const take = Effect.gen(function*() {
    yield* io("could not create the folder of", () => Fs.mkdir(Path.dirname(file), { recursive: true }))
    for (let round = 0; round < 5; round++) {
      const result = yield* io("could not take the lock", () => attempt(file, content))
      if (result._tag === "Held") return
      if (result._tag === "InUse") {
        return yield* new DataDirInUse({
          dataDir: Path.resolve(dataDir),
          lockFile: file,
          pid: result.holder.pid,
          host: result.holder.host
        })
      }
    }
    return yield* new DataDirError({
      dataDir: Path.resolve(dataDir),
      message: `could not take the lock ${file}: other processes keep taking it over`,
      cause: undefined
    })
  })
  // marked held before the file exists, so that another client of this process never judges it stale
  const mark = Effect.sync(() => heldHere.add(holder.nonce))
  const unmark = Effect.sync(() => heldHere.delete(holder.nonce))
  return Effect.acquireRelease(
    Effect.zipRight(mark, Effect.tapError(take, () => unmark)),
    () =>
      io("could not remove the lock", async () => {
        if ((await readText(file)) === content) await Fs.rm(file, { force: true })
      }).pipe(
        Effect.catchAll((error) => Effect.logWarning(error.message, error.cause)),
        Effect.ensuring(unmark)
      )
  )
}
