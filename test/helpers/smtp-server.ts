// A real in-process SMTP server (smtp-server) on 127.0.0.1, port 0, that records every message it
// accepts and misbehaves on demand through a fault plan: per-recipient RCPT TO replies (451, 550, …)
// for the first N tries, dropped connections in the middle of a batch, a delay per message.
// nodemailer's own pool tests work the same way (STYLE.md point 11): the real server, not a mock.
import type { AddressInfo, Socket } from 'node:net'
import { SMTPServer, type SMTPServerSession } from 'smtp-server'

/** A reply to RCPT TO for one address, on its first `times` tries. */
export interface RcptFault {
  /** SMTP reply code, e.g. 451 (temporary) or 550 (permanent). */
  code: number
  /** Reply text after the code. @default a text naming the code */
  message?: string
  /** Tries answered this way before the address is accepted; `Infinity` for always. @default 1 */
  times?: number
}

/** What the server does wrong, and when. */
export interface FaultPlan {
  /** Keyed by address, case-insensitive. */
  rcpt?: Record<string, RcptFault>
  /**
   * When the n-th message (1-based, counting every DATA that arrived, delivered or not) has been
   * read, every open connection is destroyed before that message is acknowledged: the message is
   * not delivered, and other connections lose what they had in flight.
   */
  dropAtMessage?: readonly number[]
  /** Milliseconds between the end of a message's data and its 250 reply. @default 0 */
  dataDelayMs?: number
}

/** One message the server accepted (answered 250 to). */
export interface DeliveredMessage {
  /** Envelope recipients (RCPT TO), as given. */
  rcpt: string[]
  /** Envelope sender. */
  mailFrom: string
  /** Decoded Subject header. */
  subject: string
  /** Message-ID header, with its angle brackets. */
  messageId: string
  /** The text/plain part, decoded, LF line ends (empty when there is none or `light` is set). */
  text: string
  /** The text/html part, decoded (empty when there is none or `light` is set). */
  html: string
  /** Decoded To header. */
  to: string
  /** Top-level header names, lower-cased, in order (folded lines joined). */
  headerNames: string[]
  /** smtp-server's session id: which connection carried it. */
  session: string
  /** The message as it arrived, byte for byte (with `light`, only its first 8 KiB or so). */
  raw: Buffer
}

/** Options of {@link startSmtpServer}. */
export interface SmtpServerOptions {
  faults?: FaultPlan
  /** Record envelope, Subject and Message-ID only (large jobs: no bodies kept). @default false */
  light?: boolean
}

/** A running test SMTP server. */
export interface TestSmtpServer {
  /** `smtp://127.0.0.1:PORT`. */
  readonly url: string
  readonly port: number
  /** Accepted messages in the order of their 250 replies. */
  readonly delivered: readonly DeliveredMessage[]
  /** TCP connections accepted so far. */
  readonly connections: number
  /** Times connections were dropped by the fault plan (each drop may close several). */
  readonly drops: number
  /** Messages whose data arrived, delivered or not. */
  readonly dataReceived: number
  /** RCPT TO commands seen for `address` (case-insensitive), accepted or not. */
  rcptTries (address: string): number
  /** Messages delivered per envelope recipient, lower-cased. */
  countByAddress (): Map<string, number>
  /** Deliveries beyond the first, summed over all addresses. */
  duplicates (): number
  /** Resolves once `count` messages were delivered; rejects after `timeoutMs`. */
  waitForDelivered (count: number, timeoutMs: number): Promise<void>
  close (): Promise<void>
}

/** Decodes RFC 2047 encoded words (`=?UTF-8?Q?…?=`, `=?UTF-8?B?…?=`). */
export function decodeWords (value: string): string {
  return value
    .replace(/\?=\s+=\?/g, '?==?') // whitespace between two encoded words is not part of the text
    .replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g, (_, _charset: string, enc: string, text: string) => {
      if (enc.toUpperCase() === 'B') return Buffer.from(text, 'base64').toString('utf8')
      return decodeQuotedPrintable(text.replace(/_/g, ' '))
    })
}

/** Decodes a quoted-printable body (RFC 2045 §6.7) as UTF-8. */
export function decodeQuotedPrintable (text: string): string {
  const bytes: number[] = []
  const src = text.replace(/=\r?\n/g, '') // soft line breaks
  for (let i = 0; i < src.length; i++) {
    const c = src[i] as string
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(src.slice(i + 1, i + 3))) {
      bytes.push(parseInt(src.slice(i + 1, i + 3), 16))
      i += 2
    } else {
      for (const b of Buffer.from(c, 'utf8')) bytes.push(b)
    }
  }
  return Buffer.from(bytes).toString('utf8')
}

interface Part { headers: Map<string, string>, body: string }

function splitPart (raw: string): Part {
  const end = raw.search(/\r?\n\r?\n/)
  const head = end === -1 ? raw : raw.slice(0, end)
  const body = end === -1 ? '' : raw.slice(end).replace(/^\r?\n\r?\n/, '')
  const headers = new Map<string, string>()
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { headers, body }
}

function decodeBody (part: Part): string {
  const encoding = (part.headers.get('content-transfer-encoding') ?? '7bit').toLowerCase()
  if (encoding === 'base64') return Buffer.from(part.body.replace(/\s+/g, ''), 'base64').toString('utf8')
  if (encoding === 'quoted-printable') return decodeQuotedPrintable(part.body)
  return part.body
}

/** The text/plain and text/html parts of a message (one level of multipart, as nodemailer sends). */
export function textParts (raw: string): { headers: Map<string, string>, text: string, html: string } {
  const top = splitPart(raw)
  const type = top.headers.get('content-type') ?? 'text/plain'
  const out = { headers: top.headers, text: '', html: '' }
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1]
  const parts = boundary === undefined
    ? [top]
    : top.body.split(`--${boundary}`).slice(1).filter((p) => !p.startsWith('--')).map((p) => splitPart(p.replace(/^\r?\n/, '')))
  for (const part of parts) {
    const partType = (part.headers.get('content-type') ?? 'text/plain').toLowerCase()
    // SMTP carries CRLF line ends; the parts are compared with the LF text that was sent.
    const body = decodeBody(part).replace(/\r\n/g, '\n').replace(/\n$/, '')
    if (partType.startsWith('text/plain')) out.text = body
    else if (partType.startsWith('text/html')) out.html = body
  }
  return out
}

function smtpError (code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code })
}

/** Starts the server. Close it in `t.after()`. */
export async function startSmtpServer (options: SmtpServerOptions = {}): Promise<TestSmtpServer> {
  const faults = options.faults ?? {}
  const rcptFaults = new Map(Object.entries(faults.rcpt ?? {}).map(([k, v]) => [k.toLowerCase(), v]))
  const dropAt = new Set(faults.dropAtMessage ?? [])
  const delivered: DeliveredMessage[] = []
  const tries = new Map<string, number>()
  const sockets = new Set<Socket>()
  const waiters = new Set<() => void>()
  let connections = 0
  let drops = 0
  let dataReceived = 0

  function dropAll (): void {
    drops++
    for (const socket of sockets) socket.destroy()
  }

  function countByAddress (): Map<string, number> {
    const counts = new Map<string, number>()
    for (const m of delivered) {
      for (const r of m.rcpt) counts.set(r.toLowerCase(), (counts.get(r.toLowerCase()) ?? 0) + 1)
    }
    return counts
  }

  function deliver (session: SMTPServerSession, bytes: Buffer): void {
    const raw = bytes.toString('utf8')
    const mailFrom = session.envelope.mailFrom
    const rcpt = session.envelope.rcptTo.map((r) => r.address)
    const parsed = options.light === true ? { headers: splitPart(raw).headers, text: '', html: '' } : textParts(raw)
    delivered.push({
      rcpt,
      mailFrom: mailFrom === false ? '' : mailFrom.address,
      subject: decodeWords(parsed.headers.get('subject') ?? ''),
      messageId: parsed.headers.get('message-id') ?? '',
      to: decodeWords(parsed.headers.get('to') ?? ''),
      text: parsed.text,
      html: parsed.html,
      headerNames: [...parsed.headers.keys()],
      session: session.id,
      raw: bytes,
    })
    for (const waiter of waiters) waiter()
  }

  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onRcptTo (address, _session, callback) {
      const key = address.address.toLowerCase()
      const n = (tries.get(key) ?? 0) + 1
      tries.set(key, n)
      const fault = rcptFaults.get(key)
      if (fault !== undefined && n <= (fault.times ?? 1)) {
        callback(smtpError(fault.code, fault.message ?? `test server says ${fault.code} to ${address.address}`))
        return
      }
      callback()
    },
    onData (stream, session, callback) {
      const chunks: Buffer[] = []
      // Only the head is needed in light mode; the stream must still be read to its end.
      let kept = 0
      stream.on('data', (chunk: Buffer) => {
        if (options.light === true && kept > 8192) return
        chunks.push(chunk)
        kept += chunk.length
      })
      stream.on('end', () => {
        dataReceived++
        if (dropAt.has(dataReceived)) {
          dropAll() // the callback is never called: this message was not accepted
          return
        }
        const finish = (): void => {
          deliver(session, Buffer.concat(chunks))
          callback()
        }
        if ((faults.dataDelayMs ?? 0) > 0) setTimeout(finish, faults.dataDelayMs)
        else finish()
      })
    },
  })
  // Clients that vanish (nodemailer closing idle pool connections, our own drops) are normal here.
  server.on('error', () => {})
  server.server.on('connection', (socket: Socket) => {
    connections++
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.server.off('error', reject)
      resolve()
    })
  })
  const port = (server.server.address() as AddressInfo).port

  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    delivered,
    get connections () { return connections },
    get drops () { return drops },
    get dataReceived () { return dataReceived },
    rcptTries: (address) => tries.get(address.toLowerCase()) ?? 0,
    countByAddress,
    duplicates () {
      let extra = 0
      for (const n of countByAddress().values()) extra += n - 1
      return extra
    },
    waitForDelivered (count, timeoutMs) {
      if (delivered.length >= count) return Promise.resolve()
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`${delivered.length} of ${count} messages delivered after ${timeoutMs} ms`))
        }, timeoutMs)
        const check = (): void => {
          if (delivered.length < count) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve()
        }
        waiters.add(check)
      })
    },
    close () {
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Pooled clients keep idle connections open; close() would wait for them otherwise.
        for (const socket of sockets) socket.destroy()
      })
    },
  }
}
