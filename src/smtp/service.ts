import type { IncomingMessage, ServerResponse } from 'node:http'
import { writeJson } from '../json-response.ts'
import type { Logger } from '../log.ts'
import { emailHandler, type EmailJobOptions } from './email-job.ts'
import { createMailer, type Mailer, type MailerOptions } from './mailer.ts'
import { SINK_KEEP, startSink, type Sink } from './sink.ts'

/** Messages `GET /mailbox` lists unless `?limit=` asks for more (up to 1000). */
const MAILBOX_PAGE = 100

/** Options of {@link startEmailService}. */
export interface EmailServiceOptions extends Omit<MailerOptions, 'url'>, Omit<EmailJobOptions, 'mailer'> {
  /** Where mail goes. Without it an embedded sink is started on 127.0.0.1:2525 (or the next free port). */
  smtpUrl?: string
  /** Port of the embedded sink. @default 2525 */
  sinkPort?: number
  log: Logger
}

/** The mailer, the `email` job type, and with no SMTP URL the embedded sink and its `GET /mailbox`. */
export interface EmailService {
  smtpUrl: string
  sink: Sink | undefined
  mailer: Mailer
  handler: ReturnType<typeof emailHandler>
  /** Serves `GET /mailbox` when the sink runs. */
  routes (req: IncomingMessage, res: ServerResponse): boolean
  close (): Promise<void>
}

/** Starts what the `email` job type needs. */
export async function startEmailService (options: EmailServiceOptions): Promise<EmailService> {
  const sink = options.smtpUrl === undefined ? await startSink({ ...(options.sinkPort === undefined ? {} : { port: options.sinkPort }) }) : undefined
  const smtpUrl = options.smtpUrl ?? (sink as Sink).url
  const { log, smtpUrl: _url, sinkPort: _port, from, retryBaseMs, maxAttempts, unsubscribeUrl, ...mailerOptions } = options
  const mailer = createMailer({ ...mailerOptions, url: smtpUrl })
  const handler = emailHandler({
    mailer,
    ...(from === undefined ? {} : { from }),
    ...(retryBaseMs === undefined ? {} : { retryBaseMs }),
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
    ...(unsubscribeUrl === undefined ? {} : { unsubscribeUrl }),
  })
  if (sink !== undefined) log.info({ smtp: smtpUrl }, 'embedded SMTP sink started: mail goes nowhere, see GET /mailbox')
  return {
    smtpUrl,
    sink,
    mailer,
    handler,
    routes (req, res) {
      if (sink === undefined || req.method !== 'GET') return false
      const url = new URL(req.url ?? '/', 'http://x')
      if (url.pathname !== '/mailbox') return false
      const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? MAILBOX_PAGE) || MAILBOX_PAGE, 1), SINK_KEEP)
      writeJson(res, 200, { received: sink.received(), messages: sink.messages(limit) })
      return true
    },
    async close () {
      mailer.close()
      await sink?.close()
    },
  }
}
