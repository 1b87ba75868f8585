// The synchronous fast path of trigger() (native/fire.c): connect, write and close in one call, as
// PHP's fsockopen() does, for plain-HTTP triggers without `ack` to a loopback IP literal or a Unix
// socket. There the handshake is the kernel's own work: the call returns in microseconds and the
// caller's event loop takes no turn per trigger. The addon is built at install (native/build.js);
// when it is missing, or RAWTRIGGER_NATIVE=0, every trigger takes node:net as before.
import { createRequire } from 'node:module'
import net, { isIPv4, isIPv6 } from 'node:net'
import { getSystemErrorName } from 'node:util'
import { ConnectError, WriteError, type TriggerError } from '../errors.ts'
import { describe } from './connect.ts'
import type { Target } from './request-bytes.ts'

/**
 * How long the call may wait for a loopback handshake, ms. The kernel usually completes it in
 * microseconds; a SYN dropped by a full accept queue is retransmitted only after a second, so the
 * call gives up, closes the socket (nothing was sent) and node:net connects again.
 */
export const CONNECT_BUDGET_MS = 1

/** Requests up to this size take the fast path: a loopback or Unix socket buffers them at once. */
export const MAX_NATIVE_REQUEST_BYTES = 65_536

// The addon's states (native/fire.c).
const DONE = 0
const DECLINED = 1
const PARTIAL = 2

/** [state, fd or errno, bytes written, connect ns] */
type NativeFire = (family: number, address: string, port: number, request: Buffer, budgetMs: number) => [number, number, number, number]

let fire: NativeFire | undefined
let loaded = false
let maxBytes = MAX_NATIVE_REQUEST_BYTES

function load (): NativeFire | undefined {
  loaded = true
  if (process.env.RAWTRIGGER_NATIVE === '0' || process.platform === 'win32') return undefined
  try {
    // The same relative path from src/net/ and dist/net/.
    const addon = createRequire(import.meta.url)('../../native/build/Release/rawtrigger_fire.node') as { fire?: unknown }
    return typeof addon.fire === 'function' ? addon.fire as NativeFire : undefined
  } catch {
    return undefined
  }
}

/** Whether the addon is loaded and enabled: what `RAWTRIGGER_NATIVE=0` and a failed build turn off. */
export function nativeAvailable (): boolean {
  if (!loaded) fire = load()
  return fire !== undefined
}

/**
 * For tests and benchmarks: turns the fast path off (false) or back on (true, when the addon
 * loads), optionally with another size limit (a test of the partial write raises it).
 */
export function useNative (enabled: boolean, maxRequestBytes = MAX_NATIVE_REQUEST_BYTES): void {
  fire = enabled ? load() : undefined
  loaded = true
  maxBytes = maxRequestBytes
}

/** The outcome of a fast-path call that did not decline. */
export type NativeOutcome =
  | { done: true, connectMs: number }
  /** Connected, `written` bytes sent, the rest would block: node:net finishes it on `socket`. */
  | { done: false, socket: net.Socket, written: number, connectMs: number }

/** 0 for a Unix socket, 4 or 6 for a loopback IP literal, -1 when the fast path does not apply. */
function familyOf (target: Target, socketPath: string | undefined): number {
  if (socketPath !== undefined) return 0
  if (!target.ip) return -1
  if (isIPv4(target.hostname)) return target.hostname.startsWith('127.') ? 4 : -1
  return isIPv6(target.hostname) && target.hostname === '::1' ? 6 : -1
}

/**
 * Fires the request on the fast path when it applies: `undefined` when it does not, or declined
 * (node:net then fires it; nothing was sent). Throws a {@link TriggerError} for a failed connect or
 * write, as node:net would report it.
 */
export function fireNative (target: Target, socketPath: string | undefined, request: Buffer): NativeOutcome | undefined {
  if (!nativeAvailable() || fire === undefined || target.tls || request.length > maxBytes) return undefined
  const family = familyOf(target, socketPath)
  if (family === -1) return undefined
  const [state, value, written, connectNs] = fire(family, socketPath ?? target.hostname, target.port, request, CONNECT_BUDGET_MS)
  const connectMs = connectNs / 1e6
  if (state === DONE) return { done: true, connectMs }
  if (state === DECLINED) return undefined
  if (state === PARTIAL) {
    const socket = new net.Socket({ fd: value, readable: false, writable: true })
    return { done: false, socket, written, connectMs }
  }
  const code = getSystemErrorName(-value)
  // A full Unix-socket backlog: node:net's path retries it with a backoff.
  if (code === 'EAGAIN' && family === 0 && connectNs === 0) return undefined
  throw failure(code, value, connectNs === 0, describe(target, socketPath), socketPath ?? target.hostname, socketPath === undefined ? target.port : undefined)
}

function failure (code: string, errno: number, connecting: boolean, where: string, address: string, port: number | undefined): TriggerError {
  const syscall = connecting ? 'connect' : 'write'
  const cause = Object.assign(new Error(`${syscall} ${code} ${port === undefined ? address : `${address}:${port}`}`), {
    errno: -errno, code, syscall, address, ...(port === undefined ? {} : { port }),
  })
  return connecting
    ? new ConnectError(`Connect failed (${where}): ${cause.message}`, { cause })
    : new WriteError(`Write failed (${where}): ${cause.message}`, { cause })
}
