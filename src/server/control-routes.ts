import type { IncomingMessage, ServerResponse } from 'node:http'
import { BadJsonError, ConflictError, MethodNotAllowedError, NotFoundError, ValidationError } from '../errors.ts'
import type { JobState } from '../queue/types.ts'
import { isValidEmail } from '../smtp/addresses.ts'
import { verifyBody, type Access } from './access.ts'
import { readBody } from './body.ts'
import { sendError, sendJson } from './respond.ts'
import { reject, type RouteContext } from './route-context.ts'

/** Bodies of control requests are small: an address and a reason at most. */
const CONTROL_BODY_BYTES = 64 * 1024
const STATES: readonly JobState[] = ['scheduled', 'queued', 'running', 'done', 'failed', 'cancelled']
const ACTION_RE = /^\/jobs\/([A-Za-z0-9_-]{1,64})\/(retry|cancel)$/
const SUPPRESSION_RE = /^\/suppressions\/([^/]{1,320})$/

type Action = (body: Buffer, url: URL) => Promise<{ status: number, body?: unknown }>

function limitParam (url: URL, name: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(name)
  if (raw === null) return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ValidationError(name, `must be an integer from 1 to ${max} (got ${raw})`)
  return n
}

function jsonBody (body: Buffer): Record<string, unknown> {
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {}
  throw new BadJsonError('body must be a JSON object')
}

/**
 * Reads the (small) body, verifies its signature when the access check asked for one (a
 * state-changing request with a secret), then runs the action.
 */
function guarded (ctx: RouteContext, req: IncomingMessage, res: ServerResponse, access: Access, action: Action): void {
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

/** `GET /jobs`, `POST /jobs/:id/retry|cancel`, `/suppressions`: false when the path is none of them. */
export function controlRoute (ctx: RouteContext, req: IncomingMessage, res: ServerResponse, path: string, access: Access): boolean {
  const { queue } = ctx
  const method = req.method ?? 'GET'
  if (path === '/jobs') {
    if (method !== 'GET') return methodNotAllowed(res, method, path, 'GET')
    guarded(ctx, req, res, access, async (_, url) => {
      const state = url.searchParams.get('state')
      if (state !== null && !STATES.includes(state as JobState)) throw new ValidationError('state', `must be one of ${STATES.join(', ')}`)
      const before = url.searchParams.get('before')
      if (before !== null && !/^\d{1,15}$/.test(before)) throw new ValidationError('before', 'must be the `next` of a previous page')
      return {
        status: 200,
        body: await queue.list({
          limit: limitParam(url, 'limit', 50, 500),
          ...(state === null ? {} : { state: state as JobState }),
          ...(before === null ? {} : { before }),
        }),
      }
    })
    return true
  }
  const action = ACTION_RE.exec(path)
  if (action !== null) {
    if (method !== 'POST') return methodNotAllowed(res, method, path, 'POST')
    const [, id, verb] = action as unknown as [string, string, 'retry' | 'cancel']
    guarded(ctx, req, res, access, async () => {
      const result = verb === 'retry' ? await queue.retry(id) : await queue.cancel(id)
      if (result === undefined) throw new NotFoundError(`no job ${id}`)
      // A scheduled job has not run: nothing of it can have failed, so a retry is refused, as for any job without failures.
      if (!result.changed && verb === 'retry' && result.state === 'scheduled') throw new ConflictError(`job ${id} is scheduled and has not run yet: nothing to retry`)
      if (!result.changed && verb === 'retry') throw new ConflictError(`job ${id} has no failed items to retry (state ${result.state})`)
      if (!result.changed) throw new ConflictError(`job ${id} has already ended (${result.state})`)
      if (verb === 'retry') queue.notify()
      return { status: 200, body: { id, items: result.items, state: result.state } }
    })
    return true
  }
  if (path === '/suppressions') {
    if (method === 'GET') {
      guarded(ctx, req, res, access, async (_, url) => ({
        status: 200,
        body: { suppressions: await queue.suppressions.listSuppressed(limitParam(url, 'limit', 100, 1000), url.searchParams.get('after') ?? '') },
      }))
    } else if (method === 'POST') {
      guarded(ctx, req, res, access, async (body) => {
        const { email, reason } = jsonBody(body)
        if (typeof email !== 'string' || !isValidEmail(email.trim())) throw new ValidationError('email', 'must be an e-mail address')
        if (reason !== undefined && typeof reason !== 'string') throw new ValidationError('reason', 'must be a string')
        const added = await queue.suppressions.suppress(email.trim(), reason ?? 'added by hand')
        return { status: added ? 201 : 200, body: { email: email.trim(), reason: reason ?? 'added by hand', added } }
      })
    } else {
      return methodNotAllowed(res, method, path, 'GET or POST')
    }
    return true
  }
  const suppression = SUPPRESSION_RE.exec(path)
  if (suppression !== null) {
    if (method !== 'DELETE') return methodNotAllowed(res, method, path, 'DELETE')
    guarded(ctx, req, res, access, async () => {
      let email: string
      try {
        email = decodeURIComponent(suppression[1] as string)
      } catch {
        throw new ValidationError('email', 'is not a valid percent-encoded address')
      }
      if (!(await queue.suppressions.unsuppress(email))) throw new NotFoundError(`${email} is not suppressed`)
      return { status: 204 }
    })
    return true
  }
  return false
}

function methodNotAllowed (res: ServerResponse, method: string, path: string, allowed: string): true {
  sendError(res, new MethodNotAllowedError(`${method} is not allowed on ${path}; use ${allowed}`), true)
  return true
}
