import { isIP } from 'node:net'
import {
  ForbiddenHeaderError,
  InvalidBodyError,
  InvalidHeaderNameError,
  InvalidHeaderValueError,
  InvalidMethodError,
  InvalidUrlError,
} from '../errors.ts'
import { sign, type Secret } from './sign.ts'

/** Sent unless the caller sets its own `User-Agent`. */
export const USER_AGENT = 'rawtrigger/0.1'

// RFC 9110 §5.6.2: token = 1*tchar
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// RFC 9110 §5.5: field-value is VCHAR, obs-text (0x80-0xFF), SP and HTAB. Everything else —
// CR, LF, NUL, other controls, DEL, and anything above U+00FF — is refused.
const BAD_VALUE_RE = /[^\t\x20-\x7e\x80-\xff]/
// Framing headers are ours alone: a caller's value could split or smuggle the request.
const FORBIDDEN = new Set(['content-length', 'host', 'transfer-encoding', 'connection'])

/** A request body: UTF-8 text, raw bytes, or a plain object / array sent as JSON. */
export type Body = string | Uint8Array | Record<string, unknown> | readonly unknown[]

/** Header values; an array repeats the field. */
export type HeaderInput = Record<string, string | number | readonly string[]>

/** What decides the bytes of a request. */
export interface RequestOptions {
  /** HTTP method, any RFC 9110 token. @default 'POST' with a body, else 'GET' */
  method?: string
  /** Extra headers, written after ours in the order given. */
  headers?: HeaderInput
  /** The body. A plain object or array is sent as JSON with `Content-Type: application/json`. */
  body?: Body
  /** Signs the request per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`). */
  secret?: Secret
}

/** A URL taken apart for connecting and for the request line. */
export interface Target {
  tls: boolean
  /** Host name or IP for `connect()`; IPv6 without brackets. */
  hostname: string
  port: number
  /** `Host` header value: brackets for IPv6, port only when not the default. */
  host: string
  /** Path and query, percent-encoded (WHATWG URL). */
  path: string
  /** `hostname` is an IP literal: no DNS, no SNI, and the peer address is known up front. */
  ip: boolean
}

/** Parses and checks the URL: http or https, no credentials. */
export function parseTarget (url: string | URL): Target {
  let u: URL
  try {
    u = typeof url === 'string' ? new URL(url) : url
  } catch (cause) {
    throw new InvalidUrlError(`invalid URL: ${JSON.stringify(String(url))}`, { cause })
  }
  if (!(u instanceof URL)) throw new InvalidUrlError('url must be a string or a URL')
  const tls = u.protocol === 'https:'
  if (!tls && u.protocol !== 'http:') throw new InvalidUrlError(`URL scheme must be http or https (got ${u.protocol})`)
  if (u.username !== '' || u.password !== '') {
    throw new InvalidUrlError('credentials in the URL are not sent; pass an Authorization header')
  }
  const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  return {
    tls,
    hostname,
    port: u.port === '' ? (tls ? 443 : 80) : Number(u.port),
    host: u.host,
    path: u.pathname + u.search,
    ip: isIP(hostname) !== 0,
  }
}

function bodyBytes (body: Body | undefined): { bytes: Buffer | undefined, json: boolean } {
  if (body === undefined) return { bytes: undefined, json: false }
  if (typeof body === 'string') return { bytes: Buffer.from(body, 'utf8'), json: false }
  if (body instanceof Uint8Array) {
    return { bytes: Buffer.from(body.buffer, body.byteOffset, body.byteLength), json: false }
  }
  const proto = typeof body === 'object' && body !== null ? Object.getPrototypeOf(body) : undefined
  if (proto !== Object.prototype && proto !== null && !Array.isArray(body)) {
    throw new InvalidBodyError('body must be a string, a Uint8Array, or a plain object or array (sent as JSON)')
  }
  let text: string | undefined
  try {
    text = JSON.stringify(body)
  } catch (cause) {
    throw new InvalidBodyError('body cannot be serialised as JSON', { cause })
  }
  if (text === undefined) throw new InvalidBodyError('body serialises to nothing (a toJSON() that returns undefined)')
  return { bytes: Buffer.from(text, 'utf8'), json: true }
}

function headerLines (headers: HeaderInput | undefined, seen: Set<string>): string {
  if (headers === undefined) return ''
  if (typeof headers !== 'object' || headers === null) throw new InvalidHeaderNameError('headers must be an object')
  let out = ''
  for (const name of Object.keys(headers)) {
    if (!TOKEN_RE.test(name)) throw new InvalidHeaderNameError(`header name is not a token: ${JSON.stringify(name)}`)
    const lower = name.toLowerCase()
    if (FORBIDDEN.has(lower)) throw new ForbiddenHeaderError(`header ${name} is set by rawtrigger and cannot be given`)
    seen.add(lower)
    const raw = headers[name]
    const values = Array.isArray(raw) ? raw : [raw]
    for (const v of values) {
      if (typeof v !== 'string' && typeof v !== 'number') {
        throw new InvalidHeaderValueError(`header ${name} must be a string, a number or an array of strings`)
      }
      const value = String(v)
      if (BAD_VALUE_RE.test(value)) {
        throw new InvalidHeaderValueError(`header ${name} holds CR, LF, NUL, a control character or a character above U+00FF`)
      }
      out += `${name}: ${value}\r\n`
    }
  }
  return out
}

/** The caller's `webhook-id` (any case), which a signature must cover; one value only. */
function callerWebhookId (headers: HeaderInput | undefined): string | undefined {
  if (headers === undefined) return undefined
  for (const name of Object.keys(headers)) {
    if (name.toLowerCase() !== 'webhook-id') continue
    const value = headers[name]
    if (typeof value === 'string' || typeof value === 'number') return String(value)
    throw new InvalidHeaderValueError('webhook-id must be one value when the request is signed')
  }
  return undefined
}

/**
 * The exact bytes {@link trigger} writes: request line, `Host`, `Connection: close`,
 * `Content-Length` (bytes, when there is a body or the method is POST/PUT/PATCH),
 * `Content-Type` for JSON bodies, `User-Agent`, signature headers, then the caller's headers.
 * Throws a {@link TriggerError} subclass for any invalid input.
 */
export function buildRequest (url: string | URL, options: RequestOptions = {}): Buffer {
  return assemble(parseTarget(url), options, 'close')
}

/** Builds the request for an already parsed target; `connection` is the `Connection` header value. */
export function assemble (target: Target, options: RequestOptions, connection: 'close' | 'keep-alive'): Buffer {
  const { bytes, json } = bodyBytes(options.body)
  const method = options.method ?? (bytes === undefined ? 'GET' : 'POST')
  if (typeof method !== 'string' || !TOKEN_RE.test(method)) {
    throw new InvalidMethodError(`method is not a token: ${JSON.stringify(method)}`)
  }
  const seen = new Set<string>()
  const custom = headerLines(options.headers, seen)

  let head = `${method} ${target.path} HTTP/1.1\r\nHost: ${target.host}\r\nConnection: ${connection}\r\n`
  if (bytes !== undefined || method === 'POST' || method === 'PUT' || method === 'PATCH') {
    // RFC 9110 §8.6: a user agent SHOULD send Content-Length: 0 on a POST without content.
    head += `Content-Length: ${bytes === undefined ? 0 : bytes.length}\r\n`
  }
  if (json && !seen.has('content-type')) head += 'Content-Type: application/json\r\n'
  if (!seen.has('user-agent')) head += `User-Agent: ${USER_AGENT}\r\n`
  if (options.secret !== undefined) {
    const given = callerWebhookId(options.headers)
    const signed = sign(options.secret, bytes ?? '', given === undefined ? {} : { id: given })
    if (given === undefined) head += `webhook-id: ${signed['webhook-id']}\r\n`
    head += `webhook-timestamp: ${signed['webhook-timestamp']}\r\nwebhook-signature: ${signed['webhook-signature']}\r\n`
  }
  head += custom + '\r\n'

  const headLen = Buffer.byteLength(head, 'latin1')
  const out = Buffer.allocUnsafe(headLen + (bytes === undefined ? 0 : bytes.length))
  out.write(head, 0, headLen, 'latin1')
  if (bytes !== undefined) bytes.copy(out, headLen)
  return out
}
