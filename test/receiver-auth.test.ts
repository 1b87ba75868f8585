// RELIABILITY.md items 13-14 and DESIGN.md "Security defaults": Standard Webhooks signatures on
// /jobs/* when a secret is set, dedup on webhook-id, and no public bind without a secret.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { createReceiver, generateSecret, sign, trigger } from 'rawtrigger'
import { Webhook } from 'standardwebhooks'
import { rejectsWith } from './helpers/assert-error.ts'
import {
  getStats, postJob, rawPost, readRecords, request, startReceiver, tempDir, waitFor, waitForState,
  type JsonResponse, type TestReceiver,
} from './helpers/receiver.ts'
import { runCli } from './helpers/serve-process.ts'

const SECRET = generateSecret()

function assertUnauthorized (res: JsonResponse, what: string): void {
  assert.equal(res.status, 401, `${what}: expected 401, got ${res.status} ${res.text}`)
  assert.equal(res.json?.error?.code, 'RT_ERR_UNAUTHORIZED', `${what}: ${res.text}`)
  assert.equal(typeof res.json?.error?.message, 'string')
}

async function signedReceiver (t: TestContext): Promise<TestReceiver & { file: string, body: string }> {
  const r = await startReceiver(t, { secret: SECRET })
  const file = join(tempDir(t), 'records')
  return { ...r, file, body: JSON.stringify({ n: 1, file }) }
}

async function assertNothingStored (r: TestReceiver & { file: string }): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 100))
  const stats = await getStats(r.url)
  assert.equal(stats.accepted, 0, 'accepted')
  assert.deepEqual(stats.jobs, { queued: 0, running: 0, done: 0, failed: 0 })
  assert.deepEqual(readRecords(r.file), [])
}

test('with a secret: missing, malformed, wrong-length, wrong-key and tampered-body signatures → 401, no job', async (t) => {
  const r = await signedReceiver(t)
  const good = sign(SECRET, r.body)
  const otherKey = sign(generateSecret(), r.body, { id: good['webhook-id'], timestamp: Number(good['webhook-timestamp']) })
  const tampered = JSON.stringify({ n: 2, file: r.file })
  const { 'webhook-signature': _sig, ...noSignature } = good
  const { 'webhook-id': _id, ...noId } = good
  const { 'webhook-timestamp': _ts, ...noTimestamp } = good

  assertUnauthorized(await postJob(r.url, 'record', r.body), 'no signature headers')
  assertUnauthorized(await postJob(r.url, 'record', r.body, noSignature), 'no webhook-signature')
  assertUnauthorized(await postJob(r.url, 'record', r.body, noId), 'no webhook-id')
  assertUnauthorized(await postJob(r.url, 'record', r.body, noTimestamp), 'no webhook-timestamp')
  assertUnauthorized(await postJob(r.url, 'record', r.body, { ...good, 'webhook-signature': 'garbage' }), 'malformed signature')
  assertUnauthorized(await postJob(r.url, 'record', r.body, { ...good, 'webhook-signature': 'v1,' }), 'empty v1 signature')
  assertUnauthorized(await postJob(r.url, 'record', r.body, { ...good, 'webhook-timestamp': 'yesterday' }), 'malformed timestamp')
  assertUnauthorized(await postJob(r.url, 'record', r.body, { ...good, 'webhook-signature': 'v1,' + randomBytes(16).toString('base64') }), 'wrong-length signature')
  assertUnauthorized(await postJob(r.url, 'record', r.body, { ...good, 'webhook-signature': good['webhook-signature'].replace('v1,', 'v2,') }), 'other scheme only')
  assertUnauthorized(await postJob(r.url, 'record', r.body, otherKey), 'signed with another key')
  assertUnauthorized(await postJob(r.url, 'record', tampered, good), 'tampered body')
  assertUnauthorized(await postJob(r.url, 'record', r.body, { ...good, 'webhook-id': good['webhook-id'] + 'x' }), 'other webhook-id')
  await assertNothingStored(r)

  // The untouched signature is accepted: the refusals above are about the signature alone.
  const ok = await postJob(r.url, 'record', r.body, good)
  assert.equal(ok.status, 202, ok.text)
})

test('with a secret: a timestamp 6 minutes old or 6 minutes ahead → 401, no job', async (t) => {
  const r = await signedReceiver(t)
  const now = Math.floor(Date.now() / 1000)
  assertUnauthorized(await postJob(r.url, 'record', r.body, sign(SECRET, r.body, { timestamp: now - 6 * 60 })), '6 minutes old')
  assertUnauthorized(await postJob(r.url, 'record', r.body, sign(SECRET, r.body, { timestamp: now + 6 * 60 })), '6 minutes ahead')
  await assertNothingStored(r)
  // 4 minutes either way is within the tolerance.
  assert.equal((await postJob(r.url, 'record', r.body, sign(SECRET, r.body, { timestamp: now - 4 * 60 }))).status, 202)
  assert.equal((await postJob(r.url, 'record', r.body, sign(SECRET, r.body, { timestamp: now + 4 * 60 }))).status, 202)
})

test('with a secret: the same webhook-id twice → 202 both times with the same id, one job', async (t) => {
  const r = await signedReceiver(t)
  const headers = sign(SECRET, r.body)
  const first = await postJob(r.url, 'record', r.body, headers)
  const second = await postJob(r.url, 'record', r.body, headers)
  assert.equal(first.status, 202, first.text)
  assert.equal(second.status, 202, second.text)
  assert.equal(second.json.id, first.json.id)
  // Concurrent repeats (one group commit) collapse too.
  const burst = await Promise.all(Array.from({ length: 10 }, () => postJob(r.url, 'record', r.body, sign(SECRET, r.body, { id: 'msg_burst' }))))
  assert.deepEqual(burst.map((b) => b.status), Array(10).fill(202))
  assert.equal(new Set(burst.map((b) => b.json.id)).size, 1, 'ids answered to 10 concurrent repeats')

  const stats = await getStats(r.url)
  assert.equal(stats.accepted, 2)
  assert.equal(stats.jobs.queued + stats.jobs.running + stats.jobs.done, 2, 'jobs stored')
  await waitForState(r.url, first.json.id as string, 'done', 10_000, sign(SECRET, ''))
  await waitForState(r.url, burst[0]?.json.id as string, 'done', 10_000, sign(SECRET, ''))
  assert.equal(readRecords(r.file).length, 2, 'jobs run')
})

test('with a secret: trigger(url, { secret }) works end to end, fire-and-forget and with ack', async (t) => {
  const r = await signedReceiver(t)
  await trigger(`${r.url}/jobs/record`, { body: { n: 1, file: r.file }, secret: SECRET })
  const acked = await trigger(`${r.url}/jobs/record`, { body: { n: 1, file: r.file }, secret: SECRET, ack: true })
  assert.equal(acked.status, 202)
  await waitFor('both triggered jobs to run', () => (readRecords(r.file).length === 2 ? true : undefined))
  assert.equal((await getStats(r.url)).accepted, 2)
  // Unsigned, with the same client: refused.
  const refused = await trigger(`${r.url}/jobs/record`, { body: { n: 1, file: r.file }, ack: true })
  assert.equal(refused.status, 401)
})

test('with a secret: signatures made by the standardwebhooks package are accepted', async (t) => {
  const r = await signedReceiver(t)
  const wh = new Webhook(SECRET)
  const id = 'msg_standardwebhooks'
  const at = new Date()
  const res = await postJob(r.url, 'record', r.body, {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': wh.sign(id, at, r.body),
  })
  assert.equal(res.status, 202, res.text)
})

test('with a secret: a signed request whose client resets right after the write is kept', async (t) => {
  const r = await signedReceiver(t)
  const count = 50
  await Promise.all(Array.from({ length: count }, () => new Promise<void>((resolve) => {
    const signed = sign(SECRET, r.body)
    const extra = Object.entries(signed).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    const socket = net.connect(r.port, '127.0.0.1', () => socket.write(rawPost(r.port, 'record', r.body, extra), () => socket.resetAndDestroy()))
    socket.on('error', () => {})
    socket.on('close', () => resolve())
  })))
  await waitFor(`${count} signed, reset triggers to run`, () => (readRecords(r.file).length >= count ? true : undefined), 10_000).catch(() => {})
  assert.equal((await getStats(r.url)).accepted, count)
})

test('with a secret: GET /jobs/:id needs a signature too (over an empty body)', async (t) => {
  const r = await signedReceiver(t)
  const posted = await postJob(r.url, 'record', r.body, sign(SECRET, r.body))
  assert.equal(posted.status, 202)
  assertUnauthorized(await request(`${r.url}/jobs/${posted.json.id as string}`), 'GET without signature')
  assertUnauthorized(await request(`${r.url}/jobs/${posted.json.id as string}`, { headers: sign(generateSecret(), '') as unknown as Record<string, string> }), 'GET signed with another key')
  const ok = await request(`${r.url}/jobs/${posted.json.id as string}`, { headers: sign(SECRET, '') as unknown as Record<string, string> })
  assert.equal(ok.status, 200, ok.text)
  assert.equal(ok.json.id, posted.json.id)
})

test('no secret and a non-loopback bind address: createReceiver rejects with RT_ERR_CONFIG; with a secret it starts', async (t) => {
  const dataDir = tempDir(t)
  for (const host of ['0.0.0.0', '::']) {
    const err = await rejectsWith(createReceiver({ host, port: 0, dataDir, logLevel: 'silent' }), 'RT_ERR_CONFIG')
    assert.match(err.message, /secret/)
  }
  // Loopback spellings are fine without a secret.
  const local = await startReceiver(t, { host: 'localhost' })
  assert.equal((await request(`http://127.0.0.1:${local.port}/healthz`).catch(() => request(`http://[::1]:${local.port}/healthz`))).status, 200)
  // With a secret, a public bind is allowed.
  const pub = await startReceiver(t, { host: '0.0.0.0', secret: SECRET })
  assert.equal((await request(`http://127.0.0.1:${pub.port}/healthz`)).status, 200)
})

test('an invalid secret is refused at start, not at the first request', async (t) => {
  const dataDir = tempDir(t)
  await rejectsWith(createReceiver({ port: 0, dataDir, secret: 'whsec_not base64!', logLevel: 'silent' }), 'RT_ERR_INVALID_SECRET')
  await rejectsWith(createReceiver({ port: 0, dataDir, secret: new Uint8Array(0), logLevel: 'silent' }), 'RT_ERR_INVALID_SECRET')
})

test('`serve --host 0.0.0.0` without a secret exits non-zero with a message naming the problem', async (t) => {
  const dataDir = tempDir(t)
  const out = await runCli(t, ['serve', '--host', '0.0.0.0', '--port', '0', '--data-dir', dataDir], { TRIGGER_SECRET: '' })
  assert.notEqual(out.code, 0, `serve started on 0.0.0.0 without a secret\n${out.stdout}`)
  assert.equal(out.signal, null, `serve was killed (${out.signal}): it did not exit on its own`)
  assert.match(out.stderr, /RT_ERR_CONFIG/)
  assert.match(out.stderr, /secret/)
  assert.doesNotMatch(out.stdout, /listening/)
})
