import { ValidationError } from '../errors.ts'
import type { JobContext, JobHandler, ParsedJob } from '../queue/handler.ts'
import { normaliseRecipients, parseRecipient, type Recipient } from './addresses.ts'
import type { Mailer } from './mailer.ts'
import { DomainLimiter, isTooMany, type DomainOutcome } from './domain-limits.ts'
import { compileMessage, type MessageTemplate } from './mime-template.ts'
import { runSends } from './send-loop.ts'
import { SUPPRESSIONS_LIST, suppressionList, type SuppressionList } from './suppressions.ts'

/** First wait after a temporary SMTP failure; doubled per attempt. Greylisting asks for minutes. */
export const RETRY_BASE_MS = 120_000
/** Tries per recipient, the first included. */
export const MAX_ATTEMPTS = 5
/** Recipients of one job. */
export const MAX_RECIPIENTS = 100_000
/** Body limit of `POST /jobs/email`: 100,000 recipients with names fit. */
export const EMAIL_MAX_BODY_BYTES = 16 * 1024 * 1024
/** Recipients whose suppression state is read in one call. */
const SUPPRESSION_BATCH = 100
/** How long such an answer is used: an address suppressed meanwhile is skipped from then on. */
const SUPPRESSION_FRESH_MS = 1_000
/** Invalid addresses named in a 400 answer. */
const INVALID_SHOWN = 20
const DEFAULT_FROM = 'rawtrigger <rawtrigger@localhost.localdomain>'

/** The stored payload of an e-mail job. */
export interface EmailPayload {
  from: string
  subject: string
  text?: string
  html?: string
  recipients: Recipient[]
}

/** Options of {@link emailHandler}. */
export interface EmailJobOptions {
  mailer: Mailer
  /** Sender when the payload names none. */
  from?: string
  /** @default 120000 */
  retryBaseMs?: number
  /** @default 5 */
  maxAttempts?: number
  /**
   * Adds `List-Unsubscribe` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058):
   * a URL template with `{{email}}` and `{{job}}`, e.g. `https://example.org/unsubscribe?e={{email}}`.
   */
  unsubscribeUrl?: string
}

function optionalString (body: Record<string, unknown>, field: string): string | undefined {
  const value = body[field]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new ValidationError(field, 'must be a string')
  return value
}

/** Checks a `POST /jobs/email` body; duplicates are dropped, invalid addresses refuse the job. */
export function parseEmailJob (body: unknown, defaultFrom = DEFAULT_FROM): ParsedJob<EmailPayload> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('body', 'must be a JSON object')
  const b = body as Record<string, unknown>
  const subject = optionalString(b, 'subject')
  if (subject === undefined || subject.trim() === '') throw new ValidationError('subject', 'is required')
  if (/[\r\n]/.test(subject)) throw new ValidationError('subject', 'must be one line')
  const text = optionalString(b, 'text')
  const html = optionalString(b, 'html')
  if ((text ?? '') === '' && (html ?? '') === '') throw new ValidationError('text', 'text or html is required')
  const from = optionalString(b, 'from') ?? defaultFrom
  if (parseRecipient(from) === undefined) throw new ValidationError('from', `is not an address: ${JSON.stringify(from)}`)
  if (!Array.isArray(b.recipients)) throw new ValidationError('recipients', 'must be an array of addresses')
  if (b.recipients.length === 0) throw new ValidationError('recipients', 'must hold at least one address')
  if (b.recipients.length > MAX_RECIPIENTS) {
    throw new ValidationError('recipients', `holds ${b.recipients.length} entries; at most ${MAX_RECIPIENTS} per job`)
  }
  const list = normaliseRecipients(b.recipients)
  if (list.invalid.length > 0) {
    throw new ValidationError('recipients', `${list.invalid.length} invalid address(es): ${list.invalid.slice(0, INVALID_SHOWN).join(', ')}`,
      { invalid: list.invalid.slice(0, INVALID_SHOWN), invalidCount: list.invalid.length })
  }
  const payload: EmailPayload = { from, subject, recipients: list.recipients }
  if (text !== undefined && text !== '') payload.text = text
  if (html !== undefined && html !== '') payload.html = html
  return { payload, items: list.recipients.length, summary: { recipients: list.recipients.length, duplicates: list.duplicates } }
}

interface SmtpFailure { temporary: boolean, reply: string, code?: number }

/** The mailbox does not exist or the address is refused for good: 550, 551, 553, or a 5.1.x status. */
function isHardBounce (failure: SmtpFailure): boolean {
  if (failure.temporary || failure.code === undefined) return false
  return failure.code === 550 || failure.code === 551 || failure.code === 553 || /\b5\.1\.\d{1,3}\b/.test(failure.reply)
}

export { unsubscribeLink } from './mime-template.ts'

/**
 * A failure without an SMTP reply, by nodemailer's error code (its `errors.js`, ERROR_CODES):
 * true when it is permanent, i.e. the same message would fail the same way on every try, so the
 * recipient fails at once instead of being retried maxAttempts times. A code that is not listed,
 * or no code at all, is temporary: retried, at most maxAttempts times. (Issue 16.)
 */
export const PERMANENT_WITHOUT_REPLY: Readonly<Record<string, boolean>> = {
  // The connection, not the message: the server may answer on the next try.
  ECONNECTION: false, // closed unexpectedly or refused (ECONNREFUSED stays on originalCode)
  ETIMEDOUT: false, // connect, greeting or an idle socket timed out: a slow or busy server
  ESOCKET: false, // ECONNRESET, EPIPE… mid-session
  EDNS: false, // a resolver that fails now may answer later; NXDOMAIN looks the same here
  EPROXY: false, // the proxy connection failed, like ECONNECTION one hop earlier
  ETLS: false, // a handshake cut off looks like a bad certificate; the retries are bounded
  EPROTOCOL: false, // a garbled or oversized reply: a server in trouble, not our message
  EMAXLIMIT: false, // the pooled connection used up maxMessages: a new connection takes it
  EABORT: false, // the send was cancelled, the message was not refused
  EFETCH: false, // content fetched from a URL: the remote may answer next time
  ESENDMAIL: false, // the sendmail transport's code: not raised by this SMTP pool
  ESES: false, // the SES transport's code: not raised by this SMTP pool
  // The message or the configuration: every try fails alike.
  EENVELOPE: true, // refused before sending: no recipient, an invalid sender, recipient or DSN
  EMESSAGE: true, // empty, or larger than the server's SIZE: it will be as large next time
  ESTREAM: true, // the message could not be built (a source or attachment stream failed)
  EMAXRECIPIENTS: true, // more recipients than maxRecipients: the message itself
  EOTP: true, // invalid otp option data in the message
  EAUTH: true, // credentials missing or refused, or an unknown method (a 454 reply stays temporary)
  ENOAUTH: true, // the server requires credentials that the SMTP URL does not give
  EOAUTH2: true, // no key or refresh token, or a refused grant; an unreachable endpoint is EFETCH
  EREQUIRETLS: true, // the server lacks REQUIRETLS (RFC 8689), and will next time too
  ECONFIG: true, // invalid transport or DKIM configuration
  EFILEACCESS: true, // file content refused by disableFileAccess
  EURLACCESS: true, // URL content refused by disableUrlAccess
  ERR_ACCESS_DENIED: true, // Node's permission model (nodemailer keeps the code): denied until restarted
}

/**
 * An SMTP reply decides when there is one: 4xx (421, 450, 451, 452, …) is temporary, 5xx permanent.
 * nodemailer keeps the reply on `response` and its code on `responseCode`. Without a reply,
 * nodemailer's error code decides ({@link PERMANENT_WITHOUT_REPLY}); the OS code it replaced, kept
 * on `originalCode`, is added to the reply when the message does not already name it.
 */
export function classify (err: unknown): SmtpFailure {
  const e = err as { responseCode?: unknown, response?: unknown, code?: unknown, originalCode?: unknown, message?: unknown }
  if (typeof e.responseCode === 'number') {
    const reply = typeof e.response === 'string' ? e.response : `${e.responseCode} ${String(e.message)}`
    return { temporary: e.responseCode < 500, reply, code: e.responseCode }
  }
  const code = typeof e.code === 'string' ? e.code : undefined
  const message = String(e.message)
  const os = typeof e.originalCode === 'string' && !message.includes(e.originalCode) ? ` (${e.originalCode})` : ''
  return { temporary: PERMANENT_WITHOUT_REPLY[code ?? ''] !== true, reply: `${code ?? 'ERROR'}: ${message}${os}` }
}

/** Exponential backoff with ±25 % jitter, so retries of a batch do not arrive together. */
export function backoff (baseMs: number, attempt: number): number {
  return Math.round(baseMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5))
}

/** The `email` job type: one message per recipient through the pooled mailer. */
export function emailHandler (options: EmailJobOptions): JobHandler<EmailPayload> & { maxBodyBytes: number } {
  const { mailer } = options
  const retryBaseMs = options.retryBaseMs ?? RETRY_BASE_MS
  const maxAttempts = options.maxAttempts ?? MAX_ATTEMPTS

  const limiter = mailer.domains ?? new DomainLimiter()

  /** What one run of a job keeps: its compiled message and its suppression look-ups. */
  interface Run {
    ctx: JobContext<EmailPayload>
    message: MessageTemplate
    suppressions: SuppressionList
    /** Suppression reasons by window of SUPPRESSION_BATCH recipients, and when they were asked. */
    suppressed: Map<number, { at: number, lookup: Promise<Map<string, string>> }>
  }

  function openRun (ctx: JobContext<EmailPayload>): Run {
    const p = ctx.payload
    // Built once per run (issue 14): filled per recipient by render().
    const message = compileMessage(
      { from: p.from, subject: p.subject, ...(p.text === undefined ? {} : { text: p.text }), ...(p.html === undefined ? {} : { html: p.html }) },
      { jobId: ctx.id, ...(options.unsubscribeUrl === undefined ? {} : { unsubscribeUrl: options.unsubscribeUrl }) },
    )
    return { ctx, message, suppressions: suppressionList(ctx.keyedList(SUPPRESSIONS_LIST)), suppressed: new Map() }
  }

  /** The suppression reason of recipient `index`, read with its window's neighbours in one call. */
  function suppression (run: Run, index: number): Promise<string | undefined> {
    const window = Math.floor(index / SUPPRESSION_BATCH)
    const now = Date.now()
    let entry = run.suppressed.get(window)
    if (entry === undefined || now - entry.at > SUPPRESSION_FRESH_MS) {
      const emails = run.ctx.payload.recipients.slice(window * SUPPRESSION_BATCH, (window + 1) * SUPPRESSION_BATCH).map((r) => r.email)
      const lookup = run.suppressions.suppressed(emails)
      entry = { at: now, lookup }
      run.suppressed.set(window, entry)
      lookup.catch(() => run.suppressed.delete(window)) // asked again next time; the send reports it
      for (const old of run.suppressed.keys()) if (old < window - 2) run.suppressed.delete(old)
    }
    const r = run.ctx.payload.recipients[index] as Recipient
    return entry.lookup.then((m) => m.get(r.email.toLowerCase()))
  }

  async function sendOne (run: Run, index: number, attempts: number): Promise<DomainOutcome> {
    const { ctx } = run
    const r = ctx.payload.recipients[index] as Recipient
    const reason = await suppression(run, index)
    if (reason !== undefined) {
      await ctx.markItem(index, { state: 'failed', error: `suppressed: ${reason}` })
      ctx.observe({ outcome: 'suppressed' })
      return 'other'
    }
    let failure: SmtpFailure | undefined
    try {
      const info = await options.mailer.send(run.message.render(index, r))
      // With one recipient per message a refusal usually rejects; check the resolved case too.
      if (info.rejected.length > 0) failure = classify(info.rejectedErrors?.[0] ?? { message: 'recipient rejected', responseCode: 550 })
    } catch (err) {
      failure = classify(err)
    }
    const tried = attempts + 1
    if (failure === undefined) {
      await ctx.markItem(index, { state: 'done' })
      ctx.observe({ outcome: 'sent' })
      return 'sent'
    }
    if (failure.temporary && tried < maxAttempts) {
      await ctx.markItem(index, { state: 'retry', error: failure.reply, retryAt: Date.now() + backoff(retryBaseMs, tried) })
      ctx.observe({ outcome: 'retry', ...(failure.code === undefined ? {} : { code: failure.code }) })
    } else {
      await ctx.markItem(index, { state: 'failed', error: failure.reply })
      ctx.observe({ outcome: 'failed', ...(failure.code === undefined ? {} : { code: failure.code }) })
      if (isHardBounce(failure)) await run.suppressions.suppress(r.email, `hard bounce: ${failure.reply}`)
    }
    // "Too many" from the domain slows the domain down (domain-limits.ts), not the job.
    return failure.temporary && isTooMany(failure.code, failure.reply) ? 'throttled' : 'other'
  }

  return {
    maxBodyBytes: EMAIL_MAX_BODY_BYTES,
    parse: (body) => parseEmailJob(body, options.from),
    async run (ctx) {
      const run = openRun(ctx)
      // As many messages in flight as the pool has connections, and per receiving domain what
      // its limits allow: bounded memory, and a crash resends at most the messages in flight.
      // dueItems re-checks an item is still pending (not cancelled) just before handing it over.
      await runSends(ctx, {
        limiter,
        maxInFlight: mailer.maxConnections,
        domainOf: (index) => domainOf((ctx.payload.recipients[index] as Recipient).email),
        send: (item) => sendOne(run, item.index, item.attempts).catch((err: unknown) => {
          ctx.log.error({ err, index: item.index }, 'recording a send failed')
          return 'other' as const
        }),
      })
    },
  }
}

/** The receiving domain of an address, lower-case. */
function domainOf (email: string): string {
  return email.slice(email.lastIndexOf('@') + 1).toLowerCase()
}
