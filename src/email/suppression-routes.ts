// `/suppressions` of the e-mail plugin: the addresses later jobs skip, listed, added and removed
// (`rawtrigger suppressions …` calls these).
import type { IncomingMessage, ServerResponse } from 'node:http'
import { NotFoundError, ValidationError } from '../errors.ts'
import type { Access } from '../server/access.ts'
import { guarded, jsonBody, limitParam, methodNotAllowed, type RouteContext } from '../server/route-context.ts'
import { isValidEmail } from '../smtp/addresses.ts'
import type { SuppressionList } from '../smtp/suppressions.ts'

const SUPPRESSION_RE = /^\/suppressions\/([^/]{1,320})$/

/** `GET|POST /suppressions`, `DELETE /suppressions/:email` on `list`: false when the path is neither. */
export function suppressionRoute (list: SuppressionList, ctx: RouteContext, req: IncomingMessage, res: ServerResponse, path: string, access: Access): boolean {
  const method = req.method ?? 'GET'
  if (path === '/suppressions') {
    if (method === 'GET') {
      guarded(ctx, req, res, access, async (_, url) => ({
        status: 200,
        body: { suppressions: await list.listSuppressed(limitParam(url, 'limit', 100, 1000), url.searchParams.get('after') ?? '') },
      }))
    } else if (method === 'POST') {
      guarded(ctx, req, res, access, async (body) => {
        const { email, reason } = jsonBody(body)
        if (typeof email !== 'string' || !isValidEmail(email.trim())) throw new ValidationError('email', 'must be an e-mail address')
        if (reason !== undefined && typeof reason !== 'string') throw new ValidationError('reason', 'must be a string')
        const added = await list.suppress(email.trim(), reason ?? 'added by hand')
        return { status: added ? 201 : 200, body: { email: email.trim(), reason: reason ?? 'added by hand', added } }
      })
    } else {
      return methodNotAllowed(res, method, path, 'GET or POST')
    }
    return true
  }
  const suppression = SUPPRESSION_RE.exec(path)
  if (suppression === null) return false
  if (method !== 'DELETE') return methodNotAllowed(res, method, path, 'DELETE')
  guarded(ctx, req, res, access, async () => {
    let email: string
    try {
      email = decodeURIComponent(suppression[1] as string)
    } catch {
      throw new ValidationError('email', 'is not a valid percent-encoded address')
    }
    if (!(await list.unsuppress(email))) throw new NotFoundError(`${email} is not suppressed`)
    return { status: 204 }
  })
  return true
}
