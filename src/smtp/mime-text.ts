// The text parts of a templated message, compiled once per job and encoded per recipient the way
// nodemailer's MimeNode encodes a string content (issue 14): the same choice of 7bit,
// quoted-printable or base64, the same QP encoder and line wrap (nodemailer/lib/qp), the same
// base64 wrap. Lines without a placeholder are encoded once; only the lines that hold
// `{{name}}` or `{{email}}` are filled and encoded again for each recipient.
import { lazyRequire } from '../lazy-require.ts'
import type { Recipient } from './addresses.ts'

const base64 = lazyRequire<typeof import('nodemailer/lib/base64')>('nodemailer/lib/base64')
const mimeFuncs = lazyRequire<typeof import('nodemailer/lib/mime-funcs')>('nodemailer/lib/mime-funcs')
const qp = lazyRequire<typeof import('nodemailer/lib/qp')>('nodemailer/lib/qp')

/** Line length of encoded bodies, nodemailer's (and RFC 2045's) 76. */
const LINE_LENGTH = 76
// nodemailer's hasLongerLines() calls a content above 128 KiB long-lined without looking.
const LONG_CONTENT = 128 * 1024

/** A piece of a template: literal text, the address, or the name with an optional fallback. */
export type Piece = string | { readonly email: true } | { readonly name: true, readonly fallback?: string }

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
// The same placeholders as fill() in addresses.ts: `{{email}}`, `{{name}}`, `{{name|fallback}}`.
const PLACEHOLDER_RE = /\{\{\s*(?:(email)|name(?:\s*\|([^}|]*))?)\s*\}\}/g

/** Splits a template at its placeholders. */
export function parsePieces (template: string): Piece[] {
  const pieces: Piece[] = []
  let last = 0
  for (const m of template.matchAll(PLACEHOLDER_RE)) {
    if (m.index > last) pieces.push(template.slice(last, m.index))
    const fallback = m[2]?.trim()
    pieces.push(m[1] !== undefined ? { email: true } : fallback === undefined ? { name: true } : { name: true, fallback })
    last = m.index + m[0].length
  }
  if (last < template.length || pieces.length === 0) pieces.push(template.slice(last))
  return pieces
}

/** Fills pieces for one recipient: what fill() gives for the template they came from. */
export function fillPieces (pieces: readonly Piece[], r: Recipient, html: boolean): string {
  let out = ''
  for (const p of pieces) {
    if (typeof p === 'string') {
      out += p
      continue
    }
    const value = 'email' in p ? r.email : r.name !== undefined && r.name !== '' ? r.name : p.fallback ?? ''
    out += html ? value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string) : value
  }
  return out
}

/** What decides a part's transfer encoding, for one or more lines (CRLF line ends). */
interface Encoded {
  text: string
  /** No control or non-ASCII character (nodemailer's isPlainText). */
  plain: boolean
  /** A line longer than 76 characters. */
  long: boolean
  latin: number
  nonLatin: number
  /** Quoted-printable, before and after wrapping; computed when needed. */
  qp: string | undefined
  wrapped: string | undefined
}

function measure (text: string): Encoded {
  let latin = 0
  let nonLatin = 0
  // nodemailer's _getTextEncoding: Q when latin letters outnumber 8-bit and control characters.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c <= 0x08 || c === 0x0b || c === 0x0c || (c >= 0x0e && c <= 0x1f) || c >= 0x80) nonLatin++
    else if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) latin++
  }
  return { text, plain: mimeFuncs().isPlainText(text), long: /^.{77,}/m.test(text), latin, nonLatin, qp: undefined, wrapped: undefined }
}

// What nodemailer's qp.Encoder stream makes of a string content, line by line. Lines up to a CRLF:
// with CRLF line ends wrap() starts a new window after each line end, so lines wrapped one by one
// join to what the whole content wraps to. The last line, without a CRLF, is wrapped as the tail
// of a longer string: wrap() returns a short string as it is, but breaks a 51–76 character last
// line at punctuation when the whole is longer than 76. Whitespace that ends the content is held
// back by the encoder and wrapped with the last output line alone, at the end (its _flush()).
const PAD = `${'x'.repeat(LINE_LENGTH - 2)}\r\n`

function qpOf (e: Encoded): string {
  e.qp ??= qp().encode(e.text)
  return e.qp
}

function wrappedLine (e: Encoded): string {
  e.wrapped ??= qp().wrap(qpOf(e), LINE_LENGTH)
  return e.wrapped
}

function quotedPrintable (lines: readonly Encoded[]): string {
  const last = lines[lines.length - 1] as Encoded
  const trailing = /[ \t]+$/.exec(last.text)?.[0] ?? ''
  const lastText = last.text.slice(0, last.text.length - trailing.length)
  const lastQp = trailing === '' ? qpOf(last) : qp().encode(lastText)
  let whole = lastQp.length
  let body = ''
  for (let i = 0; i < lines.length - 1; i++) {
    whole += qpOf(lines[i] as Encoded).length
    body += wrappedLine(lines[i] as Encoded)
  }
  let tail: string
  if (lastText.endsWith('\n')) tail = trailing === '' ? wrappedLine(last) : qp().wrap(lastQp, LINE_LENGTH)
  else tail = whole <= LINE_LENGTH ? lastQp : qp().wrap(PAD + lastQp, LINE_LENGTH).slice(PAD.length)
  if (trailing !== '') {
    const cut = tail.lastIndexOf('\n') + 1
    tail = tail.slice(0, cut) + qp().wrap(tail.slice(cut) + qp().encode(trailing), LINE_LENGTH)
  }
  return body + tail
}

/** SMTP carries CRLF: every CR, LF or CRLF becomes CRLF, as nodemailer's DataStream does on the wire. */
export function crlf (text: string): string {
  return /\r(?!\n)|(?<!\r)\n/.test(text) ? text.replace(/\r\n|\r|\n/g, '\r\n') : text
}

type Line = { readonly fixed: Encoded } | { readonly pieces: readonly Piece[] }

/** A text or html part compiled once: its lines, each fixed or to be filled per recipient. */
export interface PartTemplate {
  /** `text/plain; charset=utf-8` or `text/html; charset=utf-8`. */
  readonly contentType: string
  /** True when no line holds a placeholder: {@link renderPart} returns the same body every time. */
  readonly fixed: boolean
  readonly lines: readonly Line[]
  readonly html: boolean
  /** The body when `fixed`. */
  cached?: RenderedPart
}

/** One part as it goes out. */
export interface RenderedPart {
  transferEncoding: '7bit' | 'quoted-printable' | 'base64'
  /** The encoded body, CRLF line ends, no trailing line break added. */
  body: string
}

/**
 * Compiles a text (`html` false) or html template, given as a string or as pieces already split
 * at their placeholders, into a {@link PartTemplate}.
 */
export function compilePart (template: string | readonly Piece[], html: boolean): PartTemplate {
  const lines: Line[] = []
  let fixedRun = '' // consecutive lines without a placeholder, kept as one text
  let line: Piece[] = []
  let dynamic = false
  const endLine = (): void => {
    if (dynamic) {
      if (fixedRun !== '') lines.push({ fixed: measure(fixedRun) })
      fixedRun = ''
      lines.push({ pieces: line })
    } else {
      fixedRun += line.join('')
    }
    line = []
    dynamic = false
  }
  for (const piece of typeof template === 'string' ? parsePieces(template) : template) {
    if (typeof piece !== 'string') {
      line.push(piece)
      dynamic = true
      continue
    }
    // Split after each line end, keeping it as CRLF.
    const parts = piece.split(/(?<=\r\n|\r(?!\n)|\n)/)
    for (const text of parts) {
      if (text !== '') line.push(crlf(text))
      if (/[\r\n]$/.test(text)) endLine()
    }
  }
  endLine()
  if (fixedRun !== '') lines.push({ fixed: measure(fixedRun) })
  const part: PartTemplate = { contentType: html ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8', fixed: lines.every((l) => 'fixed' in l), lines, html }
  if (part.fixed) part.cached = renderPart(part, { email: '' })
  return part
}

/** Fills and encodes a part for one recipient. */
export function renderPart (part: PartTemplate, r: Recipient): RenderedPart {
  if (part.cached !== undefined) return part.cached
  const lines: Encoded[] = part.lines.map((l) => 'fixed' in l ? l.fixed : measure(crlf(fillPieces(l.pieces, r, part.html))))
  return encodeLines(lines)
}

/** Encodes one whole string as nodemailer would (for text derived per message, and for tests). */
export function encodeContent (text: string): RenderedPart {
  return encodeLines([measure(crlf(text))])
}

function encodeLines (lines: Encoded[]): RenderedPart {
  let plain = true
  let long = false
  let latin = 0
  let nonLatin = 0
  let length = 0
  for (const l of lines) {
    plain &&= l.plain
    long ||= l.long
    latin += l.latin
    nonLatin += l.nonLatin
    length += l.text.length
  }
  // nodemailer's MimeNode.getTransferEncoding() for a string content of a text/* node.
  if (plain && !long && length <= LONG_CONTENT) return { transferEncoding: '7bit', body: join(lines, (l) => l.text) }
  if (nonLatin < latin) return { transferEncoding: 'quoted-printable', body: quotedPrintable(lines) }
  return { transferEncoding: 'base64', body: base64().wrap(base64().encode(join(lines, (l) => l.text)), LINE_LENGTH) }
}

function join (lines: Encoded[], pick: (l: Encoded) => string): string {
  if (lines.length === 1) return pick(lines[0] as Encoded)
  let out = ''
  for (const l of lines) out += pick(l)
  return out
}
