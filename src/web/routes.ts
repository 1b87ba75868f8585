import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  BadJsonError, BodyTooLargeError, MethodNotAllowedError, NotFoundError, RequestError, TriggerError, UnavailableError,
  UnsupportedMediaTypeError, ValidationError,
} from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Secret } from '../net/sign.ts'
import { trigger } from '../net/trigger.ts'
import type { JobView } from '../queue/types.ts'
import { readBody } from '../server/body.ts'
import { takeNotBefore } from '../server/schedule.ts'
import { INTERNAL_CODE, sendError, sendJson } from '../server/respond.ts'
import { EMAIL_MAX_BODY_BYTES, parseEmailJob } from '../smtp/email-job.ts'
import { previewRecipients } from './recipients.ts'
import { isStaticPath, sendStatic } from './static-files.ts'

/**
 * Campaigns this process fired, kept in memory: failures are shown with the address, and an id
 * not stored yet reads "pending" rather than 404 (issue 16).
 */
const CAMPAIGNS_REMEMBERED = 5

/** What the web routes use of the running receiver. Bound late: the routes exist before it listens. */
export interface WebTarget {
  /** The receiver's own URL, where `POST /jobs/email` is fired. */
  url: string
  /** The receiver's Unix-domain socket, when it listens on one: the trigger connects there. */
  socketPath?: string | undefined
  /** The receiver's jobs (its queue or store), read directly by `GET /campaigns/:id`: no signature, same process. */
  jobs: { get (id: string): Promise<JobView | undefined> }
}

/** Options of {@link createWebRoutes}. */
export interface WebRoutesOptions {
  /** The receiver, once it listens; undefined before (the routes answer 503). */
  target: () => WebTarget | undefined
  /** Signs the triggers when the receiver requires signatures. */
  secret?: Secret
  log?: Logger
}

/** The body of `POST /campaigns` and `POST /campaigns/preview`. */
interface CampaignBody {
  subject?: unknown
  text?: unknown
  recipients?: unknown
  file?: unknown
  /** When to send (ISO 8601 with an offset): passed on as the job's `notBefore`. */
  notBefore?: unknown
}

const CAMPAIGN_PATH_RE = /^\/campaigns\/([A-Za-z0-9_-]{1,64})$/
const JSON_TYPE_RE = /^application\/json\s*(?:;|$)/i

/**
 * The page has no login, and anyone who may use it can mail anyone: the receiver's access table
 * (server/access.ts) lets only loopback peers naming a loopback `Host`, with no foreign `Origin`,
 * reach these routes. POSTs must also be JSON: a cross-site form cannot send it without a CORS
 * preflight, which is never answered.
 */
function checkJson (req: IncomingMessage): void {
  const type = req.headers['content-type']
  if (type === undefined || !JSON_TYPE_RE.test(type)) throw new UnsupportedMediaTypeError(`Content-Type must be application/json (got ${type ?? 'none'})`)
}

function parseCampaignBody (body: Buffer): CampaignBody {
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch (cause) {
    throw new BadJsonError(`body is not valid JSON: ${(cause as Error).message}`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ValidationError('body', 'must be a JSON object')
  return json as CampaignBody
}

/** The pasted list and the imported file of a campaign body, read and checked. */
function recipientsOf (body: CampaignBody): ReturnType<typeof previewRecipients> {
  const pasted = body.recipients ?? ''
  if (typeof pasted !== 'string') throw new ValidationError('recipients', 'must be a string, one address per line')
  if (body.file === undefined || body.file === null) return previewRecipients(pasted)
  const file = body.file as { name?: unknown, text?: unknown }
  if (typeof file.text !== 'string') throw new ValidationError('file.text', 'must be the file\'s text')
  return previewRecipients(pasted, { name: typeof file.name === 'string' ? file.name : 'file', text: file.text })
}

/** A new job id: fits `/jobs/:id`, so the trigger's `webhook-id` becomes the job's id. */
function newCampaignId (): string {
  return `c_${randomUUID().replaceAll('-', '')}`
}

/**
 * The web page and its app routes: `GET /` (and its two static files), `POST /campaigns/preview`
 * (counts valid, invalid and duplicate addresses), `POST /campaigns` (validates, fires one trigger to
 * `POST /jobs/email` and answers with the job id at once), `GET /campaigns/:id` (the job's progress,
 * polled by the page). Returns a route function for `createReceiver({ routes })`.
 */
export function createWebRoutes (options: WebRoutesOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  /** Campaign id → its addresses (by index) and when its trigger was fired; the newest few only. */
  const remembered = new Map<string, { emails: string[], firedAt: Date }>()

  function targetOrThrow (): WebTarget {
    const target = options.target()
    if (target === undefined) throw new UnavailableError('the receiver is not listening yet')
    return target
  }

  async function preview (body: Buffer, res: ServerResponse): Promise<void> {
    const { recipients: _list, ...counts } = recipientsOf(parseCampaignBody(body))
    sendJson(res, 200, counts)
  }

  async function send (body: Buffer, res: ServerResponse): Promise<void> {
    const target = targetOrThrow()
    const campaign = parseCampaignBody(body)
    const list = recipientsOf(campaign)
    if (list.valid === 0) {
      throw new ValidationError('recipients', list.total === 0 ? 'paste or import at least one address' : `no valid address among ${list.total} entries`)
    }
    // Checked here too (same rules as the receiver's): a refused time must reach the page, not the log.
    const { notBefore } = campaign.notBefore === undefined || campaign.notBefore === '' ? {} : takeNotBefore({ notBefore: campaign.notBefore })
    const job = {
      subject: campaign.subject, text: campaign.text, recipients: list.recipients,
      ...(notBefore === undefined ? {} : { notBefore: new Date(notBefore).toISOString() }),
    }
    // The receiver checks again, but its 400 or 413 would reach nobody: a trigger does not read the answer.
    parseEmailJob(job)
    const json = JSON.stringify(job)
    if (Buffer.byteLength(json) > EMAIL_MAX_BODY_BYTES) {
      throw new BodyTooLargeError(`the job would be ${Buffer.byteLength(json)} bytes; the receiver takes at most ${EMAIL_MAX_BODY_BYTES}`)
    }
    const id = newCampaignId()
    let fired
    try {
      fired = await trigger(new URL('/jobs/email', target.url), {
        body: json,
        headers: { 'content-type': 'application/json', 'webhook-id': id },
        ...(options.secret === undefined ? {} : { secret: options.secret }),
        ...(target.socketPath === undefined ? {} : { socketPath: target.socketPath }),
      })
    } catch (err) {
      options.log?.error({ err }, 'campaign trigger failed')
      const code = err instanceof TriggerError ? err.code : INTERNAL_CODE
      sendJson(res, 502, { error: { code, message: `could not reach the receiver: ${(err as Error).message}` } })
      return
    }
    remembered.set(id, { emails: list.recipients.map((r) => r.email), firedAt: new Date() })
    for (const old of remembered.keys()) {
      if (remembered.size <= CAMPAIGNS_REMEMBERED) break
      remembered.delete(old)
    }
    sendJson(res, 202, {
      id,
      recipients: list.valid,
      invalid: list.invalid,
      duplicates: list.duplicates,
      ...(job.notBefore === undefined ? {} : { notBefore: job.notBefore }),
      trigger: { bytes: fired.bytes, totalMs: fired.totalMs },
    })
  }

  async function progress (id: string, res: ServerResponse): Promise<void> {
    const view = await targetOrThrow().jobs.get(id)
    const campaign = remembered.get(id)
    if (view === undefined) {
      // Fired here, not stored yet: the trigger is on its way (or was refused: see the server log).
      // The page polls from the moment it has the id, so this is the normal first answer.
      if (campaign !== undefined) {
        sendJson(res, 200, { id, state: 'pending', firedAt: campaign.firedAt.toISOString() })
        return
      }
      throw new NotFoundError(`no job ${id}: not stored, and not a campaign this process fired`)
    }
    const errors = view.errors.map((e) => {
      const email = e.index === undefined ? undefined : campaign?.emails[e.index]
      return email === undefined ? e : { ...e, email }
    })
    sendJson(res, 200, { ...view, errors })
  }

  return function webRoutes (req, res) {
    const path = (req.url ?? '/').split('?', 1)[0] as string
    const method = req.method ?? ''
    const fail = (err: unknown): void => {
      if (!(err instanceof RequestError)) options.log?.error({ err, path }, 'web route failed')
      sendError(res, err, !req.complete)
    }
    if (isStaticPath(path)) {
      try {
        if (method !== 'GET' && method !== 'HEAD') throw new MethodNotAllowedError(`${method} is not allowed on ${path}; use GET`)
        sendStatic(res, path, method === 'HEAD')
      } catch (err) {
        fail(err) // e.g. an installation without the page's files: a 500 and a log line, not a crash
      }
      return true
    }
    const match = CAMPAIGN_PATH_RE.exec(path)
    if (path !== '/campaigns' && match === null) return false
    const post = method === 'POST'
    try {
      if (post) checkJson(req)
      if (match !== null && !(post && match[1] === 'preview') && method !== 'GET') {
        throw new MethodNotAllowedError(`${method} is not allowed on ${path}; use GET`)
      }
      if (match === null && !post) throw new MethodNotAllowedError(`${method} is not allowed on ${path}; use POST`)
    } catch (err) {
      fail(err)
      return true
    }
    if (!post) {
      progress(match?.[1] as string, res).catch(fail)
      return true
    }
    // Taken before any await (see readBody); a browser never half-closes, but the rule is the same.
    readBody(req, EMAIL_MAX_BODY_BYTES)
      .then((body) => (match === null ? send(body, res) : preview(body, res)))
      .catch(fail)
    return true
  }
}
