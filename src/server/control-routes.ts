import type { IncomingMessage, ServerResponse } from 'node:http'
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts'
import type { JobState } from '../queue/types.ts'
import type { Access } from './access.ts'
import { guarded, limitParam, methodNotAllowed, type RouteContext } from './route-context.ts'

const STATES: readonly JobState[] = ['scheduled', 'queued', 'running', 'done', 'failed', 'cancelled']
const ACTION_RE = /^\/jobs\/([A-Za-z0-9_-]{1,64})\/(retry|cancel)$/

/** `GET /jobs`, `POST /jobs/:id/retry|cancel`: false when the path is none of them. */
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
  return false
}
