// `POST /bounces` (issue 14): bounce and complaint reports of Amazon SES (via SNS), Postmark and
// plain RFC 3464 DSNs; hard bounces, complaints and unsubscribes go on the suppression list, soft
// bounces are counted. The formats are read by src/smtp/bounce-*.ts; this route of the e-mail
// plugin reads the body, verifies it, stores and answers.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { IncompleteBodyError, MethodNotAllowedError, UnavailableError } from '../errors.ts'
import type { Counter } from 'prom-client'
import { verifyBody, type Access } from '../server/access.ts'
import { peerOf } from '../server/auth.ts'
import { readBody } from '../server/body.ts'
import { sendJson } from '../server/respond.ts'
import { reject, type RouteContext } from '../server/route-context.ts'
import { bounceBodyKind, parseBounce } from '../smtp/bounce-parse.ts'
import { SUPPRESSED_KINDS, type BounceKind, type BounceReport, type BounceSource } from '../smtp/bounce-types.ts'
import type { SuppressionList } from '../smtp/suppressions.ts'

/** The path of the route. */
export const BOUNCES_PATH = '/bounces'

/** One address the report put on the suppression list. */
export interface SuppressedBounce {
  email: string
  kind: BounceKind
  reason: string
  /** False when the address was already suppressed (its reason is updated). */
  added: boolean
}

/** The 200 answer of `POST /bounces`. */
export interface BounceAnswer {
  source: BounceSource
  /** Addresses suppressed by this report (hard bounces, complaints, unsubscribes), once each. */
  suppressed: SuppressedBounce[]
  /** Soft bounces: counted, not suppressed. */
  soft: number
  /** Events that are neither (deliveries, auto-replies, SNS confirmations, invalid addresses). */
  ignored: number
}

/**
 * Suppresses the report's addresses one by one (a report names a handful); a store failure rejects
 * with its StoreError. Counted in /metrics once stored, so a provider's retry after a 503 counts once.
 */
async function store (list: SuppressionList, bounces: Counter<'source' | 'kind'>, report: BounceReport): Promise<BounceAnswer> {
  const answer: BounceAnswer = { source: report.source, suppressed: [], soft: 0, ignored: 0 }
  const seen = new Set<string>()
  for (const event of report.events) {
    if (event.kind === 'soft') answer.soft++
    else if (event.kind === 'ignored') answer.ignored++
    if (!SUPPRESSED_KINDS.has(event.kind)) continue
    const key = event.email.toLowerCase()
    if (seen.has(key)) continue // the same address twice in one report (a DSN listing it per attempt)
    seen.add(key)
    const added = await list.suppress(event.email, event.reason)
    answer.suppressed.push({ email: event.email, kind: event.kind, reason: event.reason, added })
  }
  for (const event of report.events) bounces.inc({ source: report.source, kind: event.kind })
  return answer
}

/** `POST /bounces` onto `list`, counted in `bounces` by source and kind: false when the path is another. */
export function bounceRoute (list: SuppressionList, bounces: Counter<'source' | 'kind'>, ctx: RouteContext, req: IncomingMessage, res: ServerResponse, path: string, access: Access): boolean {
  if (path !== BOUNCES_PATH) return false
  // Everything up to readBody() is synchronous: the body must be taken before any await.
  try {
    if (req.method !== 'POST') throw new MethodNotAllowedError(`${req.method ?? ''} is not allowed on ${path}; use POST`)
    if (ctx.isStopping()) throw new UnavailableError('receiver is stopping; the provider retries later')
    bounceBodyKind(req.headers['content-type'])
  } catch (err) {
    reject(ctx, res, err, true)
    return true
  }
  readBody(req, ctx.maxBodyBytes).then(async (body) => {
    verifyBody(ctx.access, access, req, body)
    const report = parseBounce(req.headers['content-type'], body)
    if (report.subscribeUrl !== undefined) {
      // Confirming is the operator's decision (and the receiver fetches nothing): log the URL to open.
      ctx.log.warn({ topicArn: report.topicArn, subscribeUrl: report.subscribeUrl }, `SNS subscription to ${report.topicArn ?? 'a topic'} awaits confirmation: open its SubscribeURL to confirm`)
    }
    const answer = await store(list, bounces, report)
    sendJson(res, 200, answer)
    if (answer.suppressed.length > 0) ctx.log.info({ source: answer.source, suppressed: answer.suppressed.map((s) => s.email), soft: answer.soft }, 'bounces: addresses suppressed')
  }).catch((err: unknown) => {
    if (err instanceof IncompleteBodyError) {
      ctx.counters.rejected++
      ctx.noteRefusal(err.code, `incomplete bounce report from ${peerOf(req.socket) ?? 'unknown'} dropped: ${err.message}`)
      return
    }
    reject(ctx, res, err, !req.complete)
  })
  return true
}
