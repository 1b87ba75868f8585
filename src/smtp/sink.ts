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
// A kept message's sender and recipients as JSON: one sender and a few recipients fit.
const ENVELOPE_BYTES = 512

interface Envelope { from: string, to: string[] }

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
  /** The kept messages, newest first: at most `limit` of them (default all). */
  messages (limit?: number): CaughtMessage[]
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
 * The last `keep` messages as bytes in one ring buffer, decoded only when they are read: a kept
 * message lives for the next `keep` messages, long enough for V8 to move it to its old space,
 * where 100,000 messages' worth of 4 KiB heads piled up as garbage until a full collection
 * (measured: serve's peak RSS 243 MB in a 100,000-recipient job, 179 MB with nothing kept). The
 * envelope goes into the ring too, as JSON: kept as objects it still cost 20 MB of that garbage.
 */
class KeptMessages {
  readonly #keep: number
  readonly #heads: Buffer
  readonly #headLengths: Uint16Array
  readonly #sizes: Float64Array
  readonly #receivedAt: Float64Array
  /** Each slot's envelope as JSON bytes; one too long for its slot is kept as an object instead. */
  readonly #envelopes: Buffer
  readonly #envelopeLengths: Uint16Array
  readonly #longEnvelopes = new Map<number, Envelope>()
  #next = 0
  #count = 0

  constructor (keep: number) {
    this.#keep = keep
    this.#heads = Buffer.alloc(keep * HEAD_BYTES)
    this.#headLengths = new Uint16Array(keep)
    this.#sizes = new Float64Array(keep)
    this.#receivedAt = new Float64Array(keep)
    this.#envelopes = Buffer.alloc(keep * ENVELOPE_BYTES)
    this.#envelopeLengths = new Uint16Array(keep)
  }

  add (from: string, to: string[], head: Buffer, headLength: number, size: number): void {
    if (this.#keep === 0) return
    const slot = this.#next
    this.#next = (slot + 1) % this.#keep
    this.#count = Math.min(this.#count + 1, this.#keep)
    head.copy(this.#heads, slot * HEAD_BYTES, 0, headLength)
    this.#headLengths[slot] = headLength
    this.#sizes[slot] = size
    this.#receivedAt[slot] = Date.now()
    this.#longEnvelopes.delete(slot)
    const json = JSON.stringify([from, ...to])
    const written = Buffer.byteLength(json) <= ENVELOPE_BYTES ? this.#envelopes.write(json, slot * ENVELOPE_BYTES, 'utf8') : 0
    this.#envelopeLengths[slot] = written
    if (written === 0) this.#longEnvelopes.set(slot, { from, to })
  }

  #envelope (slot: number): Envelope {
    const long = this.#longEnvelopes.get(slot)
    if (long !== undefined) return { from: long.from, to: long.to.slice() }
    const start = slot * ENVELOPE_BYTES
    const [from, ...to] = JSON.parse(this.#envelopes.toString('utf8', start, start + (this.#envelopeLengths[slot] as number))) as string[]
    return { from: from as string, to }
  }

  newestFirst (limit: number): CaughtMessage[] {
    const out: CaughtMessage[] = []
    for (let i = 1; i <= Math.min(limit, this.#count); i++) {
      const slot = (this.#next - i + this.#keep) % this.#keep
      const start = slot * HEAD_BYTES
      const head = this.#heads.toString('utf8', start, start + (this.#headLengths[slot] as number))
      const envelope = this.#envelope(slot)
      out.push({
        from: envelope.from,
        to: envelope.to,
        subject: decodeWords(headerValue(head, 'Subject')),
        messageId: headerValue(head, 'Message-ID'),
        size: this.#sizes[slot] as number,
        receivedAt: new Date(this.#receivedAt[slot] as number).toISOString(),
        head,
      })
    }
    return out
  }
}

/**
 * An SMTP server that accepts every message and keeps the last ones in memory: what Mailpit or
 * maildev give a developer, in-process, so everything runs on a fresh machine with no mail server.
 */
export async function startSink (options: SinkOptions = {}): Promise<Sink> {
  const host = options.host ?? '127.0.0.1'
  const kept = new KeptMessages(options.keep ?? SINK_KEEP)
  let received = 0

  const server = new (smtpServer().SMTPServer)({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    banner: 'rawtrigger sink',
    onData (stream, session, callback) {
      let size = 0
      // Where the message's first bytes gather until it ends; the ring takes a copy.
      const head = Buffer.allocUnsafe(HEAD_BYTES)
      let headLength = 0
      stream.on('data', (chunk: Buffer) => {
        if (headLength < HEAD_BYTES) headLength += chunk.copy(head, headLength, 0, Math.min(chunk.length, HEAD_BYTES - headLength))
        size += chunk.length
      })
      stream.on('end', () => {
        received++
        const mailFrom = session.envelope.mailFrom
        kept.add(mailFrom === false ? '' : mailFrom.address, session.envelope.rcptTo.map((r) => r.address), head, headLength, size)
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
    messages: (limit = Infinity) => kept.newestFirst(limit),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
