// The exact bytes rawtrigger writes, checked against what a raw TCP server received over a real
// socket, and every bad input refused before a connection is opened (RELIABILITY.md items 1-4).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { buildRequest, trigger, USER_AGENT, type Body, type RequestOptions } from 'rawtrigger'
import { rejectsWith, throwsWith, within } from './helpers/assert-error.ts'
import { startRawServer } from './helpers/raw-server.ts'

/** Request bytes: head lines (latin1), the blank line, then the body. */
function bytes (lines: string[], body: string | Uint8Array = ''): Buffer {
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')
  return Buffer.concat([head, typeof body === 'string' ? Buffer.from(body, 'utf8') : body])
}

interface Row {
  name: string
  /** `HOST` is replaced by the raw server's `host:port`. */
  url: string
  options?: RequestOptions
  /** The bytes expected, given the `Host` value. */
  expected: (host: string) => Buffer
  /** How the URL names the server. @default '127.0.0.1' */
  via?: 'localhost' | '::1'
}

const ROWS: Row[] = [
  {
    name: 'GET with no body: no Content-Length, our User-Agent',
    url: 'http://HOST/',
    expected: (host) => bytes(['GET / HTTP/1.1', `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`]),
  },
  {
    name: 'query string kept, space in it percent-encoded',
    url: 'http://HOST/search?q=a b&lang=en',
    expected: (host) => bytes(['GET /search?q=a%20b&lang=en HTTP/1.1', `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`]),
  },
  {
    name: 'path with spaces and non-ASCII is percent-encoded as UTF-8 (WHATWG URL)',
    url: 'http://HOST/a b/é✓/😀',
    expected: (host) => bytes([
      'GET /a%20b/%C3%A9%E2%9C%93/%F0%9F%98%80 HTTP/1.1', `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`,
    ]),
  },
  {
    name: 'fragment is never sent',
    url: 'http://HOST/page?x=1#section',
    expected: (host) => bytes(['GET /page?x=1 HTTP/1.1', `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`]),
  },
  {
    name: 'host name localhost is kept in Host with the port',
    url: 'http://HOST/',
    via: 'localhost',
    expected: (host) => bytes(['GET / HTTP/1.1', `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`]),
  },
  {
    name: 'IPv6 literal: Host in brackets with the port, connected to ::1',
    url: 'http://HOST/v6',
    via: '::1',
    expected: (host) => bytes(['GET /v6 HTTP/1.1', `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`]),
  },
  {
    name: "unicode string body: Content-Length counts bytes ('héllo✓' is 9 bytes), POST by default",
    url: 'http://HOST/hook',
    options: { body: 'héllo✓' },
    expected: (host) => bytes(
      ['POST /hook HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 9', `User-Agent: ${USER_AGENT}`],
      'héllo✓',
    ),
  },
  {
    name: 'astral-plane body: 4 bytes per emoji',
    url: 'http://HOST/',
    options: { body: '😀😀' },
    expected: (host) => bytes(
      ['POST / HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 8', `User-Agent: ${USER_AGENT}`],
      '😀😀',
    ),
  },
  {
    name: 'plain object body: JSON with Content-Type application/json',
    url: 'http://HOST/jobs',
    options: { body: { a: 1, b: 'é' } },
    expected: (host) => bytes(
      [
        'POST /jobs HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 16',
        'Content-Type: application/json', `User-Agent: ${USER_AGENT}`,
      ],
      '{"a":1,"b":"é"}',
    ),
  },
  {
    name: 'array body: JSON with Content-Type application/json',
    url: 'http://HOST/',
    options: { body: [1, 'two', null] },
    expected: (host) => bytes(
      ['POST / HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 14', 'Content-Type: application/json', `User-Agent: ${USER_AGENT}`],
      '[1,"two",null]',
    ),
  },
  {
    name: 'Uint8Array body: sent as is, CR LF and 0xFF included, no Content-Type',
    url: 'http://HOST/bin',
    options: { body: new Uint8Array([0, 1, 13, 10, 255]) },
    expected: (host) => bytes(
      ['POST /bin HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 5', `User-Agent: ${USER_AGENT}`],
      new Uint8Array([0, 1, 13, 10, 255]),
    ),
  },
  {
    name: 'Uint8Array view into a larger buffer: only the view is sent',
    url: 'http://HOST/',
    options: { body: new Uint8Array([9, 9, 1, 2, 3, 9, 9]).subarray(2, 5) },
    expected: (host) => bytes(
      ['POST / HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 3', `User-Agent: ${USER_AGENT}`],
      new Uint8Array([1, 2, 3]),
    ),
  },
  {
    name: 'custom headers after ours, in order; an array repeats the field; numbers allowed',
    url: 'http://HOST/',
    options: { headers: { 'X-One': 'first', 'X-Many': ['a', 'b'], 'X-Count': 42, Authorization: 'Bearer t0k3n' } },
    expected: (host) => bytes([
      'GET / HTTP/1.1', `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`,
      'X-One: first', 'X-Many: a', 'X-Many: b', 'X-Count: 42', 'Authorization: Bearer t0k3n',
    ]),
  },
  {
    name: 'header value with obs-text (é, U+00E9) goes out as one latin1 byte',
    url: 'http://HOST/',
    options: { headers: { 'X-Name': 'café' } },
    expected: (host) => bytes(['GET / HTTP/1.1', `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`, 'X-Name: caf\u00e9']),
  },
  {
    name: 'POST with no body sends Content-Length: 0 (RFC 9110 §8.6)',
    url: 'http://HOST/kick',
    options: { method: 'POST' },
    expected: (host) => bytes(['POST /kick HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 0', `User-Agent: ${USER_AGENT}`]),
  },
  {
    name: 'PUT and PATCH with no body send Content-Length: 0 too',
    url: 'http://HOST/',
    options: { method: 'PATCH' },
    expected: (host) => bytes(['PATCH / HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 0', `User-Agent: ${USER_AGENT}`]),
  },
  {
    name: 'empty string body: POST with Content-Length: 0',
    url: 'http://HOST/',
    options: { body: '' },
    expected: (host) => bytes(['POST / HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 0', `User-Agent: ${USER_AGENT}`]),
  },
  {
    name: 'an explicit method with a body keeps the method and counts the body',
    url: 'http://HOST/item/7',
    options: { method: 'DELETE', body: 'why' },
    expected: (host) => bytes(
      ['DELETE /item/7 HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 3', `User-Agent: ${USER_AGENT}`],
      'why',
    ),
  },
  {
    name: 'an extension method token without a body has no Content-Length',
    url: 'http://HOST/cache',
    options: { method: 'PURGE' },
    expected: (host) => bytes(['PURGE /cache HTTP/1.1', `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`]),
  },
  {
    name: "the caller's User-Agent and Content-Type replace ours (any case) and go where the caller put them",
    url: 'http://HOST/',
    options: { body: { op: 'add' }, headers: { 'content-type': 'application/merge-patch+json', 'USER-AGENT': 'mine/2' } },
    expected: (host) => bytes(
      [
        'POST / HTTP/1.1', `Host: ${host}`, 'Connection: close', 'Content-Length: 12',
        'content-type: application/merge-patch+json', 'USER-AGENT: mine/2',
      ],
      '{"op":"add"}',
    ),
  },
]

for (const row of ROWS) {
  test(`bytes on the wire: ${row.name}`, async (t) => {
    const server = await startRawServer(row.via === '::1' ? { host: '::1' } : {})
    t.after(() => server.close())
    const name = row.via === undefined ? '127.0.0.1' : row.via === '::1' ? '[::1]' : row.via
    const host = `${name}:${server.port}`
    const url = row.url.replace('HOST', host)
    const expected = row.expected(host)

    assert.deepEqual(buildRequest(url, row.options), expected, 'buildRequest')
    const result = await within(5_000, trigger(url, row.options), 'trigger')
    assert.equal(result.bytes, expected.length)

    const connection = await server.connection(0)
    await within(5_000, connection.whenClosed, 'server side close')
    assert.equal(connection.received.toString('latin1'), expected.toString('latin1'))
    assert.deepEqual(connection.received, expected)
    assert.equal(connection.ended, true, 'the server saw the FIN')
    assert.equal(server.connections.length, 1)
  })
}

// Targets that are not fired (nothing listens on these ports here): buildRequest alone.
const BUILD_ONLY: Array<{ url: string | URL, host: string, path: string }> = [
  { url: 'http://example.com:80/', host: 'example.com', path: '/' },
  { url: 'https://example.com:443/x?y=1', host: 'example.com', path: '/x?y=1' },
  { url: 'http://example.com:443/', host: 'example.com:443', path: '/' },
  { url: 'https://example.com:80/', host: 'example.com:80', path: '/' },
  { url: 'https://[2001:db8::1]/', host: '[2001:db8::1]', path: '/' },
  { url: 'http://[2001:db8::1]:8080/p', host: '[2001:db8::1]:8080', path: '/p' },
  { url: 'http://bücher.example/', host: 'xn--bcher-kva.example', path: '/' },
  { url: 'http://example.com', host: 'example.com', path: '/' },
  { url: new URL('http://example.com:8080/from-a-URL?q'), host: 'example.com:8080', path: '/from-a-URL?q' },
]

for (const { url, host, path } of BUILD_ONLY) {
  test(`Host and request line for ${String(url)}: default ports left out, IPv6 bracketed, IDN in punycode`, () => {
    const expected = bytes([`GET ${path} HTTP/1.1`, `Host: ${host}`, 'Connection: close', `User-Agent: ${USER_AGENT}`])
    assert.equal(buildRequest(url).toString('latin1'), expected.toString('latin1'))
  })
}

// ── Bad input: refused with its code, before any connection ─────────────────

const cyclic: Record<string, unknown> = { name: 'loop' }
cyclic.self = cyclic

interface BadRow {
  name: string
  code: string
  /** Given the raw server's URL; @default that URL */
  url?: (serverUrl: string) => string
  options?: RequestOptions
}

const asBody = (value: unknown): Body => value as Body

const BAD: BadRow[] = [
  { name: 'CR in a header value', code: 'RT_ERR_INVALID_HEADER_VALUE', options: { headers: { 'X-A': 'a\rb' } } },
  { name: 'LF in a header value', code: 'RT_ERR_INVALID_HEADER_VALUE', options: { headers: { 'X-A': 'a\nb' } } },
  { name: 'CRLF header injection', code: 'RT_ERR_INVALID_HEADER_VALUE', options: { headers: { 'X-A': 'a\r\nInjected: yes' } } },
  { name: 'NUL in a header value', code: 'RT_ERR_INVALID_HEADER_VALUE', options: { headers: { 'X-A': 'a\0b' } } },
  { name: 'DEL in a header value', code: 'RT_ERR_INVALID_HEADER_VALUE', options: { headers: { 'X-A': 'a\x7fb' } } },
  { name: 'a character above U+00FF in a header value', code: 'RT_ERR_INVALID_HEADER_VALUE', options: { headers: { 'X-A': 'ok ✓' } } },
  { name: 'LF in the second value of a repeated header', code: 'RT_ERR_INVALID_HEADER_VALUE', options: { headers: { 'X-A': ['ok', 'b\nad'] } } },
  {
    name: 'a header value that is neither string nor number',
    code: 'RT_ERR_INVALID_HEADER_VALUE',
    options: { headers: { 'X-A': {} as unknown as string } },
  },
  { name: 'a header name with a space', code: 'RT_ERR_INVALID_HEADER_NAME', options: { headers: { 'Bad Name': 'v' } } },
  { name: 'a header name with a colon', code: 'RT_ERR_INVALID_HEADER_NAME', options: { headers: { 'X:Y': 'v' } } },
  { name: 'an empty header name', code: 'RT_ERR_INVALID_HEADER_NAME', options: { headers: { '': 'v' } } },
  { name: 'a header name with CRLF', code: 'RT_ERR_INVALID_HEADER_NAME', options: { headers: { 'X-A\r\nEvil': 'v' } } },
  { name: 'a non-ASCII header name', code: 'RT_ERR_INVALID_HEADER_NAME', options: { headers: { 'X-Café': 'v' } } },
  { name: 'a method with a space', code: 'RT_ERR_INVALID_METHOD', options: { method: 'GET /evil' } },
  { name: 'a method with CRLF', code: 'RT_ERR_INVALID_METHOD', options: { method: 'GET\r\nX' } },
  { name: 'an empty method', code: 'RT_ERR_INVALID_METHOD', options: { method: '' } },
  { name: 'a non-ASCII method', code: 'RT_ERR_INVALID_METHOD', options: { method: 'GÉT' } },
  { name: 'caller Content-Length', code: 'RT_ERR_FORBIDDEN_HEADER', options: { body: 'x', headers: { 'Content-Length': '1' } } },
  { name: 'caller content-length in upper case', code: 'RT_ERR_FORBIDDEN_HEADER', options: { headers: { 'CONTENT-LENGTH': '0' } } },
  { name: 'caller Host', code: 'RT_ERR_FORBIDDEN_HEADER', options: { headers: { Host: 'evil.example' } } },
  { name: 'caller hOsT in mixed case', code: 'RT_ERR_FORBIDDEN_HEADER', options: { headers: { hOsT: 'evil.example' } } },
  { name: 'caller Transfer-Encoding', code: 'RT_ERR_FORBIDDEN_HEADER', options: { headers: { 'transfer-encoding': 'chunked' } } },
  { name: 'caller Connection', code: 'RT_ERR_FORBIDDEN_HEADER', options: { headers: { Connection: 'keep-alive' } } },
  { name: 'an ftp: URL', code: 'RT_ERR_INVALID_URL', url: (u) => u.replace('http:', 'ftp:') },
  { name: 'a ws: URL', code: 'RT_ERR_INVALID_URL', url: (u) => u.replace('http:', 'ws:') },
  { name: 'a file: URL', code: 'RT_ERR_INVALID_URL', url: () => 'file:///etc/passwd' },
  { name: 'an unparsable URL', code: 'RT_ERR_INVALID_URL', url: () => 'not a url' },
  { name: 'a URL with a bad port', code: 'RT_ERR_INVALID_URL', url: () => 'http://127.0.0.1:99999/' },
  { name: 'credentials in the URL', code: 'RT_ERR_INVALID_URL', url: (u) => u.replace('http://', 'http://user:pw@') },
  { name: 'a user name alone in the URL', code: 'RT_ERR_INVALID_URL', url: (u) => u.replace('http://', 'http://user@') },
  { name: 'a Date body', code: 'RT_ERR_INVALID_BODY', options: { body: asBody(new Date(0)) } },
  { name: 'a Map body', code: 'RT_ERR_INVALID_BODY', options: { body: asBody(new Map([['a', 1]])) } },
  { name: 'a Set body', code: 'RT_ERR_INVALID_BODY', options: { body: asBody(new Set([1])) } },
  { name: 'a function body', code: 'RT_ERR_INVALID_BODY', options: { body: asBody(() => 1) } },
  { name: 'a cyclic object body', code: 'RT_ERR_INVALID_BODY', options: { body: cyclic } },
  { name: 'a BigInt body', code: 'RT_ERR_INVALID_BODY', options: { body: asBody(10n) } },
  { name: 'an object body holding a BigInt', code: 'RT_ERR_INVALID_BODY', options: { body: { n: 10n } } },
  { name: 'a number body', code: 'RT_ERR_INVALID_BODY', options: { body: asBody(42) } },
  { name: 'a null body', code: 'RT_ERR_INVALID_BODY', options: { body: asBody(null) } },
  // JSON.stringify returns undefined (not a string) for this object: nothing to send.
  { name: 'an object body whose toJSON returns undefined', code: 'RT_ERR_INVALID_BODY', options: { body: { toJSON: () => undefined } } },
]

for (const row of BAD) {
  test(`refuses ${row.name} with ${row.code}, before any connection`, async (t) => {
    const server = await startRawServer()
    t.after(() => server.close())
    const url = row.url === undefined ? server.url : row.url(server.url)

    throwsWith(() => buildRequest(url, row.options), row.code)
    await rejectsWith(trigger(url, row.options), row.code)

    // A good trigger afterwards: once it has arrived, any connection the bad one opened would have too.
    await trigger(server.url, { headers: { 'X-Sentinel': '1' } })
    await within(5_000, server.closedCount(1), 'sentinel')
    assert.equal(server.tcpConnections, 1, 'only the sentinel connected')
    assert.match(server.connections[0]?.received.toString('latin1') ?? '', /X-Sentinel: 1/)
  })
}

test('error messages name what was wrong (the header, the method)', () => {
  assert.match(throwsWith(() => buildRequest('http://h/', { headers: { 'X-Trace': 'a\nb' } }), 'RT_ERR_INVALID_HEADER_VALUE').message, /X-Trace/)
  assert.match(throwsWith(() => buildRequest('http://h/', { headers: { 'Bad Name': 'v' } }), 'RT_ERR_INVALID_HEADER_NAME').message, /Bad Name/)
  assert.match(throwsWith(() => buildRequest('http://h/', { method: 'GE T' }), 'RT_ERR_INVALID_METHOD').message, /GE T/)
  assert.match(throwsWith(() => buildRequest('http://h/', { headers: { HOST: 'x' } }), 'RT_ERR_FORBIDDEN_HEADER').message, /HOST/)
})

test('an unparsable URL keeps the parser error on cause', () => {
  const err = throwsWith(() => buildRequest('http//missing-colon'), 'RT_ERR_INVALID_URL')
  assert.ok(err.cause instanceof TypeError)
})
