import { timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { ForbiddenError, UnauthorizedError } from '../errors.ts'
import type { Secret } from '../net/sign.ts'
import { checkSignature, isLocalSocket, isLoopback, peerOf } from './auth.ts'

/**
 * Who may use a route.
 * - `open`: anyone (`/healthz` says nothing but "up").
 * - `signed`: with a secret, a Standard Webhooks signature over the body decides; without one, `local`.
 * - `local`: a loopback peer naming a loopback `Host`, and for state-changing methods no foreign
 *   `Origin` — whatever the secret (the page has no login).
 * - `local-or-signed`: `local`, or with a secret a signed GET from anywhere (signed over an empty body).
 * - `metrics`: `Authorization: Bearer <metricsToken>` when a token is set, else `local`.
 *
 * Without a secret every rule also means `local`: the receiver then binds loopback only, and a
 * loopback `Host` is what stops a DNS-rebinding page (it names its own host) from using it.
 */
export type AccessRule = 'open' | 'signed' | 'local' | 'local-or-signed' | 'metrics'

/** One row of the access table: a path (exact, or a pattern) and its rule. */
export interface RouteAccess {
  path: string | RegExp
  rule: AccessRule
}

/**
 * The receiver's own routes and the page's, with their rules. A plugin adds rows for its routes
 * (server/plugin.ts; the e-mail plugin's /suppressions, /bounces, /mailbox); the receiver joins
 * them into one table ({@link accessTable}). A path that is in no row gets {@link DEFAULT_RULE}: a
 * route added later is never open by omission.
 */
export const ACCESS_TABLE: readonly RouteAccess[] = [
  { path: '/healthz', rule: 'open' },
  { path: '/metrics', rule: 'metrics' },
  { path: '/stats', rule: 'local-or-signed' },
  { path: '/jobs', rule: 'signed' },
  { path: /^\/jobs\//, rule: 'signed' },
  { path: '/', rule: 'local' },
  { path: /^\/static\//, rule: 'local' },
  { path: '/campaigns', rule: 'local' },
  { path: /^\/campaigns\//, rule: 'local' },
]

/** The rule of a path in no row of the table. */
export const DEFAULT_RULE: AccessRule = 'local-or-signed'

/** The rule of each path under `rows`: an exact row first, then the first pattern that matches, else {@link DEFAULT_RULE}. */
export function accessTable (rows: readonly RouteAccess[]): (path: string) => AccessRule {
  // The first row of a path wins, as the first pattern that matches does: the receiver's own rows come first.
  const exact = new Map<string, AccessRule>()
  for (const r of rows) if (typeof r.path === 'string' && !exact.has(r.path)) exact.set(r.path, r.rule)
  const patterns = rows.filter((r): r is RouteAccess & { path: RegExp } => r.path instanceof RegExp)
  return (path) => {
    const rule = exact.get(path)
    if (rule !== undefined) return rule
    for (const row of patterns) if (row.path.test(path)) return row.rule
    return DEFAULT_RULE
  }
}

/** The rule for a path of {@link ACCESS_TABLE} (no plugin's rows). */
export const ruleFor = accessTable(ACCESS_TABLE)

/** What the access check reads of a request: an IncomingMessage, or the llhttp intake's own (intake-connection.ts). */
export interface AccessRequest {
  method?: string | undefined
  url?: string | undefined
  headers: IncomingHttpHeaders
  socket: Socket
}

/** What the access check needs to know of the receiver. */
export interface AccessConfig {
  secret: Secret | undefined
  /** Bearer token for `GET /metrics`. */
  metricsToken: string | undefined
  /** The signature check's clock (ms since the epoch). */
  now: () => number
  /** The rule of each path: the receiver's table with its plugins' rows ({@link accessTable}). */
  ruleFor: (path: string) => AccessRule
}

/** The access decision of a request that may go on. */
export interface Access {
  rule: AccessRule
  /** The route must verify a signature over the body it reads (see {@link mustVerifyBody}). */
  verifyBody: boolean
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** `localhost`, 127.0.0.0/8 and [::1], with or without a port. */
function isLoopbackHost (host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '')
  return name.toLowerCase() === 'localhost' || isLoopback(name)
}

/**
 * Throws unless the request comes from a page or program on this machine, talking to this machine.
 * A Unix-socket peer (`serve --socket`) is on this machine, and must name a loopback `Host` too:
 * a browser cannot reach the socket itself, but a local proxy in front of it (nginx
 * `proxy_pass http://unix:…` with `proxy_set_header Host $host`) would forward a DNS-rebinding
 * page's `Host`. Clients of the socket send `Host: localhost` (`trigger`'s URL, PHP's fsockopen).
 */
function checkLocal (req: AccessRequest): void {
  if (!isLocalSocket(req.socket)) {
    throw new ForbiddenError(`${req.url ?? ''} answers loopback and Unix-socket peers only (peer ${peerOf(req.socket) ?? 'unknown'})`)
  }
  const host = req.headers.host
  // HTTP/1.0 clients (hand-written fsockopen triggers) may send no Host; a browser always does.
  if (host !== undefined && !isLoopbackHost(host)) {
    throw new ForbiddenError(`Host ${host} is not a loopback name or address: refused (DNS rebinding guard); use http://127.0.0.1 or http://localhost, or start serve with --secret and sign requests`)
  }
  if (SAFE_METHODS.has(req.method ?? 'GET')) return
  const origin = req.headers.origin
  if (origin !== undefined && origin !== `http://${host ?? ''}`) {
    throw new ForbiddenError(`cross-origin ${req.method ?? ''} from ${origin} refused: only pages served by this receiver may change state`)
  }
}

/** Throws {@link UnauthorizedError} unless the request carries `Authorization: Bearer <token>` (constant-time). */
function checkBearer (req: AccessRequest, token: string): void {
  const header = req.headers.authorization
  const given = Buffer.from(header?.startsWith('Bearer ') === true ? header.slice(7).trim() : '')
  const expected = Buffer.from(token)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new UnauthorizedError('/metrics needs Authorization: Bearer <--metrics-token>')
  }
}

/**
 * Decides whether a request may reach its route, before any route code runs. Throws
 * {@link ForbiddenError} (403) or {@link UnauthorizedError} (401). Synchronous: the body is read
 * after this, and a `signed` rule with a secret leaves the signature over the body to the route
 * ({@link Access.verifyBody}); body-less reads (GET, HEAD) are verified here over an empty body.
 */
export function checkAccess (config: AccessConfig, req: AccessRequest, path: string): Access {
  const rule = config.ruleFor(path)
  const { secret } = config
  const safe = SAFE_METHODS.has(req.method ?? 'GET')
  if (secret === undefined) {
    checkLocal(req)
    if (rule === 'metrics' && config.metricsToken !== undefined) checkBearer(req, config.metricsToken)
    return { rule, verifyBody: false }
  }
  switch (rule) {
    case 'open':
      return { rule, verifyBody: false }
    case 'local':
      checkLocal(req)
      return { rule, verifyBody: false }
    case 'metrics':
      if (config.metricsToken === undefined) checkLocal(req)
      else checkBearer(req, config.metricsToken)
      return { rule, verifyBody: false }
    case 'local-or-signed':
      // Signed reads only: a route outside the server's own (an embedder's) never sees verifyBody.
      if (safe && req.headers['webhook-signature'] !== undefined) checkSignature(secret, '', req.headers, config.now)
      else checkLocal(req)
      return { rule, verifyBody: false }
    case 'signed':
      if (!safe) return { rule, verifyBody: true }
      checkSignature(secret, '', req.headers, config.now)
      return { rule, verifyBody: false }
  }
}

/**
 * Verifies the body's signature when {@link checkAccess} asked for it; returns the verified
 * message (its `id` is the idempotency key), or undefined when no signature was required.
 */
export function verifyBody (config: AccessConfig, access: Access, req: { headers: IncomingHttpHeaders }, body: Buffer): ReturnType<typeof checkSignature> | undefined {
  if (!access.verifyBody || config.secret === undefined) return undefined
  return checkSignature(config.secret, body, req.headers, config.now)
}
