// Property tests (fast-check) over random valid input: Content-Length is always the body's byte
// length, and Node's own HTTP parser accepts every request we build and sees what we meant
// (RELIABILITY.md item 3). Random invalid input is always refused.
import http from 'node:http'
import net from 'node:net'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { buildRequest, TriggerError, USER_AGENT, type Body, type HeaderInput, type RequestOptions } from 'rawtrigger'
import { parseRequest } from './helpers/raw-server.ts'

const NUM_RUNS = 150
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,16}$/
const FRAMING = new Set(['content-length', 'host', 'transfer-encoding', 'connection'])

// RFC 9110 §5.5: a field value is HTAB, SP, VCHAR and obs-text (0x80-0xFF).
const VALUE_CHARS = ['\t', ...range(0x20, 0x7e), ...range(0x80, 0xff)]
// Everything else that fits in a JS string: other C0 controls (CR, LF, NUL among them), DEL,
// and code points above U+00FF.
const BAD_VALUE_CHARS = [...range(0x00, 0x08), ...range(0x0a, 0x1f), '\x7f', 'Ā', '✓', '😀', '\u2028']

function range (from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => String.fromCharCode(from + i))
}

const tokenArb = fc.stringMatching(TOKEN_RE)
// `Expect` makes Node answer 100/417 instead of handing the request over: not what is tested here.
const headerNameArb = tokenArb.filter((name) => !FRAMING.has(name.toLowerCase()) && name.toLowerCase() !== 'expect')
const headerValueArb = fc.string({ unit: fc.constantFrom(...VALUE_CHARS), maxLength: 24 })
const headersArb: fc.Arbitrary<HeaderInput> = fc
  .array(fc.tuple(headerNameArb, fc.oneof(headerValueArb, fc.array(headerValueArb, { maxLength: 3 }))), { maxLength: 6 })
  .map((entries) => Object.fromEntries(entries))
const bodyArb: fc.Arbitrary<Body | undefined> = fc.option(
  fc.oneof(
    fc.string({ unit: 'binary', maxLength: 120 }), // any code point, astral ones included
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.uint8Array({ maxLength: 400 }),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }),
    fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 5 }),
  ),
  { nil: undefined },
)
const pathArb = fc.string({ unit: 'binary', maxLength: 24 })
const queryArb = fc.option(fc.string({ unit: 'binary', maxLength: 24 }), { nil: undefined })

/** The bytes a body must become, computed here independently of the library. */
function expectedBody (body: Body | undefined): { bytes: Buffer | undefined, json: boolean } {
  if (body === undefined) return { bytes: undefined, json: false }
  if (typeof body === 'string') return { bytes: Buffer.from(body, 'utf8'), json: false }
  if (body instanceof Uint8Array) return { bytes: Buffer.from(body), json: false }
  return { bytes: Buffer.from(JSON.stringify(body), 'utf8'), json: true }
}

function requestOptions (method: string | undefined, headers: HeaderInput, body: Body | undefined): RequestOptions {
  const options: RequestOptions = { headers }
  if (method !== undefined) options.method = method
  if (body !== undefined) options.body = body
  return options
}

function urlFor (base: string, path: string, query: string | undefined): string {
  return base + path + (query === undefined ? '' : '?' + query)
}

test('Content-Length always equals the byte length of the body, and the body follows the head exactly', () => {
  let checked = 0
  fc.assert(
    fc.property(fc.option(tokenArb, { nil: undefined }), headersArb, bodyArb, pathArb, queryArb, (method, headers, body, path, query) => {
      const built = buildRequest(urlFor('http://example.test/', path, query), requestOptions(method, headers, body))
      const request = parseRequest(built)
      const { bytes } = expectedBody(body)
      const lengths = request.headers.filter(([name]) => name === 'Content-Length').map(([, value]) => value)
      if (bytes === undefined) {
        assert.ok(lengths.length === 0 || lengths[0] === '0', `no body, Content-Length ${String(lengths)}`)
        assert.equal(request.body.length, 0)
      } else {
        assert.deepEqual(lengths, [String(bytes.length)])
        assert.ok(request.body.equals(bytes), 'body bytes')
      }
      checked++
    }),
    { numRuns: 500 },
  )
  assert.equal(checked, 500)
})

test("Node's HTTP parser accepts every built request and sees the same method, target, headers and body", async (t) => {
  interface Seen { method: string, url: string, rawHeaders: string[], body: Buffer }
  let seen: Seen | undefined
  let parseError: Error | undefined
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      seen = { method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) }
      res.end()
    })
  })
  server.on('clientError', (err: Error, socket: net.Socket) => {
    parseError = err
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as net.AddressInfo
  const base = `http://127.0.0.1:${port}/`
  // Methods llhttp knows (it refuses unknown ones, whatever RFC 9110 allows); CONNECT takes an authority.
  const methodArb = fc.constantFrom(...http.METHODS.filter((m) => m !== 'CONNECT'))

  /** Writes the bytes on a raw socket (no FIN: the request says Connection: close) and waits for the close. */
  function send (bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(bytes))
      socket.resume()
      socket.on('error', reject)
      socket.on('close', () => resolve())
    })
  }

  let runs = 0
  await fc.assert(
    fc.asyncProperty(methodArb, headersArb, bodyArb, pathArb, queryArb, async (method, headers, body, path, query) => {
      seen = undefined
      parseError = undefined
      const url = urlFor(base, path, query)
      const built = buildRequest(url, requestOptions(method, headers, body))
      await send(built)
      const error = parseError as Error | undefined // set by the server's listeners during send()
      const got = seen as Seen | undefined
      assert.equal(error, undefined, `Node refused the request: ${String(error)}\n${built.toString('latin1')}`)
      assert.ok(got !== undefined, 'the request reached the handler')

      const target = new URL(url)
      const { bytes, json } = expectedBody(body)
      const custom = Object.keys(headers).map((name) => name.toLowerCase())
      const rawHeaders = ['Host', `127.0.0.1:${port}`, 'Connection', 'close']
      if (bytes !== undefined || method === 'POST' || method === 'PUT' || method === 'PATCH') {
        rawHeaders.push('Content-Length', String(bytes?.length ?? 0))
      }
      if (json && !custom.includes('content-type')) rawHeaders.push('Content-Type', 'application/json')
      if (!custom.includes('user-agent')) rawHeaders.push('User-Agent', USER_AGENT)
      for (const [name, value] of Object.entries(headers)) {
        // RFC 9110 §5.5: leading and trailing whitespace is not part of the value.
        for (const v of Array.isArray(value) ? value : [value]) rawHeaders.push(name, String(v).replace(/^[\t ]+|[\t ]+$/g, ''))
      }

      assert.equal(got.method, method)
      assert.equal(got.url, target.pathname + target.search)
      assert.deepEqual(got.rawHeaders, rawHeaders)
      assert.ok(got.body.equals(bytes ?? Buffer.alloc(0)), 'body')
      runs++
    }),
    { numRuns: NUM_RUNS },
  )
  assert.equal(runs, NUM_RUNS)
})

test('a header value holding any forbidden character is always refused with RT_ERR_INVALID_HEADER_VALUE', () => {
  fc.assert(
    fc.property(headerNameArb, headerValueArb, fc.constantFrom(...BAD_VALUE_CHARS), headerValueArb, (name, before, bad, after) => {
      assert.throws(
        () => buildRequest('http://example.test/', { headers: { [name]: before + bad + after } }),
        (err: unknown) => err instanceof TriggerError && err.code === 'RT_ERR_INVALID_HEADER_VALUE',
      )
    }),
    { numRuns: 300 },
  )
})

test('a header name holding any non-token character is always refused with RT_ERR_INVALID_HEADER_NAME', () => {
  const nonTokenArb = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter((c) => !TOKEN_RE.test(c))
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'abcXYZ-'), maxLength: 6 }), nonTokenArb, (prefix, bad) => {
      assert.throws(
        () => buildRequest('http://example.test/', { headers: { [prefix + bad]: 'v' } }),
        (err: unknown) => err instanceof TriggerError && err.code === 'RT_ERR_INVALID_HEADER_NAME',
      )
    }),
    { numRuns: 300 },
  )
})

test('a method holding any non-token character is always refused with RT_ERR_INVALID_METHOD', () => {
  const nonTokenArb = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter((c) => !TOKEN_RE.test(c))
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'GETPOS'), maxLength: 4 }), nonTokenArb, (prefix, bad) => {
      assert.throws(
        () => buildRequest('http://example.test/', { method: prefix + bad }),
        (err: unknown) => err instanceof TriggerError && err.code === 'RT_ERR_INVALID_METHOD',
      )
    }),
    { numRuns: 300 },
  )
})
