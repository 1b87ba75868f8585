import type { Socket } from 'node:net'
import {
  AbortError,
  AckError,
  AckTimeoutError,
  ConnectError,
  ConnectTimeoutError,
  TlsError,
  TriggerError,
  WriteError,
} from '../errors.ts'
import { checkSocketPath, CONNECT_TIMEOUT_MS, describe, openSocket, type TlsOptions } from './connect.ts'
import { fireNative, type NativeOutcome } from './native-fire.ts'
import { assemble, parseTarget, type Target } from './request-bytes.ts'
import { checkMs, type TriggerOptions, type TriggerResult } from './trigger-options.ts'

export { checkTriggerOptions, type TriggerOptions, type TriggerResult } from './trigger-options.ts'

/** Waiting for the status line with `ack: true`, counted from the end of the write. */
export const ACK_TIMEOUT_MS = 5_000

// A Unix socket whose backlog is full fails connect() at once with EAGAIN, where TCP would
// retransmit the SYN; the connect is tried again after 1, 2, 4 … ms (at most this), within
// connectTimeoutMs. Seen with fireMany against a busy receiver on the same machine.
const MAX_UNIX_RETRY_DELAY_MS = 64
// A status line longer than this is not HTTP/1.x (RFC 9112 §4: "HTTP/1.1 NNN reason").
const MAX_STATUS_LINE_BYTES = 1_024
// With ack, the start of the response kept for the caller (`TriggerResult.response`).
const MAX_RESPONSE_BYTES = 16_384
const STATUS_LINE_RE = /^HTTP\/1\.[01] (\d{3})(?: |\r|$)/

// Per-call state lives on the socket under this symbol; the handlers below are defined once, so a
// trigger allocates no closures (measured: about a tenth of the caller's time went to them).
const STATE = Symbol('rawtrigger.trigger')

type Phase = 'connect' | 'tls' | 'write' | 'ack' | 'settled'

interface Fire {
  socket: Socket
  target: Target
  socketPath: string | undefined
  tls: TlsOptions | undefined
  start: number
  /** The request: kept to write it again on a new socket after a Unix socket's EAGAIN. */
  request: Buffer
  bytes: number
  ack: boolean
  connectTimeoutMs: number
  ackTimeoutMs: number
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  phase: Phase
  connectMs: number
  remoteAddress: string
  remotePort: number
  /** With ack: the response bytes so far, at most MAX_RESPONSE_BYTES. */
  response: Buffer | undefined
  timer: NodeJS.Timeout | undefined
  /** EAGAIN connects so far (Unix sockets only), and the timer of the next try. */
  retries: number
  retryTimer: NodeJS.Timeout | undefined
  resolve: (r: TriggerResult) => void
  reject: (e: unknown) => void
}

type Owned = Socket & { [STATE]: Fire }

function settle (f: Fire, err: TriggerError | undefined, status?: number): void {
  if (f.phase === 'settled') return
  f.phase = 'settled'
  if (f.timer !== undefined) clearTimeout(f.timer)
  if (f.retryTimer !== undefined) clearTimeout(f.retryTimer)
  if (f.onAbort !== undefined) f.signal?.removeEventListener('abort', f.onAbort)
  f.socket.destroy()
  if (err !== undefined) {
    f.reject(err)
    return
  }
  const r: TriggerResult = { bytes: f.bytes, connectMs: f.connectMs, totalMs: performance.now() - f.start, remoteAddress: f.remoteAddress, remotePort: f.remotePort }
  if (status !== undefined) {
    r.status = status
    r.response = (f.response as Buffer).toString('utf8')
  }
  f.resolve(r)
}

function onConnectTimeout (f: Fire): void {
  f.timer = undefined
  settle(f, new ConnectTimeoutError(`Connect timeout (${describe(f.target, f.socketPath)}, ${f.connectTimeoutMs} ms)`))
}

function onAckTimeout (f: Fire): void {
  f.timer = undefined
  settle(f, new AckTimeoutError(`No status line within ${f.ackTimeoutMs} ms (${describe(f.target, f.socketPath)})`))
}

function onTcpConnect (this: Owned): void {
  const f = this[STATE]
  if (f.remoteAddress === '') { // a host name: ask the socket where it went
    f.remoteAddress = this.remoteAddress ?? ''
    f.remotePort = this.remotePort ?? 0
  }
  if (f.target.tls) f.phase = 'tls'
  else onReady.call(this)
}

function onReady (this: Owned): void {
  const f = this[STATE]
  f.connectMs = performance.now() - f.start
  clearTimeout(f.timer)
  f.timer = undefined
  f.phase = 'write'
}

function onRetry (f: Fire): void {
  f.retryTimer = undefined
  if (f.phase === 'connect') launch(f)
}

function onSocketError (this: Owned, err: Error): void {
  const f = this[STATE]
  if (f.phase === 'connect' && f.socketPath !== undefined && (err as NodeJS.ErrnoException).code === 'EAGAIN' && this === f.socket) {
    this.destroy()
    f.retryTimer = setTimeout(onRetry, Math.min(2 ** f.retries++, MAX_UNIX_RETRY_DELAY_MS), f)
    return
  }
  const where = describe(f.target, f.socketPath)
  if (f.phase === 'connect') settle(f, new ConnectError(`Connect failed (${where}): ${err.message}`, { cause: err }))
  else if (f.phase === 'tls') settle(f, new TlsError(`TLS handshake failed (${where}): ${err.message}`, { cause: err }))
  else if (f.phase === 'write') settle(f, new WriteError(`Write failed (${where}): ${err.message}`, { cause: err }))
  else settle(f, new AckError(`Connection failed while waiting for the status line (${where}): ${err.message}`, { cause: err }))
}

function onWritten (this: Owned, err?: Error | null): void {
  if (err != null) return // 'error' reports it with the phase
  const f = this[STATE]
  if (!f.ack) {
    settle(f, undefined)
    return
  }
  if (f.phase === 'settled') return // an early answer, an abort: the write ended after the result
  f.phase = 'ack'
  f.timer = setTimeout(onAckTimeout, f.ackTimeoutMs, f)
  this.once('end', onSocketEnd)
}

// Ack mode only, from the first byte written on: a server may answer before it has read the whole
// request (RFC 9110 §15: an early 413) and then close, which fails the rest of the write with
// EPIPE or ECONNRESET. Reading while writing makes that answer the result instead of a WriteError.
function onSocketData (this: Owned, chunk: Buffer): void {
  const f = this[STATE]
  const had = f.response === undefined ? 0 : f.response.length
  if (had < MAX_RESPONSE_BYTES) {
    const part = chunk.length > MAX_RESPONSE_BYTES - had ? chunk.subarray(0, MAX_RESPONSE_BYTES - had) : chunk
    f.response = f.response === undefined ? Buffer.from(part) : Buffer.concat([f.response, part])
  }
  const head = f.response as Buffer
  const eol = head.indexOf(0x0a)
  if (eol === -1 && head.length < MAX_STATUS_LINE_BYTES) return
  const match = STATUS_LINE_RE.exec(head.toString('latin1', 0, eol === -1 ? MAX_STATUS_LINE_BYTES : Math.min(eol + 1, MAX_STATUS_LINE_BYTES)))
  if (match === null) settle(f, new AckError(`Response does not start with an HTTP/1.x status line (${describe(f.target, f.socketPath)})`))
  else settle(f, undefined, Number(match[1]))
}

function onSocketEnd (this: Owned): void {
  settle(this[STATE], new AckError(`Connection closed before a status line (${describe(this[STATE].target, this[STATE].socketPath)})`))
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
  let fast: NativeOutcome | undefined
  try {
    checkMs('connectTimeoutMs', options.connectTimeoutMs)
    checkMs('ackTimeoutMs', options.ackTimeoutMs)
    checkSocketPath(options.socketPath)
    target = cachedTarget(url)
    bytes = assemble(target, options, 'close')
    if (options.signal?.aborted === true) {
      throw new AbortError('trigger aborted before connecting', { cause: options.signal.reason })
    }
    if (options.ack !== true) fast = fireNative(target, options.socketPath, bytes)
  } catch (err) {
    return Promise.reject(err)
  }
  const { socketPath } = options
  // An IP literal (or a socket path) is where the socket goes: no getpeername() call needed.
  const remoteAddress = socketPath ?? (target.ip ? target.hostname : '')
  const remotePort = socketPath === undefined && target.ip ? target.port : 0
  if (fast?.done === true) {
    return Promise.resolve({ bytes: bytes.length, connectMs: fast.connectMs, totalMs: performance.now() - start, remoteAddress, remotePort })
  }
  return new Promise<TriggerResult>((resolve, reject) => {
    const connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
    const f: Fire = {
      socket: undefined as unknown as Socket, // set by launch() below
      target, socketPath, tls: options.tls, start, request: bytes, bytes: bytes.length, ack: options.ack === true, connectTimeoutMs,
      ackTimeoutMs: options.ackTimeoutMs ?? ACK_TIMEOUT_MS, signal: options.signal, onAbort: undefined,
      phase: 'connect', connectMs: 0,
      remoteAddress, remotePort,
      response: undefined, timer: undefined, retries: 0, retryTimer: undefined, resolve, reject,
    }
    if (fast !== undefined) {
      finish(f, fast.socket, fast.written, fast.connectMs)
      return
    }
    f.timer = setTimeout(onConnectTimeout, connectTimeoutMs, f)
    if (f.signal !== undefined) {
      f.onAbort = () => settle(f, new AbortError(`trigger aborted during ${f.phase} (${describe(target, socketPath)})`, { cause: f.signal?.reason }))
      f.signal.addEventListener('abort', f.onAbort, { once: true })
    }
    launch(f)
  })
}

/** Opens the socket and queues the request on it: at the start, and again after a Unix socket's EAGAIN. */
function launch (f: Fire): void {
  const socket = openSocket(f.target, f.tls, f.socketPath) as Owned
  f.socket = socket
  socket[STATE] = f
  socket.once('connect', onTcpConnect)
  if (f.target.tls) socket.once('secureConnect', onReady)
  socket.on('error', onSocketError)
  // Queued until the socket is connected; end() sends the FIN right after the last byte.
  // Ack mode does not half-close first, so servers that treat a FIN as an abort still answer.
  if (f.ack) {
    socket.on('data', onSocketData)
    socket.write(f.request, (err) => onWritten.call(socket, err))
  } else {
    socket.once('finish', onWritten) // = end()'s callback, without a closure
    socket.end(f.request)
  }
}

/** Writes the rest of a request the fast path connected and began (its socket buffer was full). */
function finish (f: Fire, socket: Socket, written: number, connectMs: number): void {
  const owned = socket as Owned
  f.socket = owned
  owned[STATE] = f
  f.phase = 'write'
  f.connectMs = connectMs
  owned.on('error', onSocketError)
  owned.once('finish', onWritten)
  owned.end(f.request.subarray(written))
}

// Parsed URLs of recent string targets: most callers fire at one or a few endpoints.
const TARGETS = new Map<string, Target>()
const TARGETS_MAX = 64

function cachedTarget (url: string | URL): Target {
  if (typeof url !== 'string') return parseTarget(url)
  let target = TARGETS.get(url)
  if (target === undefined) {
    target = parseTarget(url)
    if (TARGETS.size >= TARGETS_MAX) TARGETS.delete(TARGETS.keys().next().value as string)
    TARGETS.set(url, target)
  }
  return target
}
