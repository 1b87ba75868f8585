import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { EMAIL_TYPE, emailPlugin } from '../email/plugin.ts'
import { ConfigError, InvalidOptionError } from '../errors.ts'
import { createLogger, LOG_LEVELS, type Logger, type LogLevel } from '../log.ts'
import { parseDomainFlags } from '../smtp/domain-limits.ts'
import { startEmailService, type EmailServiceOptions } from '../smtp/service.ts'
import type { AnyJobHandler } from '../queue/handler.ts'
import { SqliteStore } from '../queue/sqlite-store.ts'
import { checkReceiverOptions, createReceiver, type Receiver, type ReceiverOptions } from '../server/receiver.ts'
import { createWebRoutes } from '../web/routes.ts'
import { durationFlag, intFlag, portFlag } from './args.ts'
import { DOCTOR_JOB_TYPE, doctorJob } from './doctor-job.ts'

export const SERVE_HELP = `rawtrigger serve [options]   receive triggers, store jobs durably, run them after the socket closed

  --port <n>            listen port (default 8080; 0 picks one)              env PORT
  --host <addr>         bind address (default 127.0.0.1); any other address
                        needs --secret                                       env HOST
  --socket <path>       listen on this Unix-domain socket instead of --host and
                        --port; its peers count as local. A stale file from a
                        crash is replaced, a live one refused      env SOCKET_PATH
  --socket-mode <mode>  octal file mode of the socket (default 0660)
  --data-dir <dir>      where the SQLite job store lives (default ./data)     env DATA_DIR
  --sqlite-writer <m>   inline (default): new jobs are committed on the main
                        thread; thread: on a writer thread of their own  env SQLITE_WRITER
  --intake <m>          llhttp (default): POST /jobs/<type> is parsed and
                        answered on the connection; node: every request
                        through node:http                             env INTAKE
  --secret <S>          require Standard Webhooks signatures on /jobs/* and
                        /suppressions (see "Security defaults")            env TRIGGER_SECRET
  --metrics-token <T>   GET /metrics needs Authorization: Bearer <T>, from any
                        peer; without it /metrics answers loopback only     env METRICS_TOKEN
  --concurrency <n>     jobs run at once; 0 only stores (default 1)          env CONCURRENCY
  --handlers <module>   extra job types: a module whose default export maps
                        type names to handlers ({ parse, run })
  --max-body-bytes <n>  largest body of job types without a limit of their
                        own (default 1048576; email allows 16 MiB)          env MAX_BODY_BYTES
E-mail (job type "email"):
  --smtp <url>          smtp://user:pass@host:587 or smtps://…; without it an
                        embedded sink catches all mail (GET /mailbox)       env SMTP_URL
  --sink-port <n>       port of the embedded sink (default 2525, or the next free)
  --from <addr>         sender when a job names none                         env MAIL_FROM
  --retry-base-ms <ms>  first wait after a temporary SMTP failure (421, 45x,
                        connection errors); doubled per try (default 120000) env RETRY_BASE_MS
  --max-attempts <n>    tries per recipient (default 5)                      env MAX_ATTEMPTS
  --smtp-max-connections <n>  pooled connections (default 5)
  --smtp-max-messages <n>     messages per connection (default 100)
  --smtp-rate-limit <n>       messages per --smtp-rate-delta-ms (default unlimited)
  --smtp-rate-delta-ms <ms>   (default 1000)
  --domain-concurrency <n>    messages in flight to one receiving domain
                        (default 5); domain=n for one domain  env DOMAIN_CONCURRENCY
  --domain-rate <r>     messages per second to one domain: 20, 20/s, 600/m,
                        1000/h; gmail.com=20 for one domain (default no limit).
                        Both repeatable or comma-separated        env DOMAIN_RATE
  --grace-ms <ms>       on SIGTERM, how long running jobs may finish before
                        they are handed back to the queue (default 10000)
  --lease-ms <ms>       lease of a running job (BullMQ: a chunk's lock); another
                        worker takes it over when it lapses (default 30000; 15000)
Scaling out on Redis (BullMQ):
  --queue <url>         redis://host:6379/0: jobs go to BullMQ instead of SQLite;
                        any number of serve processes share them    env QUEUE_URL
  --queue-prefix <p>    Redis key prefix (default rawtrigger)
  --chunk-size <n>      recipients per BullMQ job (default 200)
  --rate-limit <n>      e-mails per second across all workers       env RATE_LIMIT
Operating:
  --retain <duration>   delete finished jobs after this: 7d (default), 12h, 0 = keep
  --unsubscribe-url <t> List-Unsubscribe one-click URL, {{email}} and {{job}} filled
  --dkim-domain <d> --dkim-selector <s> --dkim-key-file <pem>   sign every message
  --log-level <level>   ${LOG_LEVELS.join(', ')} (default info)      env LOG_LEVEL

Prints one line with the URL it serves; logs are JSON lines on stderr.
SIGTERM/SIGINT: stop accepting, finish or hand back running jobs, exit 0.
`

/** A URL without its password, for printing. */
function redacted (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.href
  } catch {
    return url
  }
}

function env (name: string): string | undefined {
  const value = process.env[name]
  return value === '' ? undefined : value
}

async function loadHandlers (module: string | undefined): Promise<Record<string, AnyJobHandler>> {
  if (module === undefined) return {}
  const loaded = await import(pathToFileURL(resolve(module)).href) as { default?: unknown }
  const handlers = loaded.default
  if (typeof handlers !== 'object' || handlers === null) {
    throw new ConfigError(`--handlers ${module}: the default export must map job types to { parse, run }`)
  }
  for (const [type, h] of Object.entries(handlers)) {
    if (typeof (h as AnyJobHandler).parse !== 'function' || typeof (h as AnyJobHandler).run !== 'function') {
      throw new ConfigError(`--handlers ${module}: handler ${JSON.stringify(type)} needs parse() and run()`)
    }
  }
  return handlers as Record<string, AnyJobHandler>
}

function emailOptions (values: Record<string, string | boolean | string[] | undefined>, log: Logger): EmailServiceOptions {
  const flag = (name: string): string | undefined => values[name] as string | undefined
  const options: EmailServiceOptions = { log }
  const smtp = flag('smtp') ?? env('SMTP_URL')
  if (smtp !== undefined) options.smtpUrl = smtp
  const from = flag('from') ?? env('MAIL_FROM')
  if (from !== undefined) options.from = from
  const unsubscribeUrl = flag('unsubscribe-url') ?? env('UNSUBSCRIBE_URL')
  if (unsubscribeUrl !== undefined) options.unsubscribeUrl = unsubscribeUrl
  const dkim = [flag('dkim-domain'), flag('dkim-selector'), flag('dkim-key-file')]
  if (dkim.some((v) => v !== undefined)) {
    const [domainName, keySelector, keyFile] = dkim
    if (domainName === undefined || keySelector === undefined || keyFile === undefined) {
      throw new InvalidOptionError('DKIM needs all three: --dkim-domain, --dkim-selector and --dkim-key-file')
    }
    options.dkim = { domainName, keySelector, privateKey: readFileSync(keyFile, 'utf8') }
  }
  const ints: Array<[keyof EmailServiceOptions, string, string | undefined, number]> = [
    ['retryBaseMs', '--retry-base-ms', flag('retry-base-ms') ?? env('RETRY_BASE_MS'), 1],
    ['maxAttempts', '--max-attempts', flag('max-attempts') ?? env('MAX_ATTEMPTS'), 1],
    ['maxConnections', '--smtp-max-connections', flag('smtp-max-connections'), 1],
    ['maxMessages', '--smtp-max-messages', flag('smtp-max-messages'), 1],
    ['rateLimit', '--smtp-rate-limit', flag('smtp-rate-limit'), 1],
    ['rateDeltaMs', '--smtp-rate-delta-ms', flag('smtp-rate-delta-ms'), 1],
  ]
  const list = (name: string, envName: string): string[] => (values[name] as string[] | undefined) ?? (env(envName) === undefined ? [] : [env(envName) as string])
  const domainLimits = parseDomainFlags(list('domain-concurrency', 'DOMAIN_CONCURRENCY'), list('domain-rate', 'DOMAIN_RATE'))
  if (Object.keys(domainLimits).length > 0) options.domainLimits = domainLimits
  const sinkPort = portFlag('--sink-port', flag('sink-port'))
  if (sinkPort !== undefined) options.sinkPort = sinkPort
  for (const [key, name, value, min] of ints) {
    const n = intFlag(name, value, min)
    if (n !== undefined) (options as unknown as Record<string, number>)[key] = n
  }
  return options
}

/** `rawtrigger serve`. */
export async function serve (argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      socket: { type: 'string' },
      'socket-mode': { type: 'string' },
      'data-dir': { type: 'string' },
      'sqlite-writer': { type: 'string' },
      intake: { type: 'string' },
      secret: { type: 'string' },
      'metrics-token': { type: 'string' },
      concurrency: { type: 'string' },
      handlers: { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'grace-ms': { type: 'string' },
      'lease-ms': { type: 'string' },
      queue: { type: 'string' },
      'queue-prefix': { type: 'string' },
      'chunk-size': { type: 'string' },
      'rate-limit': { type: 'string' },
      retain: { type: 'string' },
      'unsubscribe-url': { type: 'string' },
      'dkim-domain': { type: 'string' },
      'dkim-selector': { type: 'string' },
      'dkim-key-file': { type: 'string' },
      'log-level': { type: 'string' },
      smtp: { type: 'string' },
      'sink-port': { type: 'string' },
      from: { type: 'string' },
      'retry-base-ms': { type: 'string' },
      'max-attempts': { type: 'string' },
      'smtp-max-connections': { type: 'string' },
      'smtp-max-messages': { type: 'string' },
      'smtp-rate-limit': { type: 'string' },
      'smtp-rate-delta-ms': { type: 'string' },
      'domain-concurrency': { type: 'string', multiple: true },
      'domain-rate': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(SERVE_HELP)
    return
  }
  if (positionals.length > 0) throw new InvalidOptionError(`serve takes no arguments (got ${positionals.join(' ')})`)
  const level = values['log-level'] ?? env('LOG_LEVEL') ?? 'info'
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new InvalidOptionError(`--log-level must be one of ${LOG_LEVELS.join(', ')} (got ${level})`)
  }
  const log = createLogger(level as LogLevel)
  const options: ReceiverOptions & { dataDir?: string } = {
    host: values.host ?? env('HOST') ?? '127.0.0.1',
    port: portFlag('--port', values.port ?? env('PORT')) ?? 8080,
    dataDir: values['data-dir'] ?? env('DATA_DIR') ?? './data',
    concurrency: intFlag('--concurrency', values.concurrency ?? env('CONCURRENCY'), 0) ?? 1,
    handlers: await loadHandlers(values.handlers),
    logger: log,
  }
  const secret = values.secret ?? env('TRIGGER_SECRET')
  if (secret !== undefined) options.secret = secret
  const metricsToken = values['metrics-token'] ?? env('METRICS_TOKEN')
  if (metricsToken !== undefined) options.metricsToken = metricsToken
  const maxBody = intFlag('--max-body-bytes', values['max-body-bytes'] ?? env('MAX_BODY_BYTES'))
  if (maxBody !== undefined) options.maxBodyBytes = maxBody
  const graceMs = intFlag('--grace-ms', values['grace-ms'], 0)
  if (graceMs !== undefined) options.graceMs = graceMs
  const leaseMs = intFlag('--lease-ms', values['lease-ms'], 100)
  if (leaseMs !== undefined) options.leaseMs = leaseMs
  const retainMs = durationFlag('--retain', values.retain ?? env('RETAIN'))
  if (retainMs !== undefined) options.retainMs = retainMs
  // A flag beats the environment: --host/--port over SOCKET_PATH, --socket over HOST/PORT.
  const tcpFlags = values.host !== undefined || values.port !== undefined
  if (values.socket !== undefined && tcpFlags) throw new InvalidOptionError('--socket replaces --host and --port: give one or the other')
  const socketPath = values.socket ?? (tcpFlags ? undefined : env('SOCKET_PATH'))
  if (socketPath !== undefined) options.socketPath = socketPath
  const socketMode = values['socket-mode']
  if (socketMode !== undefined) {
    if (!/^0?[0-7]{3}$/.test(socketMode)) throw new InvalidOptionError(`--socket-mode must be an octal file mode like 0660 (got ${socketMode})`)
    if (socketPath === undefined) throw new InvalidOptionError('--socket-mode needs --socket')
    options.socketMode = parseInt(socketMode, 8)
  }

  const writer = values['sqlite-writer'] ?? env('SQLITE_WRITER')
  if (writer !== undefined && writer !== 'thread' && writer !== 'inline') {
    throw new InvalidOptionError(`--sqlite-writer must be thread or inline (got ${writer})`)
  }
  const intake = values.intake ?? env('INTAKE')
  if (intake !== undefined && intake !== 'llhttp' && intake !== 'node') throw new InvalidOptionError(`--intake must be llhttp or node (got ${intake})`)
  if (intake !== undefined) options.intake = intake
  checkReceiverOptions(options) // before Redis or the sink: a bad configuration fails alone

  const queueUrl = values.queue ?? env('QUEUE_URL')
  if (queueUrl !== undefined) {
    const rateLimit = intFlag('--rate-limit', values['rate-limit'] ?? env('RATE_LIMIT'))
    const chunkSize = intFlag('--chunk-size', values['chunk-size'])
    // Loaded only here: bullmq and ioredis are ~20 MB of memory a SQLite serve does not need.
    const { BullmqQueue } = await import('../queue/bullmq-queue.ts')
    options.queue = new BullmqQueue({
      url: queueUrl,
      ...(values['queue-prefix'] === undefined ? {} : { prefix: values['queue-prefix'] }),
      ...(chunkSize === undefined ? {} : { chunkSize }),
      ...(rateLimit === undefined ? {} : { rateLimit }),
      ...(options.retainMs === undefined ? {} : { retainMs: options.retainMs }),
    })
  }
  // Opened before the sink starts: a damaged or unwritable store fails first, naming its file.
  if (queueUrl === undefined) options.store = new SqliteStore(options.dataDir ?? './data', writer === undefined ? {} : { writer })
  const email = await startEmailService(emailOptions(values, log))
  // doctor: the do-nothing job `rawtrigger doctor` fires to see which triggers arrive. An `email`
  // of --handlers replaces the built-in handler; the e-mail plugin's routes and metrics stay.
  const { [EMAIL_TYPE]: ownEmail, ...own } = options.handlers ?? {}
  options.handlers = { [DOCTOR_JOB_TYPE]: doctorJob, ...own }
  options.plugins = [emailPlugin({ service: email, ...(ownEmail === undefined ? {} : { handler: ownEmail }) })]
  // The web page fires its triggers at this receiver: bound once it listens.
  let listening: Receiver | undefined
  const web = createWebRoutes({ target: () => listening && { url: listening.url, socketPath: listening.socketPath, jobs: listening.queue }, log, ...(secret === undefined ? {} : { secret }) })
  options.routes = web
  const { dataDir: _dir, ...receiverOptions } = options
  const receiver = await createReceiver(receiverOptions).catch(async (err: unknown) => {
    await email.close()
    throw err
  })
  listening = receiver
  const on = receiver.socketPath === undefined ? receiver.url : `${receiver.url} via unix:${receiver.socketPath}`
  process.stdout.write(`rawtrigger listening on ${on} (jobs: ${[EMAIL_TYPE, ...Object.keys(options.handlers)].join(', ')}; store: ${queueUrl === undefined ? resolve(options.dataDir ?? '') : redacted(queueUrl)}; mail: ${email.sink === undefined ? redacted(email.smtpUrl) : `${email.smtpUrl} (embedded sink)`}; concurrency ${options.concurrency ?? 1})\n`)
  log.info({ url: receiver.url, ...(receiver.socketPath === undefined ? {} : { socketPath: receiver.socketPath }) }, 'listening')

  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal }, 'stopping: no new requests, running jobs finish or go back to the queue')
    receiver.close().then(() => email.close()).then(() => {
      log.info('stopped')
      log.flush()
      process.exitCode = 0
    }, (err: unknown) => {
      log.error({ err }, 'stop failed')
      log.flush()
      process.exitCode = 1
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
