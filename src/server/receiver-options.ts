// The options of the receiver and the checks of them that run before anything starts.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ConfigError } from '../errors.ts'
import type { Logger, LogLevel } from '../log.ts'
import { checkSocketPath } from '../net/connect.ts'
import { secretKey, type Secret } from '../net/sign.ts'
import type { AnyJobHandler, JobHandler } from '../queue/handler.ts'
import type { JobQueue, JobStore } from '../queue/types.ts'
import { isLoopback } from './auth.ts'
import type { ReceiverPlugin } from './plugin.ts'

/** Options of {@link createReceiver}. */
export interface ReceiverOptions {
  /** @default 8080; 0 picks a free port */
  port?: number
  /** Bind address. A non-loopback address needs a `secret`. @default '127.0.0.1' */
  host?: string
  /**
   * Listen on this Unix-domain socket instead of `host` and `port` (which are then ignored). A
   * peer on it counts as local, like a loopback one. A stale file from a crash is replaced; a
   * socket another process listens on is refused with ConfigError. Removed on close.
   */
  socketPath?: string
  /** File mode of `socketPath`: who may connect. @default 0o660 (owner and group) */
  socketMode?: number
  /** Where jobs live: e.g. a BullMQ queue. One of `queue` and `store` is needed. Closed by `close()`. */
  queue?: JobQueue
  /** A leased job store run by rawtrigger's worker (SqliteStore). Closed by `close()`. */
  store?: JobStore
  /**
   * Every request to a `signed` route (/jobs*; the e-mail plugin's /suppressions and /bounces)
   * must carry a valid Standard Webhooks signature; /stats and the e-mail plugin's /mailbox answer
   * signed GETs from anywhere (and loopback). Without it, every route answers loopback peers
   * naming a loopback `Host` only. See the access table in server/access.ts.
   */
  secret?: Secret
  /** `GET /metrics` then needs `Authorization: Bearer <token>` (from any peer); without it, /metrics is loopback-only. */
  metricsToken?: string
  /** Job types by name: `POST /jobs/<name>`. */
  handlers?: Record<string, AnyJobHandler>
  /**
   * Job types with their routes, metrics and `/stats` fields (server/plugin.ts), e.g. the e-mail
   * type's `emailPlugin()`. A type registered twice (here or in `handlers`) is a ConfigError.
   */
  plugins?: readonly ReceiverPlugin[]
  /** Jobs run at once in this process; 0 stores only (another process works). @default 1 */
  concurrency?: number
  /** @default 1048576 (1 MiB) */
  maxBodyBytes?: number
  /** @default 5000 */
  headersTimeoutMs?: number
  /** @default 15000 */
  requestTimeoutMs?: number
  /** @default 5000 */
  keepAliveTimeoutMs?: number
  /** On close, how long running jobs may take before they are released. @default 10000 */
  graceMs?: number
  /** Lease of a running job. @default 30000 */
  leaseMs?: number
  /** Idle worker's look for due jobs. @default 500 */
  pollMs?: number
  /** Finished jobs older than this are deleted in the background, in small batches; 0 keeps them. @default 7 days */
  retainMs?: number
  /** How often retention runs. @default 60000 */
  retentionIntervalMs?: number
  /** Clock of the signature check, ms since the epoch: a `webhook-timestamp` over 5 min off it gets 401. @default Date.now */
  now?: () => number
  /** @default 'warn' */
  logLevel?: LogLevel
  /** A pino logger to use instead of one made from `logLevel`. */
  logger?: Logger
  /**
   * `llhttp`: `POST /jobs/:type` is parsed and answered on the connection itself, with Node's own
   * llhttp parser and one prepared write; every other request goes to node:http. `node`: every
   * request through node:http. `llhttp` falls back to `node` where this Node does not expose its
   * parser. @default 'llhttp'
   */
  intake?: 'llhttp' | 'node'
  /**
   * Routes tried first (the web page), after the access check, then the plugins' and the job
   * routes: a path missing from the access table needs a loopback peer and `Host`, or (with a
   * secret) a signed GET.
   * Return true when handled. With `intake: 'llhttp'` they never see a `POST /jobs/<type>`.
   */
  routes?: (req: IncomingMessage, res: ServerResponse) => boolean
}


function positiveInt (name: string, value: number | undefined, min: number): void {
  if (value !== undefined && (!Number.isInteger(value) || value < min)) {
    throw new ConfigError(`${name} must be an integer >= ${min} (got ${String(value)})`)
  }
}

/** The handlers of `handlers` and of the plugins by job type; a type registered twice throws ConfigError. */
export function jobTypes (options: ReceiverOptions): Map<string, JobHandler<unknown>> {
  const handlers = new Map(Object.entries(options.handlers ?? {})) as Map<string, JobHandler<unknown>>
  for (const plugin of options.plugins ?? []) {
    for (const [type, handler] of Object.entries(plugin.handlers ?? {})) {
      if (handlers.has(type)) throw new ConfigError(`job type ${type} is registered twice (again by plugin ${plugin.name})`)
      handlers.set(type, handler as JobHandler<unknown>)
    }
  }
  return handlers
}

/**
 * Throws {@link ConfigError} for options {@link createReceiver} would refuse: the port and limits,
 * a malformed secret, a non-loopback bind without a secret. `serve` calls it before it starts
 * anything else (the SMTP sink), so a bad configuration fails first and alone.
 */
export function checkReceiverOptions (options: ReceiverOptions): void {
  const host = options.host ?? '127.0.0.1'
  const secret = options.secret === '' ? undefined : options.secret
  positiveInt('port', options.port, 0)
  if (options.port !== undefined && options.port > 65_535) throw new ConfigError(`port must be an integer from 0 to 65535 (got ${options.port})`)
  positiveInt('concurrency', options.concurrency, 0)
  positiveInt('maxBodyBytes', options.maxBodyBytes, 1)
  jobTypes(options)
  if (secret !== undefined) secretKey(secret) // a bad secret fails here, not on the first request
  if (options.socketPath !== undefined) {
    try {
      checkSocketPath(options.socketPath)
    } catch (err) {
      throw new ConfigError((err as Error).message, { cause: err })
    }
  }
  const mode = options.socketMode
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o777)) {
    throw new ConfigError(`socketMode must be a file mode from 0 to 0o777 (got ${String(mode)})`)
  }
  // On a Unix socket host is not used; the socket file's mode decides who may connect.
  if (secret === undefined && options.socketPath === undefined && !isLoopback(host)) {
    throw new ConfigError(`refusing to listen on ${host} without a secret: anyone who can reach it could start jobs. Pass --secret (or TRIGGER_SECRET), or bind 127.0.0.1`)
  }
}

