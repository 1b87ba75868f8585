// clients/php/RawTrigger.php under php-cli: the bytes are buildRequest's, the signature is
// sign()'s, bad input is refused before connecting, and against a real `rawtrigger serve` child the
// triggers become jobs (unsigned on loopback, signed, a unicode body, 1,000 from one process, a Unix socket).
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { buildRequest, generateSecret, sign, verify } from 'rawtrigger'
import { PHP, php, php1, requestOf } from './helpers/php.ts'
import { headerValues, parseRequest, refusedPort, startRawServer } from './helpers/raw-server.ts'
import { getStats, request, tempDir, waitFor } from './helpers/receiver.ts'
import { spawnServe, startServe, type ServeProcess } from './helpers/serve-process.ts'
import { testCert } from './helpers/tls-cert.ts'
import { socketPathIn, socketRequest, startRawUnixServer } from './helpers/unix-socket.ts'

const skip = PHP === undefined && process.env.CI === undefined
  ? 'php not found: install Debian\'s php-cli (apt-get install php-cli) to run the PHP client tests'
  : false
const MANY = 1_000
const UA = { 'User-Agent': 'same-for-both' }

test('php is there when CI is set', { skip: process.env.CI === undefined ? 'CI is not set' : false }, () => {
  assert.ok(PHP !== undefined, 'php not found, and CI is set: .ci/run must install php-cli')
})

async function serve (t: TestContext, args: string[] = []): Promise<ServeProcess> {
  const s = await startServe(t, tempDir(t, 'rawtrigger-php-'), ['--sink-port', '0', '--log-level', 'warn', ...args])
  t.after(async () => {
    if (s.child.exitCode === null && s.child.signalCode === null) {
      s.kill('SIGTERM')
      await s.exited
    }
  })
  return s
}

/** GET a job; with a secret, signed over an empty body. */
async function jobStatus (base: string, id: string, secret?: string): Promise<number> {
  return (await request(`${base}/jobs/${id}`, { headers: secret === undefined ? {} : { ...sign(secret, '') } })).status
}

test('build(): byte for byte what buildRequest() writes (Host and port, IPv6, encoding, Content-Length in bytes)', { skip }, async () => {
  const cases: Array<[string, unknown, Record<string, unknown>]> = [
    ['http://127.0.0.1:8080/jobs/email', { subject: 'Grüße — 日本語 🎉', recipients: ['a@example.org'], n: 1, path: 'a/b' }, {}],
    ['http://example.org:80/jobs/x', 'raw text', { 'Content-Type': 'text/plain' }],
    ['https://example.org:443/jobs/x', { a: 'x' }, {}],
    ['https://example.org:8443/jobs/x', { a: 'x' }, { 'X-Many': ['1', '2'] }],
    ['http://[::1]:8080/jobs/x', { a: 'x' }, {}],
    ['http://LOCALHOST:9/a b/ü?q=ü x&r=1', { a: 'x' }, {}],
    ['http://127.0.0.1:8080', undefined, {}],
  ]
  const results = await php(cases.map(([url, body, headers]) => ({ op: 'build', url, body: body ?? null, options: { headers: { ...headers, ...UA } } })))
  for (const [i, [url, body, headers]] of cases.entries()) {
    const expected = buildRequest(url, { ...(body === undefined ? {} : { body: body as string }), headers: { ...headers as Record<string, string>, ...UA } })
    assert.equal(requestOf(results[i] as never).toString('latin1'), expected.toString('latin1'), url)
  }
  const post = requestOf(await php1({ op: 'build', url: 'http://127.0.0.1:1/x', options: { method: 'POST' } }))
  assert.match(post.toString('latin1'), /^POST \/x HTTP\/1\.1\r\nHost: 127\.0\.0\.1:1\r\nConnection: close\r\nContent-Length: 0\r\nUser-Agent: rawtrigger-php\/0\.1\r\n\r\n$/)
})

test('build() signs per Standard Webhooks exactly as sign() does; verify() accepts it', { skip }, async () => {
  const secret = generateSecret()
  const body = '{"subject":"Grüße"}'
  const [signature, signed, named] = await php([
    { op: 'sign', secret, id: 'msg_fixed', timestamp: 1_700_000_000, payload: body },
    { op: 'build', url: 'http://127.0.0.1:8080/jobs/noop', body, options: { secret, id: 'php-signed-1', headers: { 'Content-Type': 'application/json' } } },
    { op: 'build', url: 'http://127.0.0.1:8080/jobs/noop', body, options: { secret, headers: { 'webhook-id': 'from-header', 'Content-Type': 'application/json' } } },
  ])
  assert.equal(signature?.signature, sign(secret, body, { id: 'msg_fixed', timestamp: 1_700_000_000 })['webhook-signature'])
  for (const [result, id] of [[signed, 'php-signed-1'], [named, 'from-header']] as const) {
    const req = parseRequest(requestOf(result as never))
    const headers = Object.fromEntries(req.headers.map(([n, v]) => [n.toLowerCase(), v]))
    assert.equal(headerValues(req, 'webhook-id').length, 1)
    assert.deepEqual(verify(secret, req.body, headers), { id, timestamp: Number(headers['webhook-timestamp']) })
  }
  const plain = parseRequest(requestOf(await php1({ op: 'build', url: 'http://127.0.0.1:1/x', body: 'b', options: { secret: secret.slice(6) } })))
  assert.match(headerValues(plain, 'webhook-id')[0] ?? '', /^msg_[0-9a-f]{32}$/, 'plain base64 works too; a new id when none is given')
})

test('bad input is refused before any connection, with the Node client\'s codes', { skip }, async (t) => {
  const raw = await startRawServer()
  t.after(() => raw.close())
  const url = raw.url + 'jobs/x'
  const cases: Array<[Record<string, unknown>, string, string?]> = [
    [{ headers: { 'X-A': 'a\r\nInjected: 1' } }, 'RT_ERR_INVALID_HEADER_VALUE'],
    [{ headers: { 'X-A': 'a\nb' } }, 'RT_ERR_INVALID_HEADER_VALUE'],
    [{ headers: { 'X-A': 'a\u0000b' } }, 'RT_ERR_INVALID_HEADER_VALUE'],
    [{ headers: { 'X-A': 'a\u007fb' } }, 'RT_ERR_INVALID_HEADER_VALUE'],
    [{ headers: { 'Bad Name': 'x' } }, 'RT_ERR_INVALID_HEADER_NAME'],
    [{ headers: { host: 'evil' } }, 'RT_ERR_FORBIDDEN_HEADER'],
    [{ headers: { 'Content-Length': '1' } }, 'RT_ERR_FORBIDDEN_HEADER'],
    [{ headers: { 'Transfer-Encoding': 'chunked' } }, 'RT_ERR_FORBIDDEN_HEADER'],
    [{ headers: { Connection: 'keep-alive' } }, 'RT_ERR_FORBIDDEN_HEADER'],
    [{ method: 'GE T' }, 'RT_ERR_INVALID_METHOD'],
    [{ secret: 'whsec_not base64!' }, 'RT_ERR_INVALID_SECRET'],
    [{ id: 'has space' }, 'RT_ERR_INVALID_OPTION'],
    [{ timeout: 0 }, 'RT_ERR_INVALID_OPTION'],
    [{}, 'RT_ERR_INVALID_URL', 'ftp://127.0.0.1/x'],
    [{}, 'RT_ERR_INVALID_URL', 'http://user:pw@127.0.0.1/x'],
    [{}, 'RT_ERR_INVALID_URL', 'not a url'],
  ]
  const results = await php(cases.map(([options, , bad]) => ({ op: 'fire', url: bad ?? url, body: { a: 1 }, options })))
  for (const [i, [options, code, bad]] of cases.entries()) {
    assert.equal(results[i]?.code, code, `${bad ?? ''} ${JSON.stringify(options)}: ${JSON.stringify(results[i])}`)
  }
  assert.equal(raw.tcpConnections, 0, 'nothing was connected to')
})

test('fire(): writes every byte, sends the FIN, returns the bytes written without reading an answer', { skip }, async (t) => {
  const raw = await startRawServer() // never answers: fire() returning at all shows it did not read
  t.after(() => raw.close())
  const result = await php1({ op: 'fire', url: raw.url + 'jobs/noop', body: { s: 'ü'.repeat(40_000) }, options: { id: 'php-raw' } })
  assert.equal(result.ok, true, result.message)
  const conn = await raw.connection(0)
  await conn.whenClosed
  assert.ok(conn.ended, 'the FIN arrived')
  assert.equal(result.bytes, conn.received.length)
  const req = parseRequest(conn.received)
  assert.equal(Number(headerValues(req, 'content-length')[0]), req.body.length, 'Content-Length counts bytes')
  assert.equal(req.body.length, Buffer.byteLength(JSON.stringify({ s: 'ü'.repeat(40_000) })))
  assert.deepEqual(headerValues(req, 'connection'), ['close'])
  assert.deepEqual(headerValues(req, 'webhook-id'), ['php-raw'])
})

test('fire(): a refused connect throws RT_ERR_CONNECT with the OS errno; https goes over ssl:// with SNI for names only', { skip }, async (t) => {
  const refused = await php1({ op: 'fire', url: `http://127.0.0.1:${await refusedPort()}/x`, body: 'x' })
  assert.equal(refused.code, 'RT_ERR_CONNECT')
  assert.equal(refused.errno, 111, 'ECONNREFUSED')
  assert.match(refused.message ?? '', /^Connect failed \(127\.0\.0\.1:\d+\): /)

  const cert = await testCert()
  const tls = await startRawServer({ tls: cert })
  t.after(() => tls.close())
  const cafile = `${tempDir(t)}/ca.pem`
  await import('node:fs').then((fs) => fs.writeFileSync(cafile, cert.cert))
  const [byName, byIp, untrusted] = await php([
    { op: 'fire', url: `https://localhost:${tls.port}/jobs/a`, body: { a: 1 }, options: { tls: { cafile } } },
    { op: 'fire', url: `https://127.0.0.1:${tls.port}/jobs/b`, body: { a: 1 }, options: { tls: { cafile } } },
    { op: 'fire', url: `https://localhost:${tls.port}/jobs/c`, body: { a: 1 } },
  ])
  assert.equal(byName?.ok, true, byName?.message)
  assert.equal(byIp?.ok, true, byIp?.message)
  assert.equal(untrusted?.code, 'RT_ERR_CONNECT', 'an untrusted certificate fails the connect')
  const [a, b] = [await tls.connection(0), await tls.connection(1)]
  await Promise.all([a.whenClosed, b.whenClosed])
  assert.equal(a.servername, 'localhost')
  assert.equal(b.servername, false, 'no SNI for an IP literal')
  assert.match(a.received.toString('latin1'), new RegExp(`^POST /jobs/a HTTP/1\\.1\\r\\nHost: localhost:${tls.port}\\r\\n`))
  assert.equal(byName?.bytes, a.received.length)
})

test('against serve: unsigned on loopback stored; a unicode body arrives intact (the mail sink shows the subject)', { skip }, async (t) => {
  const s = await serve(t)
  const subject = 'Grüße aus Köln — 日本語 🎉'
  const [noop, email] = await php([
    { op: 'fire', url: `${s.url}/jobs/noop`, body: { from: 'php' }, options: { id: 'php-noop-1' } },
    { op: 'fire', url: `${s.url}/jobs/email`, body: { subject, text: 'Hallo {{name}} ✓', recipients: [{ email: 'zoe@example.org', name: 'Zoë' }] }, options: { id: 'php-email-1' } },
  ])
  assert.equal(noop?.ok, true, noop?.message)
  assert.equal(email?.ok, true, email?.message)
  await waitFor('the noop job', async () => ((await jobStatus(s.url, 'php-noop-1')) === 200 ? true : undefined))
  const job = await waitFor('the e-mail job done', async () => {
    const res = await request(`${s.url}/jobs/php-email-1`)
    return res.json?.state === 'done' ? res.json : undefined
  })
  assert.equal(job.sent, 1)
  const mailbox = await request(`${s.url}/mailbox`)
  assert.equal(mailbox.json.messages[0].subject, subject)
})

test('against serve --secret: signed triggers stored, a wrong secret refused (rejected counted, no job)', { skip }, async (t) => {
  const secret = generateSecret()
  const s = await serve(t, ['--secret', secret])
  const [good, wrong] = await php([
    { op: 'fire', url: `${s.url}/jobs/noop`, body: { signed: true }, options: { secret, id: 'php-signed' } },
    { op: 'fire', url: `${s.url}/jobs/noop`, body: { signed: true }, options: { secret: generateSecret(), id: 'php-wrong' } },
  ])
  assert.equal(good?.ok, true)
  assert.equal(wrong?.ok, true, 'a fire-and-forget client cannot see the 401')
  await waitFor('the signed job', async () => ((await jobStatus(s.url, 'php-signed', secret)) === 200 ? true : undefined))
  const stats = await waitFor('the refusal counted', async () => {
    const st = await getStats(s.url)
    return st.rejected >= 1 ? st : undefined
  })
  assert.equal(stats.accepted, 1)
  assert.equal(await jobStatus(s.url, 'php-wrong', secret), 404)
})

test(`${MANY} triggers from one PHP process: all stored`, { skip }, async (t) => {
  const s = await serve(t, ['--concurrency', '0'])
  const result = await php1({ op: 'many', url: `${s.url}/jobs/noop`, n: MANY, prefix: 'php-many-', body: { from: 'php' } })
  assert.equal(result.ok, true, result.message)
  const stats = await waitFor(`${MANY} accepted`, async () => {
    const st = await getStats(s.url)
    return st.accepted >= MANY ? st : undefined
  }, 30_000, 100)
  assert.deepEqual({ accepted: stats.accepted, rejected: stats.rejected }, { accepted: MANY, rejected: 0 })
  for (const i of [0, 499, MANY - 1]) assert.equal(await jobStatus(s.url, `php-many-${i}`), 200)
  t.diagnostic(`${MANY} PHP fire() calls in ${result.ms?.toFixed(0)} ms (${Math.round(MANY / ((result.ms ?? 1) / 1000))}/s), every one stored`)
})

test('fire() over a Unix socket (the socket option): the URL gives the Host; serve --socket stores the job', { skip }, async (t) => {
  const raw = await startRawUnixServer(t)
  const result = await php1({ op: 'fire', url: 'http://localhost/jobs/noop', body: { a: 1 }, options: { socket: raw.path, headers: UA } })
  assert.equal(result.ok, true, result.message)
  const got = await raw.ended(0)
  assert.equal(got.toString('latin1'), buildRequest('http://localhost/jobs/noop', { body: { a: 1 }, headers: UA }).toString('latin1'))
  assert.equal(result.bytes, got.length)

  const socketPath = socketPathIn(t)
  await spawnServe(t, { dataDir: tempDir(t, 'rawtrigger-php-'), socket: socketPath })
  const stored = await php1({ op: 'fire', url: 'http://localhost/jobs/noop', body: { a: 1 }, options: { socket: socketPath, id: 'php-unix' } })
  assert.equal(stored.ok, true, stored.message)
  await waitFor('the job over the socket', async () => ((await socketRequest(socketPath, 'GET', '/jobs/php-unix')).status === 200 ? true : undefined))
  const missing = await php1({ op: 'fire', url: 'http://localhost/x', body: 'x', options: { socket: `${socketPath}.none` } })
  assert.equal(missing.code, 'RT_ERR_CONNECT')
})
