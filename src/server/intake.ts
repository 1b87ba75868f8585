// `POST /jobs/:type`, the receiver's hot path, apart from how its bytes arrive: the checks made
// before the body is read, then verify, validate, store and the 202's JSON. Used by the node:http
// route (routes.ts) and by the llhttp intake connection (intake-connection.ts) alike.
import type { IncomingHttpHeaders } from 'node:http'
import { BadJsonError, BadRequestError, NotFoundError, UnavailableError, UnsupportedMediaTypeError } from '../errors.ts'
import type { JobHandler } from '../queue/handler.ts'
import { checkAccess, verifyBody, type Access, type AccessRequest } from './access.ts'
import { declaredLength } from './body.ts'
import type { RouteContext } from './route-context.ts'
import { takeNotBefore } from './schedule.ts'

/** The path of a job route; group 1 is the job type (or the id of `GET /jobs/:id`). */
export const JOB_PATH_RE = /^\/jobs\/([A-Za-z0-9_-]{1,64})$/
const JSON_TYPE_RE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

function header (headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return typeof value === 'string' && value !== '' ? value : undefined
}

/**
 * The refusals a `POST /jobs/:type` gets before its body is read (synchronously: the body must be
 * taken before any await). Returns the type's handler.
 */
export function intakeHandler (ctx: RouteContext, type: string, headers: IncomingHttpHeaders): JobHandler<unknown> {
  if (ctx.isStopping()) throw new UnavailableError('receiver is stopping; retry on another instance or later')
  const handler = ctx.handlers.get(type)
  if (handler === undefined) throw new NotFoundError(`unknown job type ${JSON.stringify(type)}; known: ${[...ctx.handlers.keys()].join(', ') || 'none'}`)
  const contentType = headers['content-type']
  if (contentType === undefined || !JSON_TYPE_RE.test(contentType)) {
    throw new UnsupportedMediaTypeError(`Content-Type must be application/json (got ${contentType ?? 'none'})`)
  }
  return handler
}

/** The body limit of a handler's jobs. */
export function bodyLimit (ctx: RouteContext, handler: JobHandler<unknown>): number {
  return handler.maxBodyBytes ?? ctx.maxBodyBytes
}

/** What a `POST /jobs/:type` passed before its body: its access, its handler and the body limit. */
export interface Admitted {
  access: Access
  handler: JobHandler<unknown>
  limit: number
}

/**
 * Every check a `POST /jobs/:type` meets before its body, for a request not yet checked at all
 * (the llhttp intake's: node:http's get the Host and access checks in the request listener).
 * Throws the refusal.
 */
export function admit (ctx: RouteContext, req: AccessRequest, path: string, type: string, http11: boolean): Admitted {
  if (http11 && req.headers.host === undefined) throw new BadRequestError('HTTP/1.1 request without a Host header (RFC 9112 §3.2)')
  const access = checkAccess(ctx.access, req, path)
  const handler = intakeHandler(ctx, type, req.headers)
  const limit = bodyLimit(ctx, handler)
  declaredLength(req.headers, limit)
  return { access, handler, limit }
}

/**
 * Verifies the signature when access asks for it, parses and validates the body, stores the job
 * and resolves with the 202's JSON (already counted); rejects with the refusal otherwise. The
 * caller answers, then calls {@link afterAnswer}.
 */
export async function storeJob (
  ctx: RouteContext, access: Access, handler: JobHandler<unknown>, type: string,
  headers: IncomingHttpHeaders, body: Buffer,
): Promise<StoredJob> {
  const signed = verifyBody(ctx.access, access, { headers }, body)
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch (cause) {
    throw new BadJsonError(`body is not valid JSON: ${(cause as Error).message}`)
  }
  const { body: jobBody, notBefore } = takeNotBefore(json)
  const parsed = handler.parse(jobBody)
  // Signed: the verified id. Unsigned (loopback only): the sender's webhook-id as an idempotency key.
  const key = signed?.id ?? header(headers, 'webhook-id')
  const { id, duplicate } = await ctx.queue.add({
    type, payload: parsed.payload, items: parsed.items,
    ...(key === undefined ? {} : { dedupKey: key }), ...(notBefore === undefined ? {} : { notBefore }),
  })
  if (duplicate) ctx.counters.duplicates++
  else {
    ctx.counters.accepted++
    ctx.metrics.accepted.inc()
  }
  return {
    duplicate,
    json: {
      id, type, items: parsed.items, ...parsed.summary,
      ...(notBefore === undefined ? {} : { notBefore: new Date(notBefore).toISOString() }), ...(duplicate ? { duplicate: true } : {}),
    },
  }
}

/** A job {@link storeJob} stored (or found by its idempotency key). */
export interface StoredJob {
  json: Record<string, unknown>
  duplicate: boolean
}

/** Once the 202 is written: the accept-time histogram (`started` from performance.now()) and a wake-up for the worker. */
export function afterAnswer (ctx: RouteContext, stored: StoredJob, started: number): void {
  ctx.metrics.acceptSeconds.observe((performance.now() - started) / 1000)
  if (!stored.duplicate) ctx.queue.notify()
}
