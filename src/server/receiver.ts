import http, { type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { BadRequestError, ConfigError, NotFoundError, RequestTimeoutError } from '../errors.ts'
import { createLogger, type Logger } from '../log.ts'
import { StoreQueue } from '../queue/store-queue.ts'
import type { JobQueue } from '../queue/types.ts'
import { ACCESS_TABLE, accessTable, checkAccess, type Access, type AccessConfig } from './access.ts'
import { rememberPeer } from './auth.ts'
import { trackRequests } from './in-flight.ts'
import { createMetrics, type Metrics } from './metrics.ts'
import { isLingering, rawErrorResponse, sendError } from './respond.ts'
import { createRefusalLog } from './refusal-log.ts'
import { countRawRefusal, reject, type IntakeCounters, type RouteContext } from './route-context.ts'
import { route } from './routes.ts'
import { startRetention } from './retention.ts'
import { claimSocketPath, listenOnSocket, SOCKET_MODE } from './unix-socket.ts'
import { installIntake } from './llhttp-intake.ts'
import { plugIn } from './plugin.ts'
import { checkReceiverOptions, jobTypes, type ReceiverOptions } from './receiver-options.ts'

export { checkReceiverOptions, type ReceiverOptions } from './receiver-options.ts'

/** Largest accepted body. */
export const MAX_BODY_BYTES = 1024 * 1024
/** Slowloris guard: all headers must arrive within this. */
export const HEADERS_TIMEOUT_MS = 5_000
/** The whole request, headers and body, must arrive within this. */
export const REQUEST_TIMEOUT_MS = 15_000
/** An idle keep-alive connection is closed after this. */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000
/** How often Node checks the two request timeouts above (its default, 30 s, is too coarse). */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000
/** Pending connections the kernel queues before accept (capped by net.core.somaxconn). */
const LISTEN_BACKLOG = 4_096
/** Finished jobs are deleted after this (7 days). */
export const RETAIN_MS = 7 * 24 * 3600 * 1000
/** How often retention looks for old jobs. */
const RETENTION_INTERVAL_MS = 60_000
/** Running jobs get this long to finish on stop before they are handed back to the queue. */
export const GRACE_MS = 10_000

/** A running receiver. */
export interface Receiver {
  /** `http://host:port`, IPv6 in brackets; `http://localhost` on a Unix socket (the `Host` to send). */
  url: string
  /** The TCP port; 0 on a Unix socket. */
  port: number
  /** The Unix-domain socket it listens on, when `socketPath` was given. */
  socketPath?: string
  server: Server
  queue: JobQueue
  counters: IntakeCounters
  metrics: Metrics
  log: Logger
  /** Stops accepting (503 on open connections), lets running jobs finish within `graceMs`, releases the rest, closes the store. */
  close (): Promise<void>
}

/**
 * Starts the receiver: an HTTP server that keeps every completely sent request even when the client
 * has already hung up (FIN or RST after the last byte), stores jobs durably before answering 202,
 * and runs them afterwards from the store, independent of any request.
 */
export async function createReceiver (options: ReceiverOptions = {}): Promise<Receiver> {
  checkReceiverOptions(options)
  const host = options.host ?? '127.0.0.1'
  const secret = options.secret === '' ? undefined : options.secret
  const log = options.logger ?? createLogger(options.logLevel ?? 'warn')
  const plugins = options.plugins ?? []
  const handlers = jobTypes(options)
  const queue = options.queue ?? (options.store === undefined ? undefined : new StoreQueue(options.store))
  if (queue === undefined) throw new ConfigError('a receiver needs a queue or a store (the package\'s createReceiver opens SQLite under dataDir)')
  const counters: IntakeCounters = { accepted: 0, duplicates: 0, rejected: 0 }
  const metrics = createMetrics(queue)
  const plugged = plugIn(plugins, { queue, registry: metrics.registry, log })
  let stopping = false
  const access: AccessConfig = {
    secret, metricsToken: options.metricsToken === '' ? undefined : options.metricsToken, now: options.now ?? Date.now,
    ruleFor: accessTable([...ACCESS_TABLE, ...plugins.flatMap((p) => p.access ?? [])]),
  }
  const ctx: RouteContext = {
    queue, handlers, access, log, counters, metrics, noteRefusal: createRefusalLog(log), extraStats: plugged.stats,
    maxBodyBytes: options.maxBodyBytes ?? MAX_BODY_BYTES,
    isStopping: () => stopping,
  }

  const timeouts = {
    headersTimeoutMs: options.headersTimeoutMs ?? HEADERS_TIMEOUT_MS,
    requestTimeoutMs: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? KEEP_ALIVE_TIMEOUT_MS,
  }
  const server = http.createServer({
    headersTimeout: timeouts.headersTimeoutMs,
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
    // Checked below instead, so the 400 carries the JSON error body like every other refusal.
    requireHostHeader: false,
  }, (req, res) => {
    if (stopping) res.setHeader('Connection', 'close')
    if (req.httpVersionMinor === 1 && req.headers.host === undefined) {
      reject(ctx, res, new BadRequestError('HTTP/1.1 request without a Host header (RFC 9112 §3.2)'), true)
      return
    }
    const path = (req.url ?? '/').split('?', 1)[0] as string
    let allowed: Access
    try {
      allowed = checkAccess(access, req, path)
    } catch (err) {
      reject(ctx, res, err, true) // the body, if any, is not read
      return
    }
    if (options.routes?.(req, res) === true || plugged.route(ctx, req, res, path, allowed)) return
    if (!route(ctx, req, res, path, allowed)) sendError(res, new NotFoundError(`no route for ${req.method ?? ''} ${req.url ?? ''}`))
  })
  // The trap this project exists to avoid: with the default (false), Node ends the connection on
  // the client's FIN and destroys a request whose handler has not read the body yet. With true,
  // the response is still written and the socket closed after it.
  ;(server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true
  const inFlight = trackRequests(server)
  const intake = options.intake === 'node' ? undefined : installIntake(server, ctx, inFlight, { ...timeouts, checkIntervalMs: TIMEOUT_CHECK_INTERVAL_MS })
  server.on('connection', rememberPeer)
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // An early answer is out and the refused body still arrives: dropped until the linger ends.
    if (isLingering(socket)) return
    // A client that is gone (fire-and-forget triggers hang up at once) is normal: nothing to answer.
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable) {
      socket.destroy()
      return
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    const refusal = status === 408 ? new RequestTimeoutError(err.message) : new BadRequestError(err.message)
    countRawRefusal(ctx, status, refusal)
    socket.end(rawErrorResponse(status, refusal.code, err.message))
  })

  const { socketPath } = options
  // Fire-and-forget senders arrive in bursts and hang up at once: Node's default backlog (511)
  // overflowed under fireMany (the kernel drops the SYN and the sender waits a second).
  await (socketPath === undefined
    ? new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ port: options.port ?? 8080, host, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', reject)
        resolve()
      })
    })
    : claimSocketPath(socketPath).then(() => listenOnSocket(server, socketPath, options.socketMode ?? SOCKET_MODE, LISTEN_BACKLOG))
  ).catch(async (err: unknown) => {
    await queue.close()
    if (err instanceof ConfigError) throw err
    const where = socketPath === undefined ? `${host}:${options.port ?? 8080}` : `unix:${socketPath}`
    throw new ConfigError(`cannot listen on ${where}: ${(err as Error).message}`, { cause: err })
  })
  const port = socketPath === undefined ? (server.address() as AddressInfo).port : 0
  const retention = startRetention(queue, options.retainMs ?? RETAIN_MS, options.retentionIntervalMs ?? RETENTION_INTERVAL_MS, log)
  queue.start({
    handlers, log, concurrency: options.concurrency ?? 1, observe: plugged.observe,
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
  })

  let closing: Promise<void> | undefined
  return {
    url: socketPath === undefined ? `http://${host.includes(':') ? `[${host}]` : host}:${port}` : 'http://localhost',
    ...(socketPath === undefined ? {} : { socketPath }),
    port, server, queue, counters, metrics, log,
    close () {
      closing ??= (async () => {
        stopping = true
        clearInterval(retention)
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        server.closeIdleConnections()
        intake?.closeIdle()
        const graceMs = options.graceMs ?? GRACE_MS
        await Promise.all([queue.stop(graceMs), inFlight.settled(graceMs)])
        server.closeAllConnections()
        intake?.closeAll()
        await closed
        await queue.close()
      })()
      return closing
    },
  }
}
