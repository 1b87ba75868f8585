// What the routes of the receiver share: their context and the one way a refusal is answered and
// counted. Below routes.ts and the routes it dispatches to (control-routes.ts, bounce-route.ts).
import type { ServerResponse } from 'node:http'
import { TriggerError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { JobHandler } from '../queue/handler.ts'
import type { JobQueue } from '../queue/types.ts'
import type { AccessConfig } from './access.ts'
import type { Metrics } from './metrics.ts'
import { INTERNAL_CODE, sendError } from './respond.ts'

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
