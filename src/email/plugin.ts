// The e-mail job type as a receiver plugin (server/plugin.ts): the `email` handler, and what the
// receiver has for e-mail only — /suppressions, /bounces and /mailbox, the e-mail metrics, and
// `emails` in GET /stats. The package's createReceiver and `rawtrigger serve` add it.
import type { Counter } from 'prom-client'
import { lazyRequire } from '../lazy-require.ts'
import type { AnyJobHandler } from '../queue/handler.ts'
import type { RouteAccess } from '../server/access.ts'
import type { ReceiverPlugin } from '../server/plugin.ts'
import type { EmailService } from '../smtp/service.ts'
import { SUPPRESSIONS_LIST, suppressionList } from '../smtp/suppressions.ts'
import { BOUNCES_PATH, bounceRoute } from './bounce-route.ts'
import { suppressionRoute } from './suppression-routes.ts'

const loadPromClient = lazyRequire<typeof import('prom-client')>('prom-client')

/** The job type's name: `POST /jobs/email`. */
export const EMAIL_TYPE = 'email'

/** The plugin's rows of the access table (server/access.ts has the rules). */
export const EMAIL_ACCESS: readonly RouteAccess[] = [
  { path: '/mailbox', rule: 'local-or-signed' },
  { path: '/suppressions', rule: 'signed' },
  { path: /^\/suppressions\//, rule: 'signed' },
  { path: BOUNCES_PATH, rule: 'signed' },
]

/** Options of {@link emailPlugin}. */
export interface EmailPluginOptions {
  /** The `email` handler (`emailHandler(…)`); without it and `service` the plugin brings the routes, metrics and stats only. */
  handler?: AnyJobHandler
  /** What `startEmailService` started: its handler, and its sink's mail at `GET /mailbox` when it runs one. */
  service?: EmailService
}

/**
 * The e-mail job type for a receiver. Its metrics: `rawtrigger_emails_total` by outcome,
 * `rawtrigger_smtp_replies_total` by reply code, `rawtrigger_bounces_total` by source and kind.
 */
export function emailPlugin (options: EmailPluginOptions = {}): ReceiverPlugin {
  const handler = options.handler ?? options.service?.handler
  const { service } = options
  return {
    name: 'email',
    ...(handler === undefined ? {} : { handlers: { [EMAIL_TYPE]: handler } }),
    access: EMAIL_ACCESS,
    register ({ queue, registry }) {
      const { Counter } = loadPromClient()
      const emails = new Counter({ name: 'rawtrigger_emails_total', help: 'E-mail outcomes: sent, failed, retry (temporary failure), suppressed.', labelNames: ['outcome'], registers: [registry] })
      const replies = new Counter({ name: 'rawtrigger_smtp_replies_total', help: 'SMTP reply codes of failed or retried sends.', labelNames: ['code'], registers: [registry] })
      const bounces: Counter<'source' | 'kind'> = new Counter({
        name: 'rawtrigger_bounces_total',
        help: 'Bounce and complaint events of POST /bounces, by source and kind (hard, complaint and unsubscribe are suppressed).',
        labelNames: ['source', 'kind'],
        registers: [registry],
      })
      const list = suppressionList(queue.keyedList(SUPPRESSIONS_LIST))
      return {
        route: (ctx, req, res, path, access) =>
          suppressionRoute(list, ctx, req, res, path, access) || bounceRoute(list, bounces, ctx, req, res, path, access) || (service?.routes(req, res) ?? false),
        observe (event) {
          emails.inc({ outcome: event.outcome })
          if (event.code !== undefined) replies.inc({ code: String(event.code) })
        },
        stats: (s) => ({ emails: { sent: s.items.done, failed: s.items.failed, pending: s.items.pending } }),
      }
    },
  }
}
