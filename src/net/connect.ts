import net, { type Socket } from 'node:net'
import type { ConnectionOptions } from 'node:tls'
import { lazyRequire } from '../lazy-require.ts'
import { InvalidOptionError } from '../errors.ts'
import type { Target } from './request-bytes.ts'

/** node:tls, loaded by the first https:// trigger: an http:// caller's import pays nothing for it. */
const tls = lazyRequire<typeof import('node:tls')>('node:tls')

/** TCP handshake, plus the TLS handshake for https. */
export const CONNECT_TIMEOUT_MS = 5_000

/**
 * Longest Unix-domain socket path, in bytes: `sun_path` holds 108 bytes on Linux and 104 on the
 * BSDs and macOS, NUL included. Checked up front: libuv truncates a longer path and the connect
 * then fails with a misleading ENOENT.
 */
export const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103

/** TLS options passed through to `tls.connect` (`servername` is ours: SNI only for host names). */
export type TlsOptions = Omit<ConnectionOptions, 'host' | 'port' | 'socket' | 'servername' | 'path'>

/** Throws {@link InvalidOptionError} unless `socketPath` is undefined or a usable Unix socket path. */
export function checkSocketPath (socketPath: unknown): void {
  if (socketPath === undefined) return
  if (typeof socketPath !== 'string' || socketPath === '') {
    throw new InvalidOptionError(`socketPath must be a non-empty string (got ${JSON.stringify(socketPath)})`)
  }
  if (socketPath.includes('\0')) throw new InvalidOptionError('socketPath must not contain NUL bytes')
  const bytes = Buffer.byteLength(socketPath)
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new InvalidOptionError(`socketPath must be at most ${MAX_SOCKET_PATH_BYTES} bytes (got ${bytes}: ${socketPath})`)
  }
}

/**
 * Opens a TCP or TLS socket to the target, or to the Unix-domain socket `socketPath` when given
 * (the target then gives only the scheme, the path and `Host`). Writes may be queued at once: the
 * socket buffers them until it is connected, which saves an event-loop turn per trigger.
 * SNI (`servername`) is set only for host names, never for IP literals (RFC 6066 §3).
 */
export function openSocket (target: Target, tlsOptions: TlsOptions | undefined, socketPath?: string): Socket {
  // No setNoDelay: one write then the FIN, and Nagle never holds back a first segment.
  if (!target.tls) return socketPath === undefined ? net.connect({ host: target.hostname, port: target.port }) : net.connect({ path: socketPath })
  const options: ConnectionOptions = socketPath === undefined
    ? { ...tlsOptions, host: target.hostname, port: target.port }
    : { ...tlsOptions, path: socketPath }
  if (!target.ip) options.servername = target.hostname
  return tls().connect(options)
}

/** `host:port` for messages, IPv6 in brackets; `unix:/path` for a Unix-domain socket. */
export function describe (target: Target, socketPath?: string): string {
  if (socketPath !== undefined) return `unix:${socketPath}`
  return target.hostname.includes(':') ? `[${target.hostname}]:${target.port}` : `${target.hostname}:${target.port}`
}
