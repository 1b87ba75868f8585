// What the routes of the receiver share: their context and the one way a refusal is answered and
// counted, and the helpers of small JSON control routes. Below routes.ts, the routes it dispatches
// to (control-routes.ts) and the plugins' routes (src/email/).
import type { IncomingMessage, ServerResponse } from 'node:http'
import { BadJsonError, MethodNotAllowedError, TriggerError, ValidationError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { JobHandler } from '../queue/handler.ts'
import type { JobQueue, StoreStats } from '../queue/types.ts'
import { verifyBody, type Access, type AccessConfig } from './access.ts'
import { readBody } from './body.ts'
import type { Metrics } from './metrics.ts'
import { INTERNAL_CODE, sendError, sendJson } from './respond.ts'

/** Bodies of control requests are small: an address and a reason at most. */
const CONTROL_BODY_BYTES = 64 * 1024

/** Counters of this process since it started. */
export interface IntakeCounters {
  accepted: number
  duplicates: number
  rejected: number
}

/** What the job routes need. */
export interface RouteContext {
  queue: JobQueue
  handlers: ReadonlyMap<string, JobHandler<unknown>>
  access: AccessConfig
  maxBodyBytes: number
  counters: IntakeCounters
  log: Logger
  metrics: Metrics
  isStopping: () => boolean
  /** Fields the plugins add to `GET /stats` (server/plugin.ts), from the store's part. */
  extraStats: (stats: StoreStats) => Record<string, unknown>
  /** Logs a refusal at info, rate-limited per reason. */
  noteRefusal: (code: string, message: string) => void
}

/** Counts a refused request in /stats and /metrics, and logs it. */
export function countRefusal (ctx: RouteContext, err: unknown): void {
  const code = err instanceof TriggerError ? err.code : INTERNAL_CODE
  ctx.counters.rejected++
  ctx.metrics.rejected.inc({ reason: code })
  if (code === INTERNAL_CODE) ctx.log.error({ err }, 'request failed')
  else ctx.noteRefusal(code, (err as Error).message)
}

/**
 * Counts and logs a request answered outside any route, with a raw response (a parse error, a
 * timeout): node:http's clientError and the llhttp intake alike.
 */
export function countRawRefusal (ctx: RouteContext, status: number, refusal: TriggerError): void {
  ctx.counters.rejected++
  ctx.metrics.rejected.inc({ reason: refusal.code })
  ctx.noteRefusal(refusal.code, `${status}: ${refusal.message}`)
}

/** Counts and logs a request whose client went away mid-request: no job, and nobody to answer. */
export function countIncomplete (ctx: RouteContext, peer: string | undefined, err: TriggerError): void {
  ctx.counters.rejected++
  ctx.noteRefusal(err.code, `incomplete request from ${peer ?? 'unknown'} dropped: ${err.message}`)
}

/** Answers a refused request with its error, counted in /stats and /metrics. */
export function reject (ctx: RouteContext, res: ServerResponse, err: unknown, close = false): void {
  countRefusal(ctx, err)
  sendError(res, err, close)
}

/** A control route's work on the request's body and URL: the status and JSON body to answer. */
export type Action = (body: Buffer, url: URL) => Promise<{ status: number, body?: unknown }>

/**
 * Reads the (small) body, verifies its signature when the access check asked for one (a
 * state-changing request with a secret), runs the action and answers; a throw is the refusal.
 */
export function guarded (ctx: RouteContext, req: IncomingMessage, res: ServerResponse, access: Access, action: Action): void {
  const url = new URL(req.url ?? '/', 'http://localhost')
  readBody(req, CONTROL_BODY_BYTES).then(async (body) => {
    verifyBody(ctx.access, access, req, body)
    const out = await action(body, url)
    if (out.body === undefined) {
      res.writeHead(out.status)
      res.end()
    } else {
      sendJson(res, out.status, out.body)
    }
  }).catch((err: unknown) => reject(ctx, res, err, !req.complete))
}

/** The integer query parameter `name`, 1 to `max`; `fallback` when absent. */
export function limitParam (url: URL, name: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(name)
  if (raw === null) return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ValidationError(name, `must be an integer from 1 to ${max} (got ${raw})`)
  return n
}

/** A body that must be a JSON object. */
export function jsonBody (body: Buffer): Record<string, unknown> {
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {}
  throw new BadJsonError('body must be a JSON object')
}

/** Answers 405 naming the methods `path` takes; true, so a route can return it. */
export function methodNotAllowed (res: ServerResponse, method: string, path: string, allowed: string): true {
  sendError(res, new MethodNotAllowedError(`${method} is not allowed on ${path}; use ${allowed}`), true)
  return true
}
