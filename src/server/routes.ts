import type { IncomingMessage, ServerResponse } from 'node:http'
import { IncompleteBodyError, MethodNotAllowedError, NotFoundError, UnavailableError } from '../errors.ts'
import type { JobHandler } from '../queue/handler.ts'
import type { Access } from './access.ts'
import { peerOf } from './auth.ts'
import { controlRoute } from './control-routes.ts'
import { readBody } from './body.ts'
import { afterAnswer, bodyLimit, intakeHandler, JOB_PATH_RE, storeJob } from './intake.ts'
import { sendError, sendJson } from './respond.ts'
import { countIncomplete, reject, type RouteContext } from './route-context.ts'

/** `POST /jobs/:type` on node:http: read, verify, validate, store durably, then 202. */
function postJob (ctx: RouteContext, req: IncomingMessage, res: ServerResponse, access: Access, type: string): void {
  // Everything up to readBody() is synchronous: the body must be taken before any await.
  const started = performance.now()
  let handler: JobHandler<unknown>
  try {
    handler = intakeHandler(ctx, type, req.headers)
  } catch (err) {
    reject(ctx, res, err, true)
    return
  }
  readBody(req, bodyLimit(ctx, handler)).then(async (body) => {
    const stored = await storeJob(ctx, access, handler, type, req.headers, body)
    sendJson(res, 202, stored.json)
    afterAnswer(ctx, stored, started)
  }).catch((err: unknown) => {
    if (err instanceof IncompleteBodyError) {
      countIncomplete(ctx, peerOf(req.socket), err) // the client went away mid-body
      return
    }
    reject(ctx, res, err, !req.complete)
  })
}

/** `GET /jobs/:id` (access checked before routing, signed over an empty body with a secret). */
function getJob (ctx: RouteContext, res: ServerResponse, id: string): void {
  ctx.queue.get(id).then((view) => {
    if (view === undefined) sendError(res, new NotFoundError(`no job ${id}`))
    else sendJson(res, 200, view)
  }, (err: unknown) => sendError(res, err))
}

/** `GET /stats`. */
function getStats (ctx: RouteContext, res: ServerResponse): void {
  ctx.queue.stats().then((s) => {
    const { accepted, duplicates, rejected } = ctx.counters
    const jobs = { ...(s.jobs.scheduled === undefined ? {} : { scheduled: s.jobs.scheduled }), queued: s.jobs.queued, running: s.jobs.running, done: s.jobs.done, failed: s.jobs.failed }
    sendJson(res, 200, { accepted, duplicates, rejected, jobs, ...ctx.extraStats(s) })
  }, (err: unknown) => sendError(res, err))
}

/** Routes a request that passed {@link checkAccess}; false when the path is not one of the job routes. */
export function route (ctx: RouteContext, req: IncomingMessage, res: ServerResponse, path: string, access: Access): boolean {
  if (path === '/healthz') {
    if (ctx.isStopping()) sendError(res, new UnavailableError('stopping'))
    else sendJson(res, 200, { ok: true })
    return true
  }
  if (path === '/stats') {
    getStats(ctx, res)
    return true
  }
  if (path === '/metrics' && req.method === 'GET') {
    ctx.metrics.registry.metrics().then((text) => {
      res.writeHead(200, { 'Content-Type': ctx.metrics.registry.contentType })
      res.end(text)
    }, (err: unknown) => sendError(res, err))
    return true
  }
  if (controlRoute(ctx, req, res, path, access)) return true
  const match = JOB_PATH_RE.exec(path)
  if (match === null) return false
  const name = match[1] as string
  if (req.method === 'POST') postJob(ctx, req, res, access, name)
  else if (req.method === 'GET' || req.method === 'HEAD') getJob(ctx, res, name)
  else reject(ctx, res, new MethodNotAllowedError(`${req.method ?? ''} is not allowed on ${path}; use POST or GET`), true)
  return true
}
