import net from 'node:net'
import tls from 'node:tls'
import { ConnectError, ConnectTimeoutError, WriteError } from '../errors.ts'
import { CONNECT_TIMEOUT_MS, describe } from '../net/connect.ts'
import type { Target } from '../net/request-bytes.ts'

/** How a trigger hangs up after its last byte. */
export type Shape = 'fin' | 'pause' | 'reset'
export const SHAPES: readonly Shape[] = ['fin', 'pause', 'reset']

/** The pause of the `pause` shape: a PHP script that does a little work before fclose(). */
const PAUSE_MS = 5

/**
 * Writes `bytes` and hangs up the way `shape` says, as a PHP `fsockopen()` trigger does; never
 * reads. The TCP socket is ours (TLS, if any, runs over it), so a reset is a real RST. For
 * `reset`, the RST waits about one round trip (the connect time) once the write is handed to the
 * kernel: an RST discards what is still unsent, and a request cut short is the client's fault,
 * not the front's. On loopback that wait is nothing.
 */
export function fireShaped (target: Target, bytes: Buffer, shape: Shape, tlsOptions: tls.ConnectionOptions | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = performance.now()
    const raw = net.connect({ host: target.hostname, port: target.port })
    const socket = target.tls
      ? tls.connect({ ...tlsOptions, socket: raw, ...(target.ip ? {} : { servername: target.hostname }) })
      : raw
    let connected = false
    let settled = false
    const finish = (err?: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy() // = fclose(): the descriptor is closed, nothing is read
      if (err === undefined) resolve()
      else reject(err)
    }
    const where = describe(target)
    const timer = setTimeout(() => finish(new ConnectTimeoutError(`Connect timeout (${where}, ${CONNECT_TIMEOUT_MS} ms)`)), CONNECT_TIMEOUT_MS)
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected) finish(new ConnectError(`Connect failed (${where}): ${err.message}`, { cause: err }))
      else finish(new WriteError(`Write failed (${where}): ${err.message}`, { cause: err }))
    })
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      connected = true
      const rttMs = performance.now() - start
      if (shape === 'fin') socket.end(bytes, () => finish())
      else if (shape === 'pause') socket.write(bytes, () => setTimeout(() => socket.end(() => finish()), PAUSE_MS))
      else {
        socket.write(bytes, () => setTimeout(() => {
          if (!settled) {
            settled = true
            clearTimeout(timer)
            raw.resetAndDestroy()
            resolve()
          }
        }, Math.floor(rttMs)))
      }
    })
  })
}
