import { createPrivateKey, type KeyObject } from 'node:crypto'
import { Readable } from 'node:stream'
import type Nodemailer from 'nodemailer'
import type { SendMailOptions, SMTPPoolSentMessageInfo, Transporter } from 'nodemailer'
import type DKIM from 'nodemailer/lib/dkim'
import { ConfigError } from '../errors.ts'
import { lazyRequire } from '../lazy-require.ts'
import { DomainLimiter, type DomainLimitOptions } from './domain-limits.ts'

const nodemailer = lazyRequire<typeof Nodemailer>('nodemailer')
const dkimSigner = lazyRequire<typeof DKIM>('nodemailer/lib/dkim')

/** Connections the pool opens at most. */
export const SMTP_MAX_CONNECTIONS = 5
/** Messages sent over one connection before it is replaced. */
export const SMTP_MAX_MESSAGES = 100
// nodemailer's own defaults (2 min connect, 10 min socket) hold a batch up far too long.
const SMTP_CONNECTION_TIMEOUT_MS = 10_000 // TCP connect
const SMTP_GREETING_TIMEOUT_MS = 10_000 // 220 banner after connect
const SMTP_SOCKET_TIMEOUT_MS = 60_000 // inactivity mid-session

/** Options of {@link createMailer}. */
export interface MailerOptions {
  /** `smtp://[user:pass@]host[:port]` or `smtps://…`; nodemailer URL parameters allowed. */
  url: string
  /** @default 5 */
  maxConnections?: number
  /** @default 100 */
  maxMessages?: number
  /** Messages per `rateDeltaMs` across the pool; unlimited when absent. */
  rateLimit?: number
  /** @default 1000 */
  rateDeltaMs?: number
  /** Signs every message (nodemailer's `dkim` option). */
  dkim?: DkimOptions
  /** Per receiving domain: messages in flight (default 5) and per second, and overrides by domain. */
  domainLimits?: DomainLimitOptions
}

/** DKIM signing: the `d=` domain, the `s=` selector and the PEM private key. */
export interface DkimOptions {
  domainName: string
  keySelector: string
  privateKey: string
}

/** One pooled nodemailer transport per process. */
export interface Mailer {
  /** Connections of the pool: also the number of messages the e-mail job keeps in flight. */
  readonly maxConnections: number
  /** The per-domain limits every job sending through this mailer shares; defaults when absent. */
  readonly domains?: DomainLimiter
  send (message: SendMailOptions): Promise<SMTPPoolSentMessageInfo>
  close (): void
}

/** A finished message: what the e-mail job sends (mime-template.ts, RenderedMessage). */
interface RawMessage { envelope: { from: string, to: string[] }, raw: Buffer, messageId: string }

function isRaw (message: SendMailOptions): message is SendMailOptions & RawMessage {
  const envelope = message.envelope as { from?: unknown, to?: unknown } | undefined
  return Buffer.isBuffer(message.raw) && typeof message.messageId === 'string' &&
    typeof envelope?.from === 'string' && Array.isArray(envelope.to)
}

/** The pool's side of nodemailer's transport API: `send(mail, callback)`. */
interface PoolTransport {
  send (mail: unknown, callback: (err: Error | null, info: SMTPPoolSentMessageInfo) => void): unknown
}

/**
 * A finished message handed straight to nodemailer's SMTP pool, as its Mail class hands it one
 * after composing (issue 14): the mail object of nodemailer's transport API with the parts of a
 * MimeNode the pool reads (envelope, Message-ID, a fresh stream per try: the pool may resend it
 * over another connection), DKIM-signed as Mail signs it. No plugins, no MailComposer, no
 * MimeNode per message: what sendMail({ raw }) spends before the pool sees the message.
 */
function poolMail (m: RawMessage, dkim: DKIM | undefined): unknown {
  return {
    data: {},
    message: {
      getEnvelope: () => ({ from: m.envelope.from, to: [...m.envelope.to] }),
      messageId: () => m.messageId,
      getHeader: (key: string) => key.toLowerCase() === 'message-id' ? m.messageId : undefined,
      createReadStream: () => dkim === undefined ? bufferStream(m.raw) : dkim.sign(m.raw),
    },
  }
}

function bufferStream (raw: Buffer): Readable {
  return new Readable({
    read () {
      this.push(raw)
      this.push(null)
    },
  })
}

/** Creates the pooled transport. Throws {@link ConfigError} for a URL that is not smtp(s). */
export function createMailer (options: MailerOptions): Mailer {
  let url: URL
  try {
    url = new URL(options.url)
  } catch (cause) {
    throw new ConfigError(`SMTP URL is invalid: ${JSON.stringify(options.url)}`, { cause })
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    throw new ConfigError(`SMTP URL must start with smtp:// or smtps:// (got ${url.protocol}//)`)
  }
  // The PEM is parsed once: signing with a parsed key costs a third of signing with the PEM text,
  // which crypto parses again on every signature (~1 ms per message with RSA-2048 here).
  let dkimKey: (Omit<DkimOptions, 'privateKey'> & { privateKey: KeyObject }) | undefined
  if (options.dkim !== undefined) {
    try {
      dkimKey = { ...options.dkim, privateKey: createPrivateKey(options.dkim.privateKey) }
    } catch (cause) {
      throw new ConfigError(`DKIM private key of ${options.dkim.domainName} is not a PEM private key`, { cause })
    }
  }
  const maxConnections = options.maxConnections ?? SMTP_MAX_CONNECTIONS
  const domains = new DomainLimiter(options.domainLimits)
  const transport: Transporter<SMTPPoolSentMessageInfo> = nodemailer().createTransport({
    url: options.url,
    pool: true,
    maxConnections,
    maxMessages: options.maxMessages ?? SMTP_MAX_MESSAGES,
    ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit, rateDelta: options.rateDeltaMs ?? 1_000 }),
    connectionTimeout: SMTP_CONNECTION_TIMEOUT_MS,
    greetingTimeout: SMTP_GREETING_TIMEOUT_MS,
    socketTimeout: SMTP_SOCKET_TIMEOUT_MS,
    ...(dkimKey === undefined ? {} : { dkim: dkimKey }),
  })
  const pool = transport.transporter as unknown as PoolTransport
  const dkim = dkimKey === undefined ? undefined : new (dkimSigner())(dkimKey)
  return {
    maxConnections,
    domains,
    send (message) {
      if (!isRaw(message)) return transport.sendMail(message)
      return new Promise((resolve, reject) => {
        pool.send(poolMail(message, dkim), (err, info) => err === null || err === undefined ? resolve(info) : reject(err))
      })
    },
    close: () => transport.close(),
  }
}
