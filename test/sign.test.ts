// Standard Webhooks sign/verify: a known-answer vector, interop with the `standardwebhooks` package
// in both directions, every way a signature must fail, and signatures trigger() puts on the wire.
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { generateSecret, sign, trigger, verify, TIMESTAMP_TOLERANCE_S, type WebhookHeaders } from 'rawtrigger'
import { Webhook } from 'standardwebhooks'
import { rejectsWith, throwsWith, within } from './helpers/assert-error.ts'
import { headerValues, parseRequest, startRawServer } from './helpers/raw-server.ts'

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const OTHER_SECRET = 'whsec_' + Buffer.alloc(24, 7).toString('base64')
const PAYLOAD = '{"event":"user.created","name":"Zoë ✓"}'
const NOW = 1_700_000_000

function signed (payload = PAYLOAD, timestamp = NOW): WebhookHeaders {
  return sign(SECRET, payload, { id: 'msg_test_1', timestamp })
}

test('known answer: the Standard Webhooks reference vector', () => {
  const headers = sign(SECRET, '{"test": 2432232314}', { id: 'msg_p5jXN8AQM9LWM0D4loKWxJek', timestamp: 1614265330 })
  assert.deepEqual(headers, {
    'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    'webhook-timestamp': '1614265330',
    'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  })
})

test('sign then verify: round trip returns the id and the timestamp', () => {
  assert.deepEqual(verify(SECRET, PAYLOAD, signed(), { now: NOW }), { id: 'msg_test_1', timestamp: NOW })
})

test('sign defaults: a msg_ id, the current time, different ids each call', () => {
  const before = Math.floor(Date.now() / 1000)
  const a = sign(SECRET, PAYLOAD)
  const b = sign(SECRET, PAYLOAD)
  const after = Math.floor(Date.now() / 1000)
  assert.match(a['webhook-id'], /^msg_/)
  assert.notEqual(a['webhook-id'], b['webhook-id'])
  const ts = Number(a['webhook-timestamp'])
  assert.ok(ts >= before && ts <= after, `timestamp ${ts}`)
  assert.doesNotThrow(() => verify(SECRET, PAYLOAD, a))
})

test('bytes and the same text sign alike (a Uint8Array payload is the UTF-8 of the string)', () => {
  const fromText = signed()
  const fromBytes = sign(SECRET, new TextEncoder().encode(PAYLOAD), { id: 'msg_test_1', timestamp: NOW })
  assert.deepEqual(fromBytes, fromText)
  assert.doesNotThrow(() => verify(SECRET, Buffer.from(PAYLOAD), fromText, { now: NOW }))
})

test('interop: our signature verifies with the standardwebhooks package', () => {
  const headers = sign(SECRET, PAYLOAD) // that package checks against the real clock
  const parsed = new Webhook(SECRET).verify(PAYLOAD, { ...headers })
  assert.deepEqual(parsed, JSON.parse(PAYLOAD))
})

test('interop: a standardwebhooks signature verifies with ours', () => {
  const id = 'msg_from_the_package'
  const date = new Date(NOW * 1000)
  const signature = new Webhook(SECRET).sign(id, date, PAYLOAD)
  const result = verify(SECRET, PAYLOAD, { 'webhook-id': id, 'webhook-timestamp': String(NOW), 'webhook-signature': signature }, { now: NOW })
  assert.deepEqual(result, { id, timestamp: NOW })
})

test('interop: a tampered body is refused by the standardwebhooks package too', () => {
  const headers = sign(SECRET, PAYLOAD)
  assert.throws(() => new Webhook(SECRET).verify(PAYLOAD.replace('Zoë', 'Zoe'), { ...headers }), /No matching signature/)
})

test('tampered body fails with RT_ERR_SIGNATURE_MISMATCH', () => {
  throwsWith(() => verify(SECRET, PAYLOAD + ' ', signed(), { now: NOW }), 'RT_ERR_SIGNATURE_MISMATCH')
  throwsWith(() => verify(SECRET, PAYLOAD.replace('created', 'deleted'), signed(), { now: NOW }), 'RT_ERR_SIGNATURE_MISMATCH')
})

test('a tampered id or timestamp fails with RT_ERR_SIGNATURE_MISMATCH (both are signed)', () => {
  throwsWith(() => verify(SECRET, PAYLOAD, { ...signed(), 'webhook-id': 'msg_test_2' }, { now: NOW }), 'RT_ERR_SIGNATURE_MISMATCH')
  throwsWith(() => verify(SECRET, PAYLOAD, { ...signed(), 'webhook-timestamp': String(NOW + 1) }, { now: NOW }), 'RT_ERR_SIGNATURE_MISMATCH')
})

test('wrong key fails with RT_ERR_SIGNATURE_MISMATCH', () => {
  throwsWith(() => verify(OTHER_SECRET, PAYLOAD, signed(), { now: NOW }), 'RT_ERR_SIGNATURE_MISMATCH')
})

test('a wrong-length signature fails with RT_ERR_SIGNATURE_MISMATCH (length checked before the compare)', () => {
  const good = signed()['webhook-signature']
  const digest = Buffer.from(good.slice(3), 'base64')
  for (const bad of [digest.subarray(0, 31), Buffer.concat([digest, Buffer.from([0])]), Buffer.alloc(0)]) {
    const headers = { ...signed(), 'webhook-signature': 'v1,' + bad.toString('base64') }
    throwsWith(() => verify(SECRET, PAYLOAD, headers, { now: NOW }), 'RT_ERR_SIGNATURE_MISMATCH')
  }
})

test('a malformed webhook-signature (no version, unknown version) fails with RT_ERR_SIGNATURE_MISMATCH', () => {
  const digest = signed()['webhook-signature'].slice(3)
  for (const bad of ['garbage', digest, `v2,${digest}`, `v1a,${digest}`, 'v1,', ',,,']) {
    throwsWith(() => verify(SECRET, PAYLOAD, { ...signed(), 'webhook-signature': bad }, { now: NOW }), 'RT_ERR_SIGNATURE_MISMATCH')
  }
})

test('a malformed webhook-timestamp or webhook-id fails with RT_ERR_SIGNATURE_MISSING', () => {
  for (const ts of ['abc', '1.5', '-1', '', ' 1700000000', '1e9']) {
    throwsWith(() => verify(SECRET, PAYLOAD, { ...signed(), 'webhook-timestamp': ts }, { now: NOW }), 'RT_ERR_SIGNATURE_MISSING')
  }
  for (const id of ['', 'has space', 'x'.repeat(256)]) {
    throwsWith(() => verify(SECRET, PAYLOAD, { ...signed(), 'webhook-id': id }, { now: NOW }), 'RT_ERR_SIGNATURE_MISSING')
  }
})

for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
  test(`missing ${name} fails with RT_ERR_SIGNATURE_MISSING`, () => {
    const headers: Partial<WebhookHeaders> = signed()
    delete headers[name]
    throwsWith(() => verify(SECRET, PAYLOAD, headers, { now: NOW }), 'RT_ERR_SIGNATURE_MISSING')
  })
}

test('an empty webhook-signature fails with RT_ERR_SIGNATURE_MISSING', () => {
  throwsWith(() => verify(SECRET, PAYLOAD, { ...signed(), 'webhook-signature': '' }, { now: NOW }), 'RT_ERR_SIGNATURE_MISSING')
})

test('a timestamp more than 5 minutes old fails with RT_ERR_SIGNATURE_TIMESTAMP; exactly 5 minutes passes', () => {
  assert.equal(TIMESTAMP_TOLERANCE_S, 300)
  const old = signed(PAYLOAD, NOW - 301)
  throwsWith(() => verify(SECRET, PAYLOAD, old, { now: NOW }), 'RT_ERR_SIGNATURE_TIMESTAMP')
  assert.doesNotThrow(() => verify(SECRET, PAYLOAD, signed(PAYLOAD, NOW - 300), { now: NOW }))
})

test('a timestamp more than 5 minutes in the future fails with RT_ERR_SIGNATURE_TIMESTAMP', () => {
  throwsWith(() => verify(SECRET, PAYLOAD, signed(PAYLOAD, NOW + 301), { now: NOW }), 'RT_ERR_SIGNATURE_TIMESTAMP')
  assert.doesNotThrow(() => verify(SECRET, PAYLOAD, signed(PAYLOAD, NOW + 300), { now: NOW }))
})

test('the timestamp is checked against the real clock by default', () => {
  const stale = sign(SECRET, PAYLOAD, { timestamp: Math.floor(Date.now() / 1000) - 3600 })
  throwsWith(() => verify(SECRET, PAYLOAD, stale), 'RT_ERR_SIGNATURE_TIMESTAMP')
})

test('toleranceSec widens or narrows the window', () => {
  const headers = signed(PAYLOAD, NOW - 60)
  throwsWith(() => verify(SECRET, PAYLOAD, headers, { now: NOW, toleranceSec: 30 }), 'RT_ERR_SIGNATURE_TIMESTAMP')
  assert.doesNotThrow(() => verify(SECRET, PAYLOAD, signed(PAYLOAD, NOW - 3600), { now: NOW, toleranceSec: 7200 }))
})

test('several space-separated signatures: one match is enough (key rotation)', () => {
  const good = signed()['webhook-signature']
  const stale = sign(OTHER_SECRET, PAYLOAD, { id: 'msg_test_1', timestamp: NOW })['webhook-signature']
  for (const list of [`${stale} ${good}`, `${good} ${stale}`, `v1a,abc ${stale} v2,zzz ${good}`]) {
    assert.deepEqual(verify(SECRET, PAYLOAD, { ...signed(), 'webhook-signature': list }, { now: NOW }), { id: 'msg_test_1', timestamp: NOW })
  }
  throwsWith(() => verify(SECRET, PAYLOAD, { ...signed(), 'webhook-signature': `${stale} ${stale}` }, { now: NOW }), 'RT_ERR_SIGNATURE_MISMATCH')
})

test('headers may be a WHATWG Headers object (any case)', () => {
  const headers = new Headers({ 'Webhook-Id': 'msg_test_1', 'WEBHOOK-TIMESTAMP': String(NOW), 'webhook-signature': signed()['webhook-signature'] })
  assert.deepEqual(verify(SECRET, PAYLOAD, headers, { now: NOW }), { id: 'msg_test_1', timestamp: NOW })
})

test('a secret without the whsec_ prefix, and raw key bytes, are the same key', () => {
  const base64 = SECRET.slice('whsec_'.length)
  const bytes = new Uint8Array(Buffer.from(base64, 'base64'))
  const a = sign(base64, PAYLOAD, { id: 'msg_test_1', timestamp: NOW })
  const b = sign(bytes, PAYLOAD, { id: 'msg_test_1', timestamp: NOW })
  assert.deepEqual(a, signed())
  assert.deepEqual(b, signed())
  assert.doesNotThrow(() => verify(base64, PAYLOAD, signed(), { now: NOW }))
})

for (const bad of ['', 'whsec_', 'whsec_!!!not base64', 'whsec_abc def', 'not-base64?']) {
  test(`bad secret ${JSON.stringify(bad)} fails with RT_ERR_INVALID_SECRET in sign and verify`, () => {
    throwsWith(() => sign(bad, PAYLOAD), 'RT_ERR_INVALID_SECRET')
    throwsWith(() => verify(bad, PAYLOAD, signed(), { now: NOW }), 'RT_ERR_INVALID_SECRET')
  })
}

test('a secret that is neither string nor bytes, or empty bytes, fails with RT_ERR_INVALID_SECRET', () => {
  throwsWith(() => sign(42 as unknown as string, PAYLOAD), 'RT_ERR_INVALID_SECRET')
  throwsWith(() => sign(new Uint8Array(0), PAYLOAD), 'RT_ERR_INVALID_SECRET')
})

test('sign refuses a bad id or timestamp with RT_ERR_INVALID_OPTION', () => {
  throwsWith(() => sign(SECRET, PAYLOAD, { id: 'has space' }), 'RT_ERR_INVALID_OPTION')
  throwsWith(() => sign(SECRET, PAYLOAD, { id: '' }), 'RT_ERR_INVALID_OPTION')
  throwsWith(() => sign(SECRET, PAYLOAD, { timestamp: -1 }), 'RT_ERR_INVALID_OPTION')
  throwsWith(() => sign(SECRET, PAYLOAD, { timestamp: 1.5 }), 'RT_ERR_INVALID_OPTION')
})

test('generateSecret: whsec_ + base64 of 32 random bytes, usable by both implementations', () => {
  const secret = generateSecret()
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/)
  assert.equal(Buffer.from(secret.slice(6), 'base64').length, 32)
  assert.notEqual(generateSecret(), secret)
  const headers = sign(secret, PAYLOAD)
  assert.deepEqual(new Webhook(secret).verify(PAYLOAD, { ...headers }), JSON.parse(PAYLOAD))
})

// ── Signatures on the wire ────────────────────────────────────────────────────

test('trigger(url, { secret }) puts headers on the wire that verify accepts against the received body', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const secret = generateSecret()
  await trigger(server.url, { secret, body: { order: 17, note: 'ünïcode ✓' } })
  const connection = await server.connection(0)
  await within(5_000, connection.whenClosed, 'server side close')
  const request = parseRequest(connection.received)
  const headers: Record<string, string> = {}
  for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
    const values = headerValues(request, name)
    assert.equal(values.length, 1, `exactly one ${name}`)
    headers[name] = values[0] as string
  }
  const result = verify(secret, request.body, headers)
  assert.equal(result.id, headers['webhook-id'])
  assert.deepEqual(new Webhook(secret).verify(request.body.toString('utf8'), headers), { order: 17, note: 'ünïcode ✓' })
})

test('trigger with a secret and a binary body: the signature covers the exact bytes', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const secret = generateSecret()
  const body = new Uint8Array([0, 255, 13, 10, 0xc3])
  await trigger(server.url, { secret, body })
  const connection = await server.connection(0)
  await connection.whenClosed
  const request = parseRequest(connection.received)
  assert.deepEqual(new Uint8Array(request.body), body)
  const headers = Object.fromEntries(request.headers.map(([name, value]) => [name.toLowerCase(), value]))
  assert.doesNotThrow(() => verify(secret, request.body, headers))
})

test('trigger with a secret and no body signs the empty payload', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const secret = generateSecret()
  await trigger(server.url, { secret, method: 'POST' })
  const connection = await server.connection(0)
  await connection.whenClosed
  const request = parseRequest(connection.received)
  assert.equal(request.body.length, 0)
  const headers = Object.fromEntries(request.headers.map(([name, value]) => [name.toLowerCase(), value]))
  assert.doesNotThrow(() => verify(secret, '', headers))
})

test("trigger with a secret keeps the caller's webhook-id (the idempotency key) and signs it", async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const secret = generateSecret()
  await trigger(server.url, { secret, body: 'x', headers: { 'webhook-id': 'evt_42' } })
  const connection = await server.connection(0)
  await connection.whenClosed
  const request = parseRequest(connection.received)
  assert.deepEqual(headerValues(request, 'webhook-id'), ['evt_42'])
  const headers = Object.fromEntries(request.headers.map(([name, value]) => [name.toLowerCase(), value]))
  assert.equal(verify(secret, request.body, headers).id, 'evt_42')
})

// Header names are case-insensitive (RFC 9110 §5.1): `Webhook-Id` is the same field as `webhook-id`.
test("trigger with a secret keeps the caller's Webhook-Id in any case: one webhook-id on the wire, signed", async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const secret = generateSecret()
  await trigger(server.url, { secret, body: 'x', headers: { 'Webhook-Id': 'evt_43' } })
  const connection = await server.connection(0)
  await connection.whenClosed
  const request = parseRequest(connection.received)
  assert.deepEqual(headerValues(request, 'webhook-id'), ['evt_43'], 'exactly one webhook-id, the caller\'s')
  const headers = Object.fromEntries(request.headers.map(([name, value]) => [name.toLowerCase(), value]))
  assert.equal(verify(secret, request.body, headers).id, 'evt_43')
})

test('trigger with a bad secret rejects RT_ERR_INVALID_SECRET and opens no connection', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  await rejectsWith(trigger(server.url, { secret: 'whsec_***', body: 'x' }), 'RT_ERR_INVALID_SECRET')
  await trigger(server.url) // sentinel
  await within(5_000, server.closedCount(1), 'sentinel')
  assert.equal(server.tcpConnections, 1)
})

// ── Types ─────────────────────────────────────────────────────────────────────

test('types: what sign() returns, and Node request headers, can be passed straight to verify()', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rawtrigger-types-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const repo = fileURLToPath(new URL('..', import.meta.url))
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      lib: ['es2023'],
      noEmit: true,
      allowImportingTsExtensions: true,
      skipLibCheck: true,
      typeRoots: [join(repo, 'node_modules/@types')],
      types: ['node'],
    },
    files: ['use.ts'],
  }))
  await writeFile(join(dir, 'package.json'), '{"type":"module"}')
  await writeFile(join(dir, 'use.ts'), [
    "import type { IncomingHttpHeaders } from 'node:http'",
    `import { sign, verify } from ${JSON.stringify(join(repo, 'src/index.ts'))}`,
    "const headers = sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'body')",
    "verify('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'body', headers)",
    'declare const incoming: IncomingHttpHeaders',
    "verify('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'body', incoming)",
    '',
  ].join('\n'))
  const tsc = join(repo, 'node_modules/.bin/tsc')
  const { code, output } = await new Promise<{ code: number, output: string }>((resolve) => {
    execFile(tsc, ['-p', join(dir, 'tsconfig.json')], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? 1), output: stdout + stderr })
    })
  })
  assert.equal(code, 0, output)
})
