/**
 * Reading a data folder's tarball (`dumpDataDir`) before PGlite sees it: PGlite rejects a damaged
 * archive from a promise nobody awaits, which ends the process, so the archive is unpacked and checked
 * here first.
 */
import * as Either from "effect/Either"
import * as Util from "node:util"
import * as Zlib from "node:zlib"

const gunzip = Util.promisify(Zlib.gunzip)

const block = 512

const isGzip = (bytes: Uint8Array) => bytes[0] === 0x1f && bytes[1] === 0x8b

/** The uncompressed archive: gunzipped when it is gzip (its checksum checked), as it is otherwise. */
export const uncompressed = (bytes: Uint8Array): Promise<Either.Either<Uint8Array, string>> =>
  isGzip(bytes)
    ? gunzip(bytes).then(
      (tar) => Either.right(new Uint8Array(tar.buffer, tar.byteOffset, tar.byteLength)),
      (cause: unknown) => Either.left(`damaged gzip data (${cause instanceof Error ? cause.message : String(cause)})`)
    )
    : Promise.resolve(Either.right(bytes))

const text = (header: Uint8Array, start: number, length: number) => {
  const field = header.subarray(start, start + length)
  const end = field.indexOf(0)
  return Buffer.from(end === -1 ? field : field.subarray(0, end)).toString("utf8")
}

const checksumOk = (header: Uint8Array) => {
  let sum = 0
  for (let i = 0; i < block; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!
  return Number.parseInt(text(header, 148, 8).trim(), 8) === sum
}

/**
 * The paths of a ustar archive's entries (without a leading `/`), or what is wrong with it: a header
 * whose checksum does not match, an entry cut short, a path that leaves the folder.
 */
export const entries = (tar: Uint8Array): Either.Either<ReadonlyArray<string>, string> => {
  const paths: Array<string> = []
  let offset = 0
  while (offset + block <= tar.length) {
    const header = tar.subarray(offset, offset + block)
    if (header.every((byte) => byte === 0)) return Either.right(paths)
    if (!checksumOk(header)) return Either.left(`not a tar archive (bad header at byte ${offset})`)
    const size = Number.parseInt(text(header, 124, 12).trim() || "0", 8)
    const prefix = text(header, 257, 5) === "ustar" ? text(header, 345, 155) : ""
    const path = (prefix === "" ? "" : `${prefix}/`) + text(header, 0, 100)
    if (path.split("/").includes("..")) return Either.left(`an entry leaves the folder: ${path}`)
    if (!Number.isSafeInteger(size)) return Either.left(`not a tar archive (bad size in ${path})`)
    paths.push(path.replace(/^\/+/, ""))
    offset += block + Math.ceil(size / block) * block
    if (offset > tar.length) return Either.left(`cut short (in ${path})`)
  }
  return paths.length === 0 ? Either.left("not a tar archive (empty)") : Either.left("cut short (no end marker)")
}
