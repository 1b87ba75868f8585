import { InvalidOptionError } from '../errors.ts'
import { checkSocketPath, type TlsOptions } from './connect.ts'
import { assemble, type RequestOptions, type Target } from './request-bytes.ts'

/** Options of {@link trigger}. */
export interface TriggerOptions extends RequestOptions {
  /** Limit for the TCP connect, and the TLS handshake for https. @default 5000 */
  connectTimeoutMs?: number
  /**
   * `false`: write the request and the FIN, never read the response.
   * `true`: write the request, wait for the status line, then close; the result has `status` and
   * `response`. Ack mode does not half-close before the answer, so it works with any HTTP server,
   * and it reads while writing: an early answer (a 413 before the whole body was sent) is the result.
   * @default false
   */
  ack?: boolean
  /** Limit for the status line with `ack: true`, counted from the end of the write. @default 5000 */
  ackTimeoutMs?: number
  /** TLS options for https (`ca`, `rejectUnauthorized`, `cert`, `key`, …). */
  tls?: TlsOptions
  /**
   * Connect to this Unix-domain socket instead of the URL's host and port, as PHP's
   * `fsockopen('unix:///…')` and Node's `http.request({ socketPath })` do. The URL still gives the
   * path, the `Host` header and the scheme (https: TLS over the socket). No TCP: no port is used
   * and none is left in TIME_WAIT. At most 107 bytes on Linux (103 elsewhere).
   * @default undefined (TCP to the URL's host and port)
   */
  socketPath?: string
  /** Aborts the connect, the write and the wait for the ack. */
  signal?: AbortSignal
}

/** What one trigger did. Times are milliseconds from the call. */
export interface TriggerResult {
  /** Bytes of the request, head and body (all written, unless an ack answer came first). */
  bytes: number
  /** Until the connection was ready (TLS included). */
  connectMs: number
  /** Until the caller was released: the last byte handed to the kernel (or the status line read). */
  totalMs: number
  /** The peer's IP address; with `socketPath`, the socket's path. */
  remoteAddress: string
  /** The peer's port; 0 with `socketPath`. */
  remotePort: number
  /** The response status, with `ack: true` only. */
  status?: number
  /**
   * With `ack: true` only: the response as far as it had arrived with the status line — the head
   * and, when it came in the same reads (a small answer does), the body — as UTF-8, at most 16 KiB.
   * Nothing beyond the status line is waited for.
   */
  response?: string
}

// Node's timers hold 32-bit signed milliseconds; a larger delay fires after 1 ms.
const MAX_TIMEOUT_MS = 2 ** 31 - 1

export function checkMs (name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || value > MAX_TIMEOUT_MS)) {
    throw new InvalidOptionError(`${name} must be an integer of milliseconds from 1 to ${MAX_TIMEOUT_MS} (got ${String(value)})`)
  }
}

/** Checks the options that do not depend on the body; throws the first problem. */
export function checkTriggerOptions (target: Target, options: TriggerOptions): void {
  checkMs('connectTimeoutMs', options.connectTimeoutMs)
  checkMs('ackTimeoutMs', options.ackTimeoutMs)
  checkSocketPath(options.socketPath)
  const { body: _body, ...rest } = options
  assemble(target, rest, 'close')
}
