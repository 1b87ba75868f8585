import type { Socket } from 'node:net'
import {
  AbortError,
  AckError,
  AckTimeoutError,
  ConnectError,
  ConnectTimeoutError,
  InvalidOptionError,
  TlsError,
  TriggerError,
  WriteError,
} from '../errors.ts'
import { CONNECT_TIMEOUT_MS, describe, openSocket, type TlsOptions } from './connect.ts'
import { assemble, parseTarget, type RequestOptions, type Target } from './request-bytes.ts'

/** Waiting for the status line with `ack: true`, counted from the end of the write. */
export const ACK_TIMEOUT_MS = 5_000

// A status line longer than this is not HTTP/1.x (RFC 9112 §4: "HTTP/1.1 NNN reason").
const MAX_STATUS_LINE_BYTES = 1_024
const STATUS_LINE_RE = /^HTTP\/1\.[01] (\d{3})(?: |\r|$)/

/** Options of {@link trigger}. */
export interface TriggerOptions extends RequestOptions {
  /** Limit for the TCP connect, and the TLS handshake for https. @default 5000 */
  connectTimeoutMs?: number
  /**
   * `false`: write the request and the FIN, never read the response.
   * `true`: write the request, wait for the status line, then close; the result has `status`.
   * Ack mode does not half-close before the answer, so it works with any HTTP server.
   * @default false
   */
  ack?: boolean
  /** Limit for the status line with `ack: true`, counted from the end of the write. @default 5000 */
  ackTimeoutMs?: number
  /** TLS options for https (`ca`, `rejectUnauthorized`, `cert`, `key`, …). */
  tls?: TlsOptions
  /** Aborts the connect, the write and the wait for the ack. */
  signal?: AbortSignal
}

/** What one trigger did. Times are milliseconds from the call. */
export interface TriggerResult {
  /** Bytes of the request written, head and body. */
  bytes: number
  /** Until the connection was ready (TLS included). */
  connectMs: number
  /** Until the caller was released: the last byte handed to the kernel (or the status line read). */
  totalMs: number
  remoteAddress: string
  remotePort: number
  /** The response status, with `ack: true` only. */
  status?: number
}

// Node's timers hold 32-bit signed milliseconds; a larger delay fires after 1 ms.
const MAX_TIMEOUT_MS = 2 ** 31 - 1

function checkMs (name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > MAX_TIMEOUT_MS)) {
    throw new InvalidOptionError(`${name} must be an integer of milliseconds from 1 to ${MAX_TIMEOUT_MS} (got ${String(value)})`)
  }
}

/** Checks the options that do not depend on the body; throws the first problem. */
export function checkTriggerOptions (target: Target, options: TriggerOptions): void {
  checkMs('connectTimeoutMs', options.connectTimeoutMs)
  checkMs('ackTimeoutMs', options.ackTimeoutMs)
  const { body: _body, ...rest } = options
  assemble(target, rest, 'close')
}

/**
 * Fires one HTTP/1.1 request over a raw socket, the way PHP's `fsockopen()` does: connect, write
 * every byte and the FIN, and resolve without reading the response. Input is validated and the
 * bytes built before any connection is opened.
 */
export function trigger (url: string | URL, options: TriggerOptions = {}): Promise<TriggerResult> {
  const start = performance.now()
  let bytes: Buffer
  let target: Target
  try {
    checkMs('connectTimeoutMs', options.connectTimeoutMs)
    checkMs('ackTimeoutMs', options.ackTimeoutMs)
    target = parseTarget(url)
    bytes = assemble(target, options, 'close')
    if (options.signal?.aborted === true) {
      throw new AbortError('trigger aborted before connecting', { cause: options.signal.reason })
    }
  } catch (err) {
    return Promise.reject(err)
  }
  const where = describe(target)
  const ack = options.ack === true
  const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
  const ackTimeoutMs = options.ackTimeoutMs ?? ACK_TIMEOUT_MS
  const signal = options.signal

  return new Promise<TriggerResult>((resolve, reject) => {
    const socket: Socket = openSocket(target, options.tls)
    let phase: 'connect' | 'tls' | 'write' | 'ack' = 'connect'
    let connectMs = 0
    let remoteAddress = ''
    let remotePort = 0
    let status = ''
    let settled = false
    let timer: NodeJS.Timeout | undefined = setTimeout(onConnectTimeout, connectTimeoutMs)

    function settle (err: TriggerError | undefined, result?: TriggerResult): void {
      if (settled) return
      settled = true
      if (timer !== undefined) clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.destroy()
      if (err !== undefined) reject(err)
      else resolve(result as TriggerResult)
    }

    function result (statusCode?: number): TriggerResult {
      const r: TriggerResult = { bytes: bytes.length, connectMs, totalMs: performance.now() - start, remoteAddress, remotePort }
      if (statusCode !== undefined) r.status = statusCode
      return r
    }

    function onConnectTimeout (): void {
      timer = undefined
      settle(new ConnectTimeoutError(`Connect timeout (${where}, ${connectTimeoutMs} ms)`))
    }

    function onAckTimeout (): void {
      timer = undefined
      settle(new AckTimeoutError(`No status line within ${ackTimeoutMs} ms (${where})`))
    }

    function onAbort (): void {
      settle(new AbortError(`trigger aborted during ${phase} (${where})`, { cause: signal?.reason }))
    }

    function onTcpConnect (): void {
      remoteAddress = socket.remoteAddress ?? ''
      remotePort = socket.remotePort ?? 0
      if (target.tls) {
        phase = 'tls'
        return
      }
      onReady()
    }

    function onReady (): void {
      connectMs = performance.now() - start
      clearTimeout(timer)
      timer = undefined
      phase = 'write'
    }

    function onSocketError (err: Error): void {
      if (phase === 'connect') settle(new ConnectError(`Connect failed (${where}): ${err.message}`, { cause: err }))
      else if (phase === 'tls') settle(new TlsError(`TLS handshake failed (${where}): ${err.message}`, { cause: err }))
      else if (phase === 'write') settle(new WriteError(`Write failed (${where}): ${err.message}`, { cause: err }))
      else settle(new AckError(`Connection failed while waiting for the status line (${where}): ${err.message}`, { cause: err }))
    }

    function onWritten (err?: Error | null): void {
      if (err != null) return // 'error' reports it with the phase
      if (!ack) {
        settle(undefined, result())
        return
      }
      phase = 'ack'
      timer = setTimeout(onAckTimeout, ackTimeoutMs)
      socket.on('data', onSocketData)
      socket.once('end', onSocketEnd)
    }

    function onSocketData (chunk: Buffer): void {
      status += chunk.toString('latin1', 0, Math.min(chunk.length, MAX_STATUS_LINE_BYTES))
      const eol = status.indexOf('\n')
      if (eol === -1 && status.length < MAX_STATUS_LINE_BYTES) return
      const match = STATUS_LINE_RE.exec(eol === -1 ? status : status.slice(0, eol + 1))
      if (match === null) settle(new AckError(`Response does not start with an HTTP/1.x status line (${where})`))
      else settle(undefined, result(Number(match[1])))
    }

    function onSocketEnd (): void {
      settle(new AckError(`Connection closed before a status line (${where})`))
    }

    socket.once('connect', onTcpConnect)
    if (target.tls) socket.once('secureConnect', onReady)
    socket.on('error', onSocketError)
    signal?.addEventListener('abort', onAbort, { once: true })
    // Queued until the socket is connected; end() sends the FIN right after the last byte.
    if (ack) socket.write(bytes, onWritten)
    else socket.end(bytes, onWritten)
  })
}
