import { chmodSync, lstatSync, unlinkSync, type Stats } from 'node:fs'
import net, { type Server } from 'node:net'
import { isMainThread } from 'node:worker_threads'
import { ConfigError } from '../errors.ts'

/** Mode of the socket file `serve --socket` creates: owner and group may connect, others not. */
export const SOCKET_MODE = 0o660
/** How long a socket file found at start may take to accept the probe before it counts as alive. */
const PROBE_TIMEOUT_MS = 1_000

function errno (err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code
}

function lstatOrUndefined (path: string): Stats | undefined {
  try {
    return lstatSync(path)
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined
    throw new ConfigError(`cannot check ${path}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Connects to the socket at `path`: 'alive' when something accepts (or is too busy to: EAGAIN, a
 * full backlog, or no answer within the probe timeout), 'stale' when nothing listens
 * (ECONNREFUSED: the file outlived a crashed process) or the file is gone.
 */
function probe (path: string): Promise<'alive' | 'stale'> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path })
    const done = (result: 'alive' | 'stale' | Error): void => {
      clearTimeout(timer)
      socket.destroy()
      if (result instanceof Error) reject(result)
      else resolve(result)
    }
    const timer = setTimeout(done, PROBE_TIMEOUT_MS, 'alive')
    socket.once('connect', () => done('alive'))
    socket.once('error', (err) => {
      const code = errno(err)
      if (code === 'ECONNREFUSED' || code === 'ENOENT') done('stale')
      else if (code === 'EAGAIN') done('alive')
      else done(new ConfigError(`cannot connect to ${path} to see whether another process listens there: ${err.message}`, { cause: err }))
    })
  })
}

/**
 * Makes `path` free for a new listening socket. Nothing there: nothing to do. A socket file that
 * nobody answers on (left by a crash; a clean stop removes it) is removed. Refused with
 * {@link ConfigError}: a file that is not a socket, and a socket another process listens on.
 * The file is removed only if it is still the one probed (same device and inode), so a second
 * receiver that bound the path meanwhile is never unlinked from under it.
 */
export async function claimSocketPath (path: string): Promise<void> {
  const found = lstatOrUndefined(path)
  if (found === undefined) return
  if (!found.isSocket()) throw new ConfigError(`${path} exists and is not a socket: refusing to replace it`)
  if (await probe(path) === 'alive') throw new ConfigError(`another process listens on ${path}; stop it, or pick another --socket path`)
  const now = lstatOrUndefined(path)
  if (now === undefined) return
  if (now.ino !== found.ino || now.dev !== found.dev) throw new ConfigError(`another process listens on ${path} (it was bound while this one started)`)
  try {
    unlinkSync(path)
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw new ConfigError(`cannot remove the stale socket ${path}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Listens on the Unix-domain socket `path` with file mode `mode` from the moment it exists: the
 * umask is narrowed around the (synchronous) bind, then the mode is set exactly. The umask is
 * process-wide, so a file another thread creates in that instant gets a narrower mode, never a
 * wider one. Node (libuv) removes the file when the server closes.
 */
export function listenOnSocket (server: Server, path: string, mode: number, backlog: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    server.once('error', onError)
    const umask = isMainThread ? process.umask(0o777 & ~mode) : undefined
    try {
      server.listen({ path, backlog }, () => {
        server.off('error', onError)
        try {
          chmodSync(path, mode)
          resolve()
        } catch (err) {
          server.close()
          reject(err)
        }
      })
    } finally {
      if (umask !== undefined) process.umask(umask)
    }
  })
}
