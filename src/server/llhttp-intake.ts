// Puts the llhttp intake (intake-connection.ts) in front of a node:http server: every accepted
// connection starts on the intake, which hands it to node:http's own connection listener at the
// first request that is not a `POST /jobs/:type`. The server keeps listening, closing and
// counting its connections as before.
import { maxHeaderSize, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type { InFlight } from './in-flight.ts'
import { IntakeConnection, type IntakeConfig } from './intake-connection.ts'
import { loadLlhttp } from './llhttp.ts'
import type { RouteContext } from './route-context.ts'

/** The intake's connections, for a stop. */
export interface Intake {
  /** Closes the connections with no request in progress and no answer waiting. */
  closeIdle (): void
  /** Closes every connection still on the intake. */
  closeAll (): void
}

/** Options of {@link installIntake}: the timeouts node:http would apply. */
export interface IntakeOptions {
  headersTimeoutMs: number
  requestTimeoutMs: number
  keepAliveTimeoutMs: number
  /** How often the timeouts are checked. */
  checkIntervalMs: number
}

/**
 * Installs the intake on `server` (before it listens). Undefined when this Node does not expose
 * llhttp as expected (see llhttp.ts): the server then serves every request itself.
 */
export function installIntake (server: Server, ctx: RouteContext, inFlight: InFlight, options: IntakeOptions): Intake | undefined {
  const llhttp = loadLlhttp()
  const [nodeListener, ...others] = server.listeners('connection') as Array<(socket: Socket) => void>
  if (llhttp === undefined || nodeListener === undefined || others.length > 0) return undefined
  server.removeListener('connection', nodeListener)
  const connections = new Set<IntakeConnection>()
  const cfg: IntakeConfig = {
    ctx, llhttp, inFlight, maxHeaderSize, ...options,
    handOff: (socket) => nodeListener.call(server, socket),
    // At once: a connection kept until the next check would outlive young-generation GCs, its socket with it.
    gone: (connection) => connections.delete(connection),
  }
  server.on('connection', (socket: Socket) => {
    connections.add(new IntakeConnection(socket, cfg))
  })
  const timer = setInterval(() => {
    const now = Date.now()
    for (const connection of connections) connection.check(now)
  }, options.checkIntervalMs)
  timer.unref()
  server.once('close', () => clearInterval(timer))
  return {
    closeIdle () {
      for (const connection of connections) if (connection.idle) connection.destroy()
    },
    closeAll () {
      for (const connection of connections) connection.destroy()
    },
  }
}
