// A raw TCP (or TLS) server that records exactly what arrived on each connection.
// Byte-exact HTTP is checked here, not through Node's HTTP parser (STYLE.md point 11).
import net from 'node:net'
import tls from 'node:tls'
import type { TestCert } from './tls-cert.ts'

/** One accepted connection and everything it received. */
export interface RawConnection {
  readonly index: number
  readonly socket: net.Socket
  /** Every byte received so far, in order. */
  readonly received: Buffer
  /** The peer's FIN arrived ('end'). */
  readonly ended: boolean
  /** The socket is closed. */
  readonly closed: boolean
  /** TLS only: the SNI name the client sent, or `false` when it sent none. */
  readonly servername: string | false | undefined
  /** Resolves once the socket has closed. */
  readonly whenClosed: Promise<void>
}

/** What a {@link RawServer} does once a request head (through the blank line) has arrived. */
export type OnHead = (connection: RawConnection) => void

export interface RawServerOptions {
  /** Address to listen on. @default '127.0.0.1' */
  host?: '127.0.0.1' | '::1'
  /** Written once the request head has arrived, then the socket is ended. @default never answer */
  answer?: string
  /** Called once the request head has arrived, instead of `answer`. */
  onHead?: OnHead
  /** Serve TLS with this certificate (connections are recorded after the handshake). */
  tls?: TestCert
}

export interface RawServer {
  /** `http://127.0.0.1:PORT/` (`https://` with `tls`, `[::1]` for IPv6). */
  readonly url: string
  readonly port: number
  /** Connections in the order they were accepted (after the handshake for TLS). */
  readonly connections: readonly RawConnection[]
  /** TCP connections accepted, TLS handshake or not. */
  readonly tcpConnections: number
  /** Most connections open at the same time, as seen by the server. */
  readonly maxOpen: number
  /** Resolves with connection `index` once it has been accepted. */
  connection (index: number): Promise<RawConnection>
  /** Resolves once `count` connections have closed. */
  closedCount (count: number): Promise<void>
  close (): Promise<void>
}

const HEAD_END = Buffer.from('\r\n\r\n')

/** Starts a recording server on port 0. Close it in `t.after()`. */
export async function startRawServer (options: RawServerOptions = {}): Promise<RawServer> {
  const host = options.host ?? '127.0.0.1'
  const connections: RawConnection[] = []
  const sockets = new Set<net.Socket>()
  const waiters = new Set<() => boolean>()
  let tcpConnections = 0
  let open = 0
  let maxOpen = 0
  let closed = 0

  function changed (): void {
    for (const waiter of waiters) if (waiter()) waiters.delete(waiter)
  }

  function until (done: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const waiter = (): boolean => {
        if (!done()) return false
        resolve()
        return true
      }
      if (!waiter()) waiters.add(waiter)
    })
  }

  function onConnection (socket: net.Socket): void {
    const chunks: Buffer[] = []
    let ended = false
    let isClosed = false
    let headSeen = false
    let markClosed!: () => void
    const whenClosed = new Promise<void>((resolve) => { markClosed = resolve })
    const connection: RawConnection = {
      index: connections.length,
      socket,
      get received () { return Buffer.concat(chunks) },
      get ended () { return ended },
      get closed () { return isClosed },
      servername: socket instanceof tls.TLSSocket ? (socket.servername ?? false) : undefined,
      whenClosed,
    }
    connections.push(connection)
    sockets.add(socket)
    open++
    maxOpen = Math.max(maxOpen, open)

    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      if (!headSeen && connection.received.includes(HEAD_END)) {
        headSeen = true
        if (options.onHead !== undefined) options.onHead(connection)
        else if (options.answer !== undefined) socket.end(options.answer)
      }
      changed()
    })
    socket.on('end', () => {
      ended = true
      changed()
    })
    // The client under test closes or resets whenever it likes (that is its job): a reset here is
    // expected, and what arrived before it is what the tests look at.
    socket.on('error', () => {})
    socket.on('close', () => {
      isClosed = true
      sockets.delete(socket)
      open--
      closed++
      markClosed()
      changed()
    })
    changed()
  }

  let server: net.Server
  if (options.tls === undefined) {
    server = net.createServer(onConnection)
  } else {
    server = tls.createServer({ key: options.tls.key, cert: options.tls.cert }, onConnection)
    // A client that refuses our certificate aborts the handshake: expected in the TLS tests.
    server.on('tlsClientError', () => {})
  }
  server.on('connection', (socket: net.Socket) => {
    tcpConnections++
    // Only a plain TCP socket is ours to destroy: under TLS this one carries the TLSSocket, and
    // destroying it underneath can crash Node (seen on Node 20: SIGSEGV, "wrong version number").
    if (options.tls === undefined) sockets.add(socket)
    changed()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as net.AddressInfo).port
  const scheme = options.tls === undefined ? 'http' : 'https'
  const url = host === '::1' ? `${scheme}://[::1]:${port}/` : `${scheme}://${host}:${port}/`

  return {
    url,
    port,
    connections,
    get tcpConnections () { return tcpConnections },
    get maxOpen () { return maxOpen },
    async connection (index) {
      await until(() => connections.length > index)
      return connections[index] as RawConnection
    },
    closedCount (count) {
      return until(() => closed >= count)
    },
    close () {
      for (const socket of sockets) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A port nothing listens on: bind one on port 0, then close it. */
export async function refusedPort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** An HTTP/1.1 request split into its parts, by a deliberately small parser of our own. */
export interface ParsedRequest {
  method: string
  target: string
  /** Header fields in order as [name, value] pairs (value as latin1, untrimmed). */
  headers: Array<[string, string]>
  body: Buffer
}

/** Splits request bytes at the first blank line; throws when there is none. */
export function parseRequest (bytes: Buffer): ParsedRequest {
  const end = bytes.indexOf(HEAD_END)
  if (end === -1) throw new Error('no blank line after the request head')
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n')
  const [method = '', target = '', version = ''] = (lines.shift() ?? '').split(' ')
  if (version !== 'HTTP/1.1') throw new Error(`not an HTTP/1.1 request line: ${method} ${target} ${version}`)
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new Error(`not a header field: ${JSON.stringify(line)}`)
    return [line.slice(0, colon), line.slice(colon + 1).replace(/^ /, '')]
  })
  return { method, target, headers, body: bytes.subarray(end + HEAD_END.length) }
}

/** All values of a header (case-insensitive name). */
export function headerValues (request: ParsedRequest, name: string): string[] {
  return request.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v)
}
