import { isIP, type Server, type Socket } from 'node:net'
import { ForbiddenError, TriggerError, UnauthorizedError } from '../errors.ts'
import { verify, type HeaderSource, type Secret, type VerifiedMessage } from '../net/sign.ts'

const peers = new WeakMap<Socket, string>()

/**
 * The peer of a connection accepted on a Unix-domain socket (`serve --socket`): a process on this
 * machine that the socket file's mode let in, so local like a loopback peer.
 */
export const UNIX_PEER = 'unix'

/** The socket was accepted by a server listening on a Unix-domain socket (its address is a path). */
function onUnixSocket (socket: Socket): boolean {
  return typeof (socket as Socket & { server?: Server }).server?.address() === 'string'
}

/** Per server: the loopback address it is bound to, or '' when it is bound to another (or none). */
const boundLoopback = new WeakMap<Server, string>()
/** Sockets accepted by a server bound to a loopback address, with that address. */
const onLoopback = new WeakMap<Socket, string>()

/**
 * Remembers the peer address at accept time: once a client has reset the connection,
 * `socket.remoteAddress` is undefined, but its complete request must still be judged. A server
 * bound to a loopback address has only loopback peers: it asks for none at accept (getpeername
 * is a system call per connection); a peer's address is asked for when a log line wants it.
 */
export function rememberPeer (socket: Socket): void {
  const server = (socket as Socket & { server?: Server }).server
  if (server !== undefined) {
    let bound = boundLoopback.get(server)
    if (bound === undefined) {
      const address = server.address()
      boundLoopback.set(server, bound = typeof address === 'object' && address !== null && isLoopback(address.address) ? address.address : '')
    }
    if (bound !== '') {
      onLoopback.set(socket, bound)
      return
    }
  }
  // A client that reset before the accept leaves no remote address; a connection accepted on a
  // loopback address can only come from loopback, so the local address stands in for it. A Unix
  // socket peer has no address at all: asked only then, so TCP accepts pay nothing for it.
  const address = socket.remoteAddress ??
    (isLoopback(socket.localAddress) ? socket.localAddress : onUnixSocket(socket) ? UNIX_PEER : undefined)
  if (address !== undefined) peers.set(socket, address)
}

/** A loopback peer, or one on a Unix-domain socket ({@link UNIX_PEER}). */
export function isLocalPeer (peer: string | undefined): boolean {
  return peer === UNIX_PEER || isLoopback(peer)
}

/** The socket's peer is on this machine: accepted on a loopback-bound server, or a local {@link peerOf}. */
export function isLocalSocket (socket: Socket): boolean {
  return onLoopback.has(socket) || isLocalPeer(peerOf(socket))
}

/** The peer address of a socket, as seen when it was accepted (on a loopback-bound server: asked now, the bound address once the peer has reset). */
export function peerOf (socket: Socket): string | undefined {
  return peers.get(socket) ?? socket.remoteAddress ?? onLoopback.get(socket)
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback (address: string | undefined): boolean {
  if (address === undefined) return false
  if (address === '::1' || address === 'localhost') return true
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address
  return isIP(v4) === 4 && v4.startsWith('127.')
}

/** Throws {@link ForbiddenError} when no secret is set and the peer is neither on loopback nor on a Unix socket. */
export function checkPeer (secret: Secret | undefined, peer: string | undefined): void {
  if (secret === undefined && !isLocalPeer(peer)) {
    throw new ForbiddenError(`unsigned requests are accepted from loopback only (peer ${peer ?? 'unknown'}); start serve with --secret`)
  }
}

/**
 * Verifies the Standard Webhooks signature against the clock `now` (ms, like Date.now); throws
 * {@link UnauthorizedError} with the reason on `cause`.
 */
export function checkSignature (secret: Secret, body: Uint8Array | string, headers: HeaderSource, now: () => number = Date.now): VerifiedMessage {
  try {
    return verify(secret, body, headers, { now: Math.floor(now() / 1000) })
  } catch (err) {
    const code = err instanceof TriggerError ? err.code : 'RT_ERR_SIGNATURE_MISMATCH'
    throw new UnauthorizedError(`${code}: ${(err as Error).message}`, { cause: err })
  }
}
