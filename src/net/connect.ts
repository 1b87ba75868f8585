import net, { type Socket } from 'node:net'
import tls, { type ConnectionOptions } from 'node:tls'
import type { Target } from './request-bytes.ts'

/** TCP handshake, plus the TLS handshake for https. */
export const CONNECT_TIMEOUT_MS = 5_000

/** TLS options passed through to `tls.connect` (`servername` is ours: SNI only for host names). */
export type TlsOptions = Omit<ConnectionOptions, 'host' | 'port' | 'socket' | 'servername' | 'path'>

/**
 * Opens a TCP or TLS socket to the target. Writes may be queued at once: the socket buffers them
 * until it is connected, which saves an event-loop turn per trigger.
 * SNI (`servername`) is set only for host names, never for IP literals (RFC 6066 §3).
 */
export function openSocket (target: Target, tlsOptions: TlsOptions | undefined): Socket {
  // No setNoDelay: one write then the FIN, and Nagle never holds back a first segment.
  if (!target.tls) return net.connect({ host: target.hostname, port: target.port })
  const options: ConnectionOptions = { ...tlsOptions, host: target.hostname, port: target.port }
  if (!target.ip) options.servername = target.hostname
  return tls.connect(options)
}

/** `host:port` for messages, IPv6 in brackets. */
export function describe (target: Target): string {
  return target.hostname.includes(':') ? `[${target.hostname}]:${target.port}` : `${target.hostname}:${target.port}`
}
