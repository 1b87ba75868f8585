// Scaling out: several `rawtrigger serve` processes sharing one Redis through BullMQ
// (RELIABILITY.md 28). Real child processes started as `node --import tsx src/cli.ts serve`, so a
// kill -9 hits the server itself (item 16); a real in-process SMTP server that is a little slow per
// message, so a kill lands in the middle of a chunk; the real Redis at REDIS_URL, a key prefix per test.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Queue } from 'bullmq'
import type { JobView } from '../src/queue/types.ts'
import { useRedis, type RedisFixture } from './helpers/redis.ts'
import { getJob, getStats, postJob, tempDir } from './helpers/receiver.ts'
import { waitFor } from './helpers/wait.ts'
import { startServe, type ServeProcess } from './helpers/serve-process.ts'
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-server.ts'

/** Recipients per BullMQ job in these tests: at most this many are redone after a kill. */
const CHUNK = 50
/** A chunk's lock; a killed worker's chunk is taken over within about twice this. */
const LEASE_MS = 2_000
/** Per message, between its data and the 250 reply: slow enough that a kill lands mid-chunk. */
const SMTP_DELAY_MS = 5
/** Guards on waits: a hang fails the test instead of stalling the run. */
const DONE_TIMEOUT_MS = 40_000

function recipients (n: number, tag: string): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}${i}@example.org`)
}

function emailBody (to: string[]): Record<string, unknown> {
  return { subject: 'Scale test', text: 'Hello {{email}}', recipients: to }
}

function untilDone (base: string, id: string, timeoutMs = DONE_TIMEOUT_MS): Promise<JobView> {
  return waitFor(`job ${id} done (GET ${base}/jobs/${id})`, async () => {
    const view = await getJob(base, id)
    return view.state === 'done' ? view : undefined
  }, timeoutMs, 50)
}

/** The shared SMTP server, closed after the serve processes (deferred before them). */
async function smtpServer (redis: RedisFixture): Promise<TestSmtpServer> {
  const smtp = await startSmtpServer({ light: true, faults: { dataDelayMs: SMTP_DELAY_MS } })
  redis.defer(() => smtp.close())
  return smtp
}

/**
 * `serve --queue <redis> --queue-prefix <test prefix> --chunk-size 50 --lease-ms 2000 --smtp <smtp> …`,
 * resolved once GET /stats answers 200: a fresh process answers 503 until its Redis connection is up
 * (see the test 'the first trigger after the listening line is stored').
 */
async function serveOnRedis (t: TestContext, redis: RedisFixture, smtp: TestSmtpServer, extra: string[] = [], ready = true): Promise<ServeProcess> {
  const p = await startServe(t, tempDir(t, 'rttest-scale-'), [
    '--queue', redis.url, '--queue-prefix', redis.prefix, '--chunk-size', String(CHUNK), '--lease-ms', String(LEASE_MS),
    '--smtp', smtp.url, '--log-level', 'warn', ...extra,
  ])
  // Killed before the keys are deleted, so nothing writes them back (startServe's own t.after runs later).
  redis.defer(async () => {
    p.kill('SIGKILL')
    await p.exited
  })
  if (ready) await waitFor(`GET ${p.url}/stats answering 200`, async () => { await getStats(p.url); return true }, 10_000)
  return p
}

const DRAINED = { wait: 0, active: 0, delayed: 0, prioritized: 0, 'waiting-children': 0 }

/** Resolves once BullMQ holds no chunk that is waiting, running or delayed. */
function drained (redis: RedisFixture): Promise<true> {
  return waitFor('no chunk left in BullMQ', async () => Object.values(await chunksLeft(redis)).every((n) => n === 0) || undefined, 10_000, 50)
}

/** BullMQ's own view of the queue: chunks still waiting, running or delayed. */
async function chunksLeft (redis: RedisFixture): Promise<Record<string, number>> {
  const queue = new Queue('jobs', { connection: { url: redis.url }, prefix: redis.prefix })
  queue.on('error', () => {})
  try {
    return await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'waiting-children')
  } finally {
    await queue.close()
  }
}

test('a worker killed -9 mid-job: another process finishes it; every recipient gets mail, duplicates ≤ one chunk', { timeout: 90_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const smtp = await smtpServer(redis)
  const a = await serveOnRedis(t, redis, smtp)
  const to = recipients(1_000, 'kill')
  const res = await postJob(a.url, 'email', emailBody(to))
  assert.equal(res.status, 202, res.text)
  const id = (res.json as { id: string }).id

  // A is the only worker: at 300 messages it is certainly in the middle of a chunk.
  await waitFor('300 messages delivered by A', () => smtp.delivered.length >= 300 ? true : undefined, 20_000, 5)
  a.kill('SIGKILL')
  const exit = await a.exited
  const atKill = smtp.delivered.length
  const killedAt = Date.now()
  assert.equal(exit.signal, 'SIGKILL')
  assert.ok(atKill < to.length, `the kill landed mid-job (${atKill} delivered)`)

  const b = await serveOnRedis(t, redis, smtp)
  const view = await untilDone(b.url, id)
  await smtp.waitForDelivered(to.length, 5_000)
  const counts = smtp.countByAddress()
  const missing = to.filter((r) => (counts.get(r) ?? 0) === 0)
  const duplicates = smtp.duplicates()
  t.diagnostic(`delivered at the kill: ${atKill}; done ${Date.now() - killedAt} ms after the kill; duplicates: ${duplicates}`)
  assert.deepEqual(missing, [], 'every recipient got its message')
  assert.ok(duplicates <= CHUNK, `duplicates ${duplicates} ≤ one chunk (${CHUNK})`)
  assert.equal(smtp.delivered.length, to.length + duplicates)
  assert.deepEqual({ state: view.state, total: view.total, sent: view.sent, failed: view.failed, pending: view.pending }, { state: 'done', total: 1_000, sent: 1_000, failed: 0, pending: 0 })
  assert.deepEqual(await chunksLeft(redis), DRAINED)
})

test('the first trigger after the listening line is stored, not refused while Redis connects', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const smtp = await smtpServer(redis)
  const a = await serveOnRedis(t, redis, smtp, [], false)
  const res = await postJob(a.url, 'email', emailBody(recipients(1, 'first')))
  assert.equal(res.status, 202, `POST right after "rawtrigger listening on": ${res.text}`)
})

test('webhook-id dedup across processes; GET /jobs/:id and /stats agree from both', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const smtp = await smtpServer(redis)
  const [a, b] = await Promise.all([serveOnRedis(t, redis, smtp), serveOnRedis(t, redis, smtp)])
  const hook = `msg_${redis.prefix}`
  const to = recipients(120, 'dedup')
  const first = await postJob(a.url, 'email', emailBody(to), { 'webhook-id': hook })
  const repeat = await postJob(b.url, 'email', emailBody(to), { 'webhook-id': hook })
  assert.equal(first.status, 202, first.text)
  assert.equal(repeat.status, 202, repeat.text)
  assert.equal((first.json as { id: string }).id, hook, 'a path-safe webhook-id is the job id')
  assert.equal((repeat.json as { id: string }).id, hook, 'the other process answers the same id')
  assert.equal((repeat.json as { duplicate?: boolean }).duplicate, true)

  const done = await untilDone(b.url, hook)
  await drained(redis) // a second job, had one been made, would have had its chunks run by now
  assert.equal(smtp.delivered.length, to.length, 'one job: each recipient once')
  assert.equal(done.sent, to.length)

  const [viewA, viewB] = await Promise.all([getJob(a.url, hook), getJob(b.url, hook)])
  assert.deepEqual(viewA, viewB, 'GET /jobs/:id is the same from both processes')
  const [statsA, statsB] = await Promise.all([getStats(a.url), getStats(b.url)])
  assert.deepEqual({ jobs: statsA.jobs, emails: statsA.emails }, { jobs: { ...statsA.jobs, queued: 0, running: 0, done: 1, failed: 0 }, emails: { sent: 120, failed: 0, pending: 0 } })
  assert.deepEqual({ jobs: statsB.jobs, emails: statsB.emails }, { jobs: statsA.jobs, emails: statsA.emails }, 'jobs and emails are global')
  assert.deepEqual([statsA.accepted, statsA.duplicates, statsB.accepted, statsB.duplicates], [1, 0, 0, 1], 'accepted and duplicates are per process')
})

test('a webhook-id that is not a path segment dedups across processes too', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const smtp = await smtpServer(redis)
  const [a, b] = await Promise.all([serveOnRedis(t, redis, smtp), serveOnRedis(t, redis, smtp)])
  // Standard Webhooks ids are opaque: a dot or a colon is allowed, and the id is then not the job id.
  const hook = `evt.${redis.prefix}:1`
  const to = recipients(3, 'opaque')
  const first = await postJob(a.url, 'email', emailBody(to), { 'webhook-id': hook })
  const repeat = await postJob(b.url, 'email', emailBody(to), { 'webhook-id': hook })
  assert.equal(first.status, 202, first.text)
  assert.equal(repeat.status, 202, repeat.text)
  const id = (first.json as { id: string }).id
  assert.deepEqual({ id: (repeat.json as { id: string }).id, duplicate: (repeat.json as { duplicate?: boolean }).duplicate }, { id, duplicate: true },
    `the repeat (${repeat.text}) must answer the first job (${first.text})`)
  await untilDone(a.url, id)
  await drained(redis)
  assert.equal((await getStats(a.url)).jobs.done, 1)
  assert.equal(smtp.delivered.length, 3)
})

test('a webhook-id repeated with a longer recipient list: one job, the first list only, no work left behind', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const smtp = await smtpServer(redis)
  // Several chunks at once, so any chunk made by the repeat would run next to the real one.
  const a = await serveOnRedis(t, redis, smtp, ['--concurrency', '4'])
  const hook = `resent_${redis.prefix}`
  const first = await postJob(a.url, 'email', emailBody(recipients(3, 'first')), { 'webhook-id': hook })
  const changed = await postJob(a.url, 'email', emailBody(recipients(3 * CHUNK, 'changed')), { 'webhook-id': hook })
  assert.equal(first.status, 202, first.text)
  assert.deepEqual([(changed.json as { id: string }).id, (changed.json as { duplicate?: boolean }).duplicate], [hook, true], changed.text)
  const view = await untilDone(a.url, hook)
  assert.deepEqual({ total: view.total, sent: view.sent, pending: view.pending }, { total: 3, sent: 3, pending: 0 })
  // The repeat made no second job, so it must leave no BullMQ chunks behind either.
  const left = await waitFor('no chunk left in BullMQ', async () => {
    const counts = await chunksLeft(redis)
    return Object.values(counts).every((n) => n === 0) ? counts : undefined
  }, 3_000, 100).catch(async () => chunksLeft(redis))
  assert.deepEqual(left, DRAINED, `chunks still in BullMQ after the job was done; serve log: ${a.stderr().slice(0, 600)}`)
  assert.equal(smtp.delivered.length, 3)
  const errors = a.stderr().split('\n').filter((line) => line.includes('"level":50')).map((line) => {
    const e = JSON.parse(line) as { msg?: string, index?: number, err?: { message?: string } }
    return `${e.msg ?? ''} (index ${String(e.index)}): ${e.err?.message ?? ''}`
  })
  assert.deepEqual(errors.slice(0, 2), [], `serve logged ${errors.length} errors: work on recipients the job does not have`)
})

test('--rate-limit 100 holds across two workers: 300 e-mails take ≥ 2 s, never ahead of 100/s + one chunk', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const smtp = await smtpServer(redis)
  const RATE = 100
  const N = 300
  const [a, b] = await Promise.all([
    serveOnRedis(t, redis, smtp, ['--rate-limit', String(RATE)]),
    serveOnRedis(t, redis, smtp, ['--rate-limit', String(RATE)]),
  ])
  const samples: Array<{ ms: number, delivered: number }> = []
  const t0 = performance.now()
  const res = await postJob(a.url, 'email', emailBody(recipients(N, 'rate')))
  assert.equal(res.status, 202, res.text)
  await waitFor(`${N} messages delivered`, () => {
    samples.push({ ms: performance.now() - t0, delivered: smtp.delivered.length })
    return smtp.delivered.length >= N ? true : undefined
  }, 30_000, 10)
  const elapsed = performance.now() - t0
  await untilDone(b.url, (res.json as { id: string }).id)
  t.diagnostic(`${N} e-mails at --rate-limit ${RATE} with 2 workers: ${Math.round(elapsed)} ms (${(N / elapsed * 1000).toFixed(0)}/s)`)
  // BullMQ starts one chunk of 50 every 500 ms across both workers: the 6th starts at ≥ 2.5 s.
  // Unlimited, the two workers send these 300 in well under a second.
  assert.ok(elapsed >= 2_000, `300 e-mails in ${Math.round(elapsed)} ms: faster than ${RATE}/s allows`)
  const ahead = samples.filter((s) => s.delivered > RATE * s.ms / 1000 + CHUNK + 10)
  assert.deepEqual(ahead, [], 'delivered never ahead of 100/s plus one chunk')
})
