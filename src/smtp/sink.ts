import type { AddressInfo } from 'node:net'
import { ConfigError } from '../errors.ts'
import { lazyRequire } from '../lazy-require.ts'

const smtpServer = lazyRequire<typeof import('smtp-server')>('smtp-server')

/** The port the embedded sink tries first; the next free one is taken when it is busy. */
export const SINK_PORT = 2525
/** Ports tried after {@link SINK_PORT} before giving up. */
const SINK_PORT_TRIES = 20
/** Messages kept for `GET /mailbox`; older ones are only counted. */
export const SINK_KEEP = 1_000
// Enough of the message to find the Subject and Message-ID headers.
const HEAD_BYTES = 4 * 1024

/** One message the sink caught. */
export interface CaughtMessage {
  from: string
  to: string[]
  subject: string
  messageId: string
  /** Bytes of the message as sent (headers and body). */
  size: number
  /** ISO 8601. */
  receivedAt: string
  /** The start of the message (headers and the first bytes of the body), at most 4 KiB. */
  head: string
}

/** Options of {@link startSink}. */
export interface SinkOptions {
  /** @default 2525, or the next free port; 0 picks any */
  port?: number
  /** @default '127.0.0.1' */
  host?: string
  /** Messages kept in memory. @default 1000 */
  keep?: number
}

/** A running sink. */
export interface Sink {
  /** `smtp://host:port`, for `--smtp`. */
  url: string
  port: number
  /** Messages received since start, kept or not. */
  received (): number
  /** The kept messages, newest first. */
  messages (): CaughtMessage[]
  close (): Promise<void>
}

/** Decodes RFC 2047 encoded words (`=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=`), as a mail client shows them. */
export function decodeWords (value: string): string {
  return value
    .replace(/(\?=)\s+(=\?)/g, '$1$2') // whitespace between encoded words is not part of the text
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (word, charset: string, encoding: string, text: string) => {
      let bytes: Buffer
      if (encoding.toUpperCase() === 'B') bytes = Buffer.from(text, 'base64')
      else bytes = Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1')
      try {
        return new TextDecoder(charset.split('*')[0]).decode(bytes)
      } catch {
        return word // an unknown charset stays as it came
      }
    })
}

function headerValue (head: string, name: string): string {
  const match = new RegExp(`^${name}:[ \\t]*((?:.*)(?:\\r?\\n[ \\t].*)*)`, 'im').exec(head)
  return match === null ? '' : (match[1] as string).replace(/\r?\n[ \t]+/g, ' ').trim()
}

/**
 * An SMTP server that accepts every message and keeps the last ones in memory: what Mailpit or
 * maildev give a developer, in-process, so everything runs on a fresh machine with no mail server.
 */
export async function startSink (options: SinkOptions = {}): Promise<Sink> {
  const host = options.host ?? '127.0.0.1'
  const keep = options.keep ?? SINK_KEEP
  const kept: CaughtMessage[] = []
  let received = 0

  const server = new (smtpServer().SMTPServer)({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    banner: 'rawtrigger sink',
    onData (stream, session, callback) {
      let size = 0
      let head = ''
      stream.on('data', (chunk: Buffer) => {
        if (head.length < HEAD_BYTES) head += chunk.toString('utf8', 0, Math.min(chunk.length, HEAD_BYTES - head.length))
        size += chunk.length
      })
      stream.on('end', () => {
        received++
        const mailFrom = session.envelope.mailFrom
        kept.push({
          from: mailFrom === false ? '' : mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: decodeWords(headerValue(head, 'Subject')),
          messageId: headerValue(head, 'Message-ID'),
          size,
          receivedAt: new Date().toISOString(),
          head,
        })
        if (kept.length > keep) kept.shift()
        callback()
      })
    },
  })
  server.on('error', () => {}) // a client that drops its connection is not the sink's problem

  const listen = (port: number): Promise<number> => new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    server.server.once('error', onError)
    server.listen(port, host, () => {
      server.server.off('error', onError)
      resolve((server.server.address() as AddressInfo).port)
    })
  })

  const first = options.port ?? SINK_PORT
  let port: number | undefined
  for (let i = 0; port === undefined; i++) {
    try {
      port = await listen(first === 0 ? 0 : first + i)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || first === 0 || i >= SINK_PORT_TRIES) {
        throw new ConfigError(`SMTP sink cannot listen on ${host}:${first + i}: ${(err as Error).message}`, { cause: err })
      }
    }
  }

  return {
    url: `smtp://${host}:${port}`,
    port,
    received: () => received,
    messages: () => kept.slice().reverse(),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
