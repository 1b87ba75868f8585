// One e-mail job's message, built once (issue 14): the From header, the part headers, the
// boundary and every line of text and html without a placeholder are encoded when the job starts;
// per recipient only To, Subject (when it holds a placeholder), Message-ID, Date, the unsubscribe
// URL and the lines holding `{{name}}`/`{{email}}` are filled. The result is the finished message
// nodemailer sends as `raw` (its DKIM signer still signs it), laid out as nodemailer's own composer
// lays out the same message: same header order, same encodings (test/email-mime.test.ts).
import { randomBytes } from 'node:crypto'
import type { SendMailOptions } from 'nodemailer'
import type MimeNode from 'nodemailer/lib/mime-node'
import { lazyRequire } from '../lazy-require.ts'
import { parseRecipient, type Recipient } from './addresses.ts'
import { compilePart, encodeContent, fillPieces, parsePieces, renderPart, type Piece, type RenderedPart } from './mime-text.ts'

const htmlToText = lazyRequire<typeof import('html-to-text')>('html-to-text')
const mimeFuncs = lazyRequire<typeof import('nodemailer/lib/mime-funcs')>('nodemailer/lib/mime-funcs')
const mimeNode = lazyRequire<typeof MimeNode>('nodemailer/lib/mime-node')
const shared = lazyRequire<typeof import('nodemailer/lib/shared')>('nodemailer/lib/shared')

/** What a message is made of: the stored payload's fields. */
export interface MessageContent {
  from: string
  subject: string
  text?: string
  html?: string
}

/** Options of {@link compileMessage}. */
export interface MessageOptions {
  /** The job id: Message-ID is `<jobId.index@from-domain>`, and `{{job}}` of the unsubscribe URL. */
  jobId: string
  /** RFC 8058 one-click unsubscribe URL template with `{{email}}` and `{{job}}`; none when absent. */
  unsubscribeUrl?: string
}

/** One recipient's message: what `sendMail({ envelope, raw })` takes. */
export interface RenderedMessage {
  envelope: { from: string, to: string[] }
  raw: Buffer
  /**
   * The Message-ID header's value, also given to nodemailer: with `raw` it writes no header of
   * its own but would draw a random id for its logs and `info.messageId` otherwise.
   */
  messageId: string
}

/** A compiled job message. */
export interface MessageTemplate {
  /** The message for recipient `index` of the job. `now` sets the Date header. */
  render (index: number, r: Recipient, now?: number): RenderedMessage
  /**
   * The same message as nodemailer options (the path before issue 14), for comparing what
   * nodemailer's composer makes of it with {@link render}'s output.
   */
  options (index: number, r: Recipient): SendMailOptions
}

/** Fills `{{email}}` (URL-encoded) and `{{job}}` in the unsubscribe URL template. */
export function unsubscribeLink (template: string, email: string, jobId: string): string {
  return template.replace(/\{\{\s*email\s*\}\}/g, encodeURIComponent(email)).replace(/\{\{\s*job\s*\}\}/g, encodeURIComponent(jobId))
}

// nodemailer's MailMessage._formatListUrl: a List-* header carries `<scheme:...>`.
function formatListUrl (url: string): string {
  const clean = url.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '').replace(/[\s<]+|[\s>]+/g, '')
  if (/^(https?|mailto|ftp):/.test(clean)) return `<${clean}>`
  if (/^[^@]+@[^@]+$/.test(clean)) return `<mailto:${clean}>`
  return `<http://${clean}>`
}

// A token per placeholder that html-to-text passes through unchanged: no space to wrap at, no
// letter to upper-case in a heading. U+E000/U+E001 are private-use characters.
const TOKEN_RE = /\uE000(\d+)\uE001/g

/**
 * The plain-text part of an html-only message: html-to-text run once on the template, with each
 * placeholder kept as a token and put back afterwards, so it is filled per recipient like written
 * text. Undefined when the html already holds the token characters (then it is derived per message).
 */
function deriveText (html: string): Piece[] | undefined {
  if (/[\uE000\uE001]/.test(html)) return undefined
  const found: Piece[] = []
  const tokenised = parsePieces(html).map((p) => {
    if (typeof p === 'string') return p
    found.push(p)
    return `\uE000${found.length - 1}\uE001`
  }).join('')
  const text = htmlToText().convert(tokenised, { wordwrap: 78 })
  const pieces: Piece[] = []
  let last = 0
  for (const m of text.matchAll(TOKEN_RE)) {
    if (m.index > last) pieces.push(text.slice(last, m.index))
    pieces.push(found[Number(m[1])] as Piece)
    last = m.index + m[0].length
  }
  if (last < text.length || pieces.length === 0) pieces.push(text.slice(last))
  return pieces
}

// Printable ASCII without a quote: an unstructured value or a Message-ID nodemailer leaves as it is.
const PLAIN_VALUE = /^[\x20\x21\x23-\x7e]*$/

/** A header line as nodemailer's buildHeaders() writes it: encoded, then folded at 76. */
function headerLine (encoder: MimeNode, key: 'From' | 'Subject' | 'Message-ID', value: string): string {
  if (key !== 'From' && PLAIN_VALUE.test(value) && !value.includes('=?') && value.trim() !== '') {
    const line = `${key}: ${value}`
    return `${line.length < 76 ? line : mimeFuncs().foldLines(line, 76)}\r\n` // foldLines returns a shorter line as it is
  }
  const encoded = encoder.encodeHeaderValue(key, value)
  return encoded.trim() === '' ? '' : `${mimeFuncs().foldLines(`${key}: ${encoded}`, 76)}\r\n`
}

/** To: nodemailer's encoding, with a fast path for the common `Plain Name <a@x.org>`. */
function toLine (encoder: MimeNode, r: Recipient): string {
  const at = r.email.lastIndexOf('@')
  const domain = r.email.slice(at + 1)
  // An ASCII host name without A-labels: nodemailer's domainToASCII only lower-cases it.
  if (r.name !== undefined && r.name !== '' && /^[\w ]*$/.test(r.name) && !/xn--/i.test(domain)) {
    const line = `To: ${r.name} <${r.email.slice(0, at)}@${domain.toLowerCase()}>`
    if (line.length <= 76) return `${line}\r\n`
  }
  const value = encoder.encodeHeaderValue('To', r.name === undefined ? r.email : { name: r.name, address: r.email })
  return `${mimeFuncs().foldLines(`To: ${value}`, 76)}\r\n`
}

const TEXT_TYPE = 'text/plain; charset=utf-8'
const HTML_TYPE = 'text/html; charset=utf-8'

/** An envelope address as nodemailer's setEnvelope() writes it: the domain lower-cased (A-labels kept). */
function envelopeAddress (email: string): string {
  const at = email.lastIndexOf('@')
  const domain = email.slice(at + 1)
  return `${email.slice(0, at)}@${/xn--/i.test(domain) ? shared().normalizeDomain(domain, false) : domain.toLowerCase()}`
}

let lastSecond = -1
let lastDate = ''
/** The Date header value, nodemailer's format; one string per second. */
function dateValue (now: number): string {
  const second = Math.floor(now / 1000)
  if (second !== lastSecond) {
    lastSecond = second
    lastDate = new Date(second * 1000).toUTCString().replace(/GMT/, '+0000')
  }
  return lastDate
}

function partBlock (contentType: string, rendered: RenderedPart): string {
  return `Content-Type: ${contentType}\r\nContent-Transfer-Encoding: ${rendered.transferEncoding}\r\n\r\n${rendered.body}`
}

/** Compiles a job's message once; {@link MessageTemplate.render} fills it per recipient. */
export function compileMessage (content: MessageContent, options: MessageOptions): MessageTemplate {
  const encoder = new (mimeNode())()
  const sender = parseRecipient(content.from)
  const fromAddress = envelopeAddress(sender?.email ?? content.from)
  const domain = sender?.email.split('@')[1] ?? 'localhost'
  const subject = parsePieces(content.subject)
  const subjectFixed = subject.length === 1 && typeof subject[0] === 'string'
  const subjectLine = (r: Recipient): string => headerLine(encoder, 'Subject', fillPieces(subject, r, false).trim())
  const fixedSubject = subjectFixed ? subjectLine({ email: '' }) : undefined
  const html = content.html === undefined ? undefined : compilePart(content.html, true)
  // A plain-text part always: written, or derived from the html (once, see deriveText).
  const derived = content.text === undefined ? deriveText(content.html ?? '') : undefined
  const text = content.text !== undefined ? compilePart(content.text, false) : derived !== undefined ? compilePart(derived, false) : undefined
  const boundary = `--_rt-${randomBytes(12).toString('hex')}-Part_1`
  const { unsubscribeUrl } = options
  // In nodemailer's order: custom headers, From, To, Subject, Message-ID, List-*, then Date,
  // MIME-Version and Content-Type last (MimeNode.buildHeaders, MailMessage.setListHeaders).
  const head = (unsubscribeUrl === undefined ? '' : 'List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n') + headerLine(encoder, 'From', content.from)
  const multipartType = `${mimeFuncs().foldLines(`Content-Type: multipart/alternative; boundary="${boundary}"`, 76)}\r\n`

  function textPart (r: Recipient): RenderedPart {
    if (text !== undefined) return renderPart(text, r)
    // html holding U+E000/U+E001: derived from the filled html, as before issue 14
    return encodeContent(htmlToText().convert(html === undefined ? '' : fillPieces(parsePieces(content.html ?? ''), r, true), { wordwrap: 78 }))
  }

  return {
    render (index, r, now = Date.now()) {
      let message = head + toLine(encoder, r) + (fixedSubject ?? subjectLine(r))
      // Deterministic: a resend after a crash carries the same id, so receivers can spot it.
      const messageId = `<${options.jobId}.${index}@${domain}>`
      message += headerLine(encoder, 'Message-ID', messageId)
      if (unsubscribeUrl !== undefined) message += `${mimeFuncs().foldLines(`List-Unsubscribe: ${formatListUrl(unsubscribeLink(unsubscribeUrl, r.email, options.jobId))}`, 76)}\r\n`
      // As nodemailer's MailComposer: an empty text or html is no part; none at all leaves a bare
      // `text/plain` without a transfer encoding, one part goes at the root, two make an alternative.
      const parts: Array<[string, RenderedPart]> = []
      const plain = textPart(r)
      if (plain.body !== '') parts.push([TEXT_TYPE, plain])
      const rich = html === undefined ? undefined : renderPart(html, r)
      if (rich !== undefined && rich.body !== '') parts.push([HTML_TYPE, rich])
      const [first, second] = parts
      if (second === undefined) {
        message += `${first === undefined ? '' : `Content-Transfer-Encoding: ${first[1].transferEncoding}\r\n`}Date: ${dateValue(now)}\r\n` +
          `MIME-Version: 1.0\r\nContent-Type: ${first?.[0] ?? 'text/plain'}\r\n\r\n${first?.[1].body ?? ''}`
        if (!message.endsWith('\r\n')) message += '\r\n'
      } else {
        message += `Date: ${dateValue(now)}\r\nMIME-Version: 1.0\r\n${multipartType}\r\n--${boundary}\r\n` +
          `${partBlock(...(first as [string, RenderedPart]))}\r\n--${boundary}\r\n${partBlock(...second)}\r\n--${boundary}--\r\n`
      }
      return { envelope: { from: fromAddress, to: [envelopeAddress(r.email)] }, raw: Buffer.from(message, 'utf8'), messageId }
    },
    options (index, r) {
      const filledHtml = content.html === undefined ? undefined : fillPieces(parsePieces(content.html), r, true)
      const message: SendMailOptions = {
        from: content.from,
        to: r.name === undefined ? r.email : { name: r.name, address: r.email },
        subject: fillPieces(subject, r, false).trim(),
        messageId: `<${options.jobId}.${index}@${domain}>`,
        text: content.text !== undefined ? fillPieces(parsePieces(content.text), r, false) : derived !== undefined ? fillPieces(derived, r, false) : htmlToText().convert(filledHtml ?? '', { wordwrap: 78 }),
        ...(filledHtml === undefined ? {} : { html: filledHtml }),
      }
      if (unsubscribeUrl !== undefined) {
        message.list = { unsubscribe: unsubscribeLink(unsubscribeUrl, r.email, options.jobId) }
        message.headers = { 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' }
      }
      return message
    },
  }
}
