import type { Socket } from 'node:net'
import { ConnectError, InvalidOptionError, TriggerError, WriteError } from '../errors.ts'
import { checkSocketPath, CONNECT_TIMEOUT_MS, describe, openSocket, type TlsOptions } from './connect.ts'
import { assemble, parseTarget, type RequestOptions, type Target } from './request-bytes.ts'

/** Persistent connections a pool keeps by default. */
export const POOL_CONNECTIONS = 4
/** Times one request is written again after its connection closed before it was answered. */
const POOL_MAX_RESENDS = 3
// Limits of the minimal response reader: our receiver's answers are a few hundred bytes.
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024

/** Options of {@link createTriggerPool}. */
export interface TriggerPoolOptions {
  /** Persistent connections. @default 4 */
  connections?: number
  /** @default 5000 */
  connectTimeoutMs?: number
  tls?: TlsOptions
  /**
   * Connect to this Unix-domain socket instead of the URL's host and port; the URL still gives
   * the path and `Host` (see `TriggerOptions.socketPath`).
   * @default undefined (TCP to the URL's host and port)
   */
  socketPath?: string
}

/** What a pool has done so far. */
export interface TriggerPoolStats {
  /** Requests handed to `fire`. */
  fired: number
  /** Answers read, by status code. */
  statuses: Record<number, number>
  /** Requests written again after their connection closed unanswered. */
  resent: number
  /** Requests given up after {@link POOL_MAX_RESENDS} resends, or because no connection could be made. */
  failed: number
  /** Fired, not yet answered. */
  inFlight: number
}

/** A pool of keep-alive connections to one origin. */
export interface TriggerPool {
  /** Writes one request and resolves once it is handed to the kernel; the answer is read later. */
  fire (options?: RequestOptions): Promise<void>
  stats (): TriggerPoolStats
  /** Resolves once every request fired so far is answered or given up. */
  drain (): Promise<void>
  /** Drains, then closes every connection. */
  close (): Promise<void>
}

interface Pending { bytes: Buffer, resends: number }

interface Conn { socket: Socket, queue: Pending[], buf: Buffer, need: number, closed: boolean }

/**
 * Keep-alive triggers: a few persistent connections, requests written without waiting for
 * answers, answers read in the background. Each request carries a `webhook-id` (yours, or a
 * random one), so one written again after its connection closed unanswered creates no second job.
 *
 * Why it exists: every `Connection: close` trigger leaves the client's port in TIME_WAIT for
 * 60 s, which caps one client at about 470 triggers/s sustained to one remote address.
 */
export function createTriggerPool (url: string | URL, options: TriggerPoolOptions = {}): TriggerPool {
  const target: Target = parseTarget(url)
  const size = options.connections ?? POOL_CONNECTIONS
  if (!Number.isInteger(size) || size < 1) throw new InvalidOptionError(`connections must be a positive integer (got ${String(size)})`)
  checkSocketPath(options.socketPath)
  const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
  const where = describe(target, options.socketPath)
  const conns: Array<Conn | undefined> = Array.from({ length: size })
  const stats: TriggerPoolStats = { fired: 0, statuses: {}, resent: 0, failed: 0, inFlight: 0 }
  let next = 0
  let drainWaiters: Array<() => void> = []
  let lastError: TriggerError | undefined

  function settleOne (): void {
    stats.inFlight--
    if (stats.inFlight === 0) {
      const waiters = drainWaiters
      drainWaiters = []
      for (const w of waiters) w()
    }
  }

  function open (slot: number): Conn {
    const socket = openSocket(target, options.tls, options.socketPath)
    const conn: Conn = { socket, queue: [], buf: Buffer.alloc(0), need: -1, closed: false }
    socket.setTimeout(connectTimeoutMs, () => socket.destroy(new ConnectError(`Connect timeout (${where}, ${connectTimeoutMs} ms)`)))
    socket.once(target.tls ? 'secureConnect' : 'connect', () => socket.setTimeout(0))
    socket.on('data', (chunk: Buffer) => onData(conn, chunk))
    socket.on('error', (err: Error) => {
      lastError = err instanceof TriggerError ? err : new WriteError(`Connection failed (${where}): ${err.message}`, { cause: err })
    })
    socket.on('close', () => onClose(slot, conn))
    conns[slot] = conn
    return conn
  }

  function onData (conn: Conn, chunk: Buffer): void {
    conn.buf = conn.buf.length === 0 ? chunk : Buffer.concat([conn.buf, chunk])
    for (;;) {
      if (conn.need < 0) {
        const end = conn.buf.indexOf('\r\n\r\n')
        if (end === -1) {
          if (conn.buf.length > MAX_RESPONSE_HEAD_BYTES) conn.socket.destroy()
          return
        }
        const head = conn.buf.toString('latin1', 0, end)
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
        if (status === null || length === null) { // chunked or garbage: not ours to read; start over
          conn.socket.destroy()
          return
        }
        const code = Number(status[1])
        stats.statuses[code] = (stats.statuses[code] ?? 0) + 1
        conn.queue.shift()
        settleOne()
        conn.buf = conn.buf.subarray(end + 4)
        conn.need = Number(length[1])
        if (/\r\nconnection:\s*close/i.test(head)) conn.closed = true
      }
      if (conn.buf.length < conn.need) return
      conn.buf = conn.buf.subarray(conn.need)
      conn.need = -1
      if (conn.buf.length === 0) return
    }
  }

  function onClose (slot: number, conn: Conn): void {
    conn.closed = true
    if (conns[slot] === conn) conns[slot] = undefined
    for (const p of conn.queue) {
      if (p.resends >= POOL_MAX_RESENDS) {
        stats.failed++
        settleOne()
        continue
      }
      p.resends++
      stats.resent++
      write(p) // the same bytes and webhook-id: the receiver answers a resend with the first job
    }
  }

  function drain (): Promise<void> {
    if (stats.inFlight === 0) return Promise.resolve()
    return new Promise<void>((resolve) => drainWaiters.push(resolve))
  }

  function write (p: Pending): Promise<void> {
    const slot = next++ % size
    let conn = conns[slot]
    if (conn === undefined || conn.closed || conn.socket.destroyed) conn = open(slot)
    conn.queue.push(p)
    return new Promise((resolve) => conn.socket.write(p.bytes, () => resolve()))
  }

  return {
    fire (request: RequestOptions = {}) {
      let bytes: Buffer
      try {
        const headers = { ...request.headers }
        if (!Object.keys(headers).some((h) => h.toLowerCase() === 'webhook-id')) headers['webhook-id'] = 'rt_' + globalThis.crypto.randomUUID().replaceAll('-', '')
        bytes = assemble(target, { ...request, headers }, 'keep-alive')
      } catch (err) {
        return Promise.reject(err)
      }
      stats.fired++
      stats.inFlight++
      return write({ bytes, resends: 0 })
    },
    stats: () => ({ ...stats, statuses: { ...stats.statuses } }),
    drain,
    async close () {
      await drain()
      for (const c of conns) c?.socket.end()
      if (lastError !== undefined && stats.failed > 0) throw lastError
    },
  }
}
