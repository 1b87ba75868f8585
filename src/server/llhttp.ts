// llhttp as Node's own http server runs it: the HTTPParser binding, reached through the
// `_http_common` module (public since Node 0.x, not documented). The intake connection
// (intake-connection.ts) parses with it, so every request meets the same strict parser node:http
// would apply (smuggling, duplicate lengths, header sizes). When it is missing or not shaped as
// expected, {@link loadLlhttp} says so and the receiver serves every request through node:http.
import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http'
import { createRequire } from 'node:module'

/** A parse error, as the binding returns it from `execute()` and `finish()`. */
export interface ParseError extends Error {
  code: string
  bytesParsed: number
}

/** The binding's parser; callbacks are set by index (`parser[HTTPParser.kOnBody] = …`). */
export interface Parser {
  initialize (type: number, resource: object, maxHeaderSize: number, lenient: number): void
  /** Bytes parsed, or the error. A head whose callback returned 2 stops it right after the head. */
  execute (data: Buffer): number | ParseError
  /** At the client's FIN: an error when a message was cut short. */
  finish (): number | ParseError | undefined
  /** Done with for now: may be initialized again. */
  free (): void
  /** Destroys the native parser. */
  close (): void
  [callback: number]: unknown
}

/** The binding's constructor and the indexes of its callbacks. */
export interface ParserClass {
  new (): Parser
  REQUEST: number
  kOnMessageBegin: number
  kOnHeaders: number
  kOnHeadersComplete: number
  kOnBody: number
  kOnMessageComplete: number
  kLenientNone: number
}

/** What the intake uses of `_http_common`. */
export interface Llhttp {
  HTTPParser: ParserClass
  /** Method names by the index the parser reports. */
  methods: readonly string[]
}

let cached: Llhttp | null | undefined

/** The binding, or undefined where this Node does not expose it as expected. */
export function loadLlhttp (): Llhttp | undefined {
  if (cached === undefined) {
    cached = null
    try {
      const common = createRequire(import.meta.url)('_http_common') as Partial<Llhttp>
      const P = common.HTTPParser
      if (typeof P === 'function' && Array.isArray(common.methods) && typeof P.kOnHeadersComplete === 'number' &&
        typeof P.kOnBody === 'number' && typeof P.kOnMessageComplete === 'number' && typeof P.REQUEST === 'number') {
        cached = { HTTPParser: P, methods: common.methods }
      }
    } catch {
      cached = null
    }
  }
  return cached ?? undefined
}

/** What a request parser reports, in order, for each message. */
export interface RequestEvents {
  begin (): void
  /** Returns 0 to read the body, 1 to skip it, 2 to stop `execute()` right after this head. */
  head (major: number, minor: number, raw: string[], method: string, url: string, upgrade: boolean, keepAlive: boolean): number
  body (chunk: Buffer): void
  complete (): void
}

// Parsers given back, for the next connections: making one (a native object) cost about 10 µs of
// a new connection's time, and its garbage more. node:http keeps such a list too (1,000).
const spare: Parser[] = []
const SPARE_MAX = 1_000

/** A strict request parser (no lenient flags), its head's fields gathered whatever their number. */
export function requestParser (llhttp: Llhttp, maxHeaderSize: number, on: RequestEvents): Parser {
  const { HTTPParser, methods } = llhttp
  const parser = spare.pop() ?? new HTTPParser()
  parser.initialize(HTTPParser.REQUEST, {}, maxHeaderSize, HTTPParser.kLenientNone)
  // Past 32 fields the binding hands them over early (kOnHeaders) and passes none at the end.
  let raw: string[] = []
  let url = ''
  parser[HTTPParser.kOnMessageBegin] = () => {
    raw = []
    url = ''
    on.begin()
  }
  parser[HTTPParser.kOnHeaders] = (more: string[], part: string) => {
    raw.push(...more)
    url += part
  }
  parser[HTTPParser.kOnHeadersComplete] = (major: number, minor: number, all: string[] | undefined, method: number,
    whole: string | undefined, _status: unknown, _reason: unknown, upgrade: boolean, keepAlive: boolean) =>
    on.head(major, minor, all ?? raw, methods[method] ?? '', whole === undefined || whole === '' ? url : whole, upgrade, keepAlive)
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => on.body(chunk)
  parser[HTTPParser.kOnMessageComplete] = () => on.complete()
  return parser
}

/** Gives a parser back once its connection is done with it (not from inside its own callbacks). */
export function releaseParser (parser: Parser): void {
  parser.free()
  if (spare.length < SPARE_MAX) spare.push(parser)
  else parser.close()
}

// Header fields whose duplicates node:http drops (first wins), as its IncomingMessage does; the
// others are joined with ", " (cookie with "; "), set-cookie kept as an array.
const FIRST_WINS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
])

/** The headers object node:http would make of the parser's `[name, value, name, value, …]`. */
export function headersOf (raw: readonly string[]): IncomingHttpHeaders {
  const headers = Object.create(null) as Record<string, string | string[]>
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase()
    const value = raw[i + 1] as string
    const seen = headers[name]
    if (seen === undefined) headers[name] = name === 'set-cookie' ? [value] : value
    else if (Array.isArray(seen)) seen.push(value)
    else if (!FIRST_WINS.has(name)) headers[name] = `${seen}${name === 'cookie' ? '; ' : ', '}${value}`
  }
  return headers as IncomingHttpHeaders
}

/** The request head again from what the parser reported, in latin1 as the parser read it. */
export function headBytes (method: string, url: string, major: number, minor: number, raw: readonly string[]): Buffer {
  let head = `${method} ${url} HTTP/${major}.${minor}\r\n`
  for (let i = 0; i + 1 < raw.length; i += 2) head += `${raw[i] as string}: ${raw[i + 1] as string}\r\n`
  return Buffer.from(`${head}\r\n`, 'latin1')
}

let dateText = ''
let dateSecond = -1

/** The `Date` header's value, made once per second as node:http does. */
function httpDate (): string {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== dateSecond) {
    dateSecond = second
    dateText = new Date(now).toUTCString()
  }
  return dateText
}

/** A whole JSON answer, head and body, for one write. */
export function jsonAnswer (status: number, json: string, close: boolean, keepAliveS: number): string {
  const connection = close ? 'Connection: close' : `Connection: keep-alive\r\nKeep-Alive: timeout=${keepAliveS}`
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(json)}\r\nDate: ${httpDate()}\r\n${connection}\r\n\r\n${json}`
}
