import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"

/** A TCP proxy to a local port whose connections a test can cut, like a flaky network would. */
export interface TcpProxy {
  readonly url: string
  /** connections accepted so far */
  readonly accepted: () => number
  /** destroys every open connection (both sides) */
  readonly cut: () => void
  /** cuts every open connection and refuses new ones until `up`, like a server that went down */
  readonly down: () => void
  readonly up: () => void
}

/** Starts a proxy to `target` (`http://127.0.0.1:PORT`); it stops when the scope closes. */
export const make = (target: string): Effect.Effect<TcpProxy, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const port = Number(new URL(target).port)
    const open = new Set<Net.Socket>()
    let accepted = 0
    let isDown = false
    const server = Net.createServer((client) => {
      if (isDown) return client.destroy()
      accepted++
      const upstream = Net.connect(port, "127.0.0.1")
      open.add(client)
      open.add(upstream)
      const close = () => {
        client.destroy()
        upstream.destroy()
        open.delete(client)
        open.delete(upstream)
      }
      client.on("error", close).on("close", close)
      upstream.on("error", close).on("close", close)
      client.pipe(upstream)
      upstream.pipe(client)
    })
    const address = yield* Effect.acquireRelease(
      Effect.async<Net.AddressInfo, Error>((resume) => {
        server.once("error", (error) => resume(Effect.fail(error)))
        server.listen(0, "127.0.0.1", () => {
          const info = server.address()
          resume(
            info !== null && typeof info === "object"
              ? Effect.succeed(info)
              : Effect.fail(new Error("no address"))
          )
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          for (const socket of open) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    const cut = () => {
      for (const socket of open) socket.destroy()
      open.clear()
    }
    return {
      url: `http://127.0.0.1:${address.port}`,
      accepted: () => accepted,
      cut,
      down: () => {
        isDown = true
        cut()
      },
      up: () => {
        isDown = false
      }
    }
  })
