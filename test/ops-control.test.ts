// Job control over HTTP (issue 8): GET /jobs (newest first, ?state=, pages with next/before),
// POST /jobs/:id/retry and /cancel, on both stores: SQLite under createReceiver's default, and
// BullMQ on the real Redis. E-mail jobs run through a pooled nodemailer transport against a real
// in-process SMTP server whose fault plan refuses some recipients once. The same assertions run
// on each store; where the stores disagree the test stays red and names the behaviour.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { createMailer, createReceiver, emailHandler, sign, type Mailer, type Receiver, type ReceiverOptions } from 'rawtrigger'
import { BullmqQueue } from '../src/queue/bullmq-queue.ts'
import type { JobList, JobView } from '../src/queue/types.ts'
import testHandlers from './helpers/handlers.ts'
import { request, type JsonResponse } from './helpers/receiver.ts'
import { useRedis } from './helpers/redis.ts'
import { startSmtpServer, type FaultPlan, type TestSmtpServer } from './helpers/smtp-server.ts'

/** Guard on every wait: a hang fails the test instead of stalling the run. */
const WAIT_MS = 20_000
const POLL_MS = 25
/** Recipients per BullMQ job: small, so a job of a few recipients spans several chunks. */
const CHUNK_SIZE = 2
const SECRET = 'whsec_' + Buffer.from('ops-control test secret, 32 byte').toString('base64')

type Kind = 'sqlite' | 'redis'
const KINDS: readonly Kind[] = ['sqlite', 'redis']

interface Harness {
  url: string
  receiver: Receiver
  smtp: TestSmtpServer
  mailer: Mailer
}

interface HarnessOptions {
  faults?: FaultPlan
  /** Jobs (SQLite) or chunks (BullMQ) at once; 0 stores only. @default 1 */
  concurrency?: number
  /** Pool connections: also the messages the e-mail job keeps in flight. @default 5 */
  maxConnections?: number
  secret?: string
  /** BullMQ only. @default 2 */
  chunkSize?: number
}

/**
 * A receiver on 127.0.0.1:0 over the store `kind`, with the `email` job type (through a real SMTP
 * server) and the test handlers. Undefined when Redis is wanted but absent (the test is skipped,
 * or failed under REQUIRE_REDIS=1). Everything is closed when the test ends.
 */
async function start (t: TestContext, kind: Kind, options: HarnessOptions = {}): Promise<Harness | undefined> {
  const smtp = await startSmtpServer(options.faults === undefined ? {} : { faults: options.faults })
  const mailer = createMailer({ url: smtp.url, maxConnections: options.maxConnections ?? 5 })
  const common: ReceiverOptions = {
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    pollMs: 20,
    graceMs: 1_000,
    concurrency: options.concurrency ?? 1,
    handlers: { ...testHandlers, email: emailHandler({ mailer, retryBaseMs: 50, maxAttempts: 3 }) },
    ...(options.secret === undefined ? {} : { secret: options.secret }),
  }
  let receiver: Receiver
  if (kind === 'sqlite') {
    const dataDir = mkdtempSync(join(tmpdir(), 'rttest-ops-control-'))
    receiver = await createReceiver({ ...common, dataDir })
    t.after(async () => {
      await receiver.close()
      mailer.close()
      await smtp.close()
      rmSync(dataDir, { recursive: true, force: true })
    })
  } else {
    const redis = await useRedis(t)
    if (redis === undefined) {
      mailer.close()
      await smtp.close()
      return undefined
    }
    const queue = new BullmqQueue({ url: redis.url, prefix: redis.prefix, chunkSize: options.chunkSize ?? CHUNK_SIZE })
    receiver = await createReceiver({ ...common, queue })
    redis.defer(async () => {
      await receiver.close()
      mailer.close()
      await smtp.close()
    })
    // A fresh BullmqQueue refuses commands until its connection is up (enableOfflineQueue: false).
    await until('the Redis connection', async () => (await queue.stats().then(() => true, () => false)) || undefined)
  }
  return { url: receiver.url, receiver, smtp, mailer }
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `check` until it returns something other than undefined; fails after `timeoutMs`. */
async function until<T> (what: string, check: () => Promise<T | undefined>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(POLL_MS)
  }
}

/** Signed headers when `secret` is set (over `body`, empty for GET and body-less POST). */
function auth (secret: string | undefined, body = ''): Record<string, string> {
  return secret === undefined ? {} : { ...sign(secret, body) }
}

function get (h: Harness, path: string, secret?: string): Promise<JsonResponse> {
  return request(`${h.url}${path}`, { headers: auth(secret) })
}

function post (h: Harness, path: string, body?: unknown, secret?: string): Promise<JsonResponse> {
  if (body === undefined) return request(`${h.url}${path}`, { method: 'POST', headers: auth(secret) })
  const text = JSON.stringify(body)
  return request(`${h.url}${path}`, { method: 'POST', body: text, headers: { 'content-type': 'application/json', ...auth(secret, text) } })
}

async function view (h: Harness, id: string, secret?: string): Promise<JobView> {
  const res = await get(h, `/jobs/${id}`, secret)
  assert.equal(res.status, 200, `GET /jobs/${id}: ${res.text}`)
  return res.json as JobView
}

async function list (h: Harness, query: string): Promise<JobList> {
  const res = await get(h, `/jobs${query}`)
  assert.equal(res.status, 200, `GET /jobs${query}: ${res.text}`)
  return res.json as JobList
}

/** Waits until the job is in one of `states`. */
async function untilState (h: Harness, id: string, states: readonly string[], timeoutMs = WAIT_MS, secret?: string): Promise<JobView> {
  let last: JobView | undefined
  try {
    return await until(`job ${id} to be ${states.join(' or ')}`, async () => {
      last = await view(h, id, secret)
      return states.includes(last.state) ? last : undefined
    }, timeoutMs)
  } catch (err) {
    throw new Error(`${(err as Error).message}; last view: ${JSON.stringify(last)}`)
  }
}

/** POSTs an e-mail job with webhook-id `id` (unsigned, loopback: the id is the job's id). */
async function postEmail (h: Harness, id: string, recipients: string[], secret?: string): Promise<string> {
  const text = JSON.stringify({ from: 'Ops <ops@example.org>', subject: 'Hello {{email}}', text: 'Hi {{email}}', recipients })
  const headers = secret === undefined ? { 'webhook-id': id } : { ...sign(secret, text, { id }) }
  const res = await request(`${h.url}/jobs/email`, { method: 'POST', body: text, headers: { 'content-type': 'application/json', ...headers } })
  assert.equal(res.status, 202, res.text)
  assert.equal(res.json.id, id)
  return id
}

/** A `record` job of `n` items that never runs here (concurrency 0): it stays queued. */
async function postRecord (h: Harness, id: string, n: number): Promise<void> {
  const text = JSON.stringify({ n, file: join(tmpdir(), `rttest-never-written-${id}`) })
  const res = await request(`${h.url}/jobs/record`, { method: 'POST', body: text, headers: { 'content-type': 'application/json', 'webhook-id': id } })
  assert.equal(res.status, 202, res.text)
}

function addresses (prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}@example.org`)
}

/** Messages delivered for job `id` (Message-ID `<id.index@domain>`). */
function deliveredFor (smtp: TestSmtpServer, id: string): number {
  return smtp.delivered.filter((m) => m.messageId.startsWith(`<${id}.`)).length
}

for (const kind of KINDS) {
  describe(`job control on ${kind}`, () => {
    test('GET /jobs: newest first, ?state= filters, pages follow next → before to the end', async (t) => {
      const h = await start(t, kind, { concurrency: 0 })
      if (h === undefined) return
      const ids = Array.from({ length: 7 }, (_, i) => `list-${kind}-${i}`)
      for (const id of ids) await postRecord(h, id, 3) // one by one: creation order is the order
      for (const id of [ids[1], ids[4]] as string[]) {
        const res = await post(h, `/jobs/${id}/cancel`)
        assert.equal(res.status, 200, res.text)
      }

      const all = await list(h, '')
      assert.deepEqual(all.jobs.map((j) => j.id), [...ids].reverse(), 'newest first')
      assert.equal(all.next, undefined, 'fewer than the default limit: no next page')
      for (const j of all.jobs) {
        assert.equal(j.type, 'record')
        assert.equal(j.total, 3)
        assert.ok(!('errors' in j), 'the list shows summaries, not errors')
      }

      const cancelled = await list(h, '?state=cancelled')
      assert.deepEqual(cancelled.jobs.map((j) => j.id), [ids[4], ids[1]])
      for (const j of cancelled.jobs) assert.deepEqual([j.state, j.pending, j.cancelled, j.sent], ['cancelled', 0, 3, 0])
      assert.deepEqual((await list(h, '?state=done')).jobs, [])

      // Five queued jobs, two per page: 2 + 2 + 1, each page's next is the following page's before.
      const pages: string[][] = []
      let before: string | undefined
      for (let round = 0; round < 10; round++) {
        const page: JobList = await list(h, `?state=queued&limit=2${before === undefined ? '' : `&before=${encodeURIComponent(before)}`}`)
        pages.push(page.jobs.map((j) => j.id))
        for (const j of page.jobs) assert.equal(j.state, 'queued')
        if (page.next === undefined) break
        assert.equal(typeof page.next, 'string')
        before = page.next
      }
      assert.deepEqual(pages, [[ids[6], ids[5]], [ids[3], ids[2]], [ids[0]]])

      // Without a state filter as well: limit 3 → 3 + 3 + 1.
      const unfiltered: string[] = []
      before = undefined
      for (let round = 0; round < 10; round++) {
        const page: JobList = await list(h, `?limit=3${before === undefined ? '' : `&before=${encodeURIComponent(before)}`}`)
        unfiltered.push(...page.jobs.map((j) => j.id))
        if (page.next === undefined) break
        before = page.next
      }
      assert.deepEqual(unfiltered, [...ids].reverse())

      for (const [query, field] of [['?limit=0', 'limit'], ['?limit=501', 'limit'], ['?limit=2.5', 'limit'], ['?state=sleeping', 'state']] as const) {
        const res = await get(h, `/jobs${query}`)
        assert.equal(res.status, 400, `${query}: ${res.text}`)
        assert.equal(res.json.error.code, 'RT_ERR_VALIDATION')
        assert.equal(res.json.error.field, field)
      }
      const wrongMethod = await request(`${h.url}/jobs`, { method: 'DELETE' })
      assert.equal(wrongMethod.status, 405)
      assert.equal(wrongMethod.json.error.code, 'RT_ERR_METHOD_NOT_ALLOWED')
    })

    test('GET /jobs?before= with something that is no cursor → 400 RT_ERR_VALIDATION (same on both stores)', async (t) => {
      const h = await start(t, kind, { concurrency: 0 })
      if (h === undefined) return
      await postRecord(h, `cursor-${kind}`, 1)
      // SQLite reads a cursor it cannot parse as 0 (an empty page, 200); Redis hands "(NaN" to
      // ZREVRANGEBYSCORE and answers 503 RT_ERR_STORE. Neither tells the client its cursor is bad.
      const res = await get(h, '/jobs?before=not-a-cursor')
      assert.equal(res.status, 400, `${kind}: ${res.status} ${res.text}`)
      assert.equal(res.json.error.code, 'RT_ERR_VALIDATION')
    })

    test('GET /jobs?state= finds a matching job behind 5,100 newer jobs of another state', async (t) => {
      const h = await start(t, kind, { concurrency: 0 })
      if (h === undefined) return
      await postRecord(h, `needle-${kind}`, 2)
      assert.equal((await post(h, `/jobs/needle-${kind}/cancel`)).status, 200)
      // Straight into the receiver's own queue: 5,100 HTTP requests would only cost time.
      for (let i = 0; i < 5_100; i += 100) {
        await Promise.all(Array.from({ length: 100 }, () => h.receiver.queue.add({ type: 'noop', payload: {}, items: 0 })))
      }
      const page = await list(h, '?state=cancelled&limit=10')
      assert.deepEqual(page.jobs.map((j) => j.id), [`needle-${kind}`], `the page: ${JSON.stringify(page)}`)
      const queued = await list(h, '?state=queued&limit=500')
      assert.equal(queued.jobs.length, 500)
      assert.equal(typeof queued.next, 'string')
    })

    test('retry re-queues only the failed recipients: each delivered once, the rest not sent again; then nothing failed → 409', async (t) => {
      const recipients = addresses(`retry-${kind}-`, 7)
      const refused = [recipients[1], recipients[4], recipients[6]] as string[]
      // 554 is permanent (the item fails at once) but no hard bounce, so the address is not suppressed.
      // Refused on the first try only: after that the server takes them (the plan "changes").
      const rcpt: NonNullable<FaultPlan['rcpt']> = {}
      for (const a of refused) rcpt[a] = { code: 554, message: 'Transaction failed: try again later, by hand', times: 1 }
      const h = await start(t, kind, { faults: { rcpt } })
      if (h === undefined) return
      const id = await postEmail(h, `retry-${kind}`, recipients)

      const first = await untilState(h, id, ['done', 'failed'])
      assert.equal(first.state, 'done', JSON.stringify(first))
      assert.deepEqual([first.total, first.sent, first.failed, first.pending], [7, 4, 3, 0])
      assert.deepEqual(first.errors.map((e) => [e.index, e.state, e.attempts]), [[1, 'failed', 1], [4, 'failed', 1], [6, 'failed', 1]])
      for (const e of first.errors) assert.match(e.message, /^554 /)
      assert.equal(h.smtp.delivered.length, 4)
      const failedList = await list(h, '?state=done')
      assert.deepEqual(failedList.jobs.map((j) => [j.id, j.failed]), [[id, 3]])

      const retried = await post(h, `/jobs/${id}/retry`)
      assert.equal(retried.status, 200, retried.text)
      assert.equal(retried.json.id, id)
      assert.equal(retried.json.items, 3)
      assert.ok(['queued', 'running'].includes(retried.json.state), `state after retry: ${String(retried.json.state)}`)

      const second = await untilState(h, id, ['done', 'failed'])
      assert.equal(second.state, 'done', JSON.stringify(second))
      assert.deepEqual([second.total, second.sent, second.failed, second.pending], [7, 7, 0, 0])
      assert.deepEqual(second.errors, [])
      // Every address exactly once: the failed three on the retry, none of the others again.
      const counts = h.smtp.countByAddress()
      for (const a of recipients) assert.equal(counts.get(a), 1, `${a} delivered ${counts.get(a) ?? 0} times`)
      assert.equal(h.smtp.delivered.length, 7)
      for (const a of recipients) assert.equal(h.smtp.rcptTries(a), refused.includes(a) ? 2 : 1, a)

      const again = await post(h, `/jobs/${id}/retry`)
      assert.equal(again.status, 409, again.text)
      assert.equal(again.json.error.code, 'RT_ERR_CONFLICT')
      const missing = await post(h, '/jobs/no-such-job/retry')
      assert.equal(missing.status, 404, missing.text)
      assert.equal(missing.json.error.code, 'RT_ERR_NOT_FOUND')
      const wrongMethod = await request(`${h.url}/jobs/${id}/retry`)
      assert.equal(wrongMethod.status, 405)
      await sleep(200)
      assert.equal(h.smtp.delivered.length, 7, 'a refused retry sends nothing')
    })

    test('retry of a job that never failed → 409 and nothing is sent again', async (t) => {
      const h = await start(t, kind)
      if (h === undefined) return
      const id = await postEmail(h, `clean-${kind}`, addresses(`clean-${kind}-`, 3))
      const done = await untilState(h, id, ['done'])
      assert.equal(done.sent, 3)
      const res = await post(h, `/jobs/${id}/retry`)
      assert.equal(res.status, 409, res.text)
      assert.equal(res.json.error.code, 'RT_ERR_CONFLICT')
      await sleep(200)
      assert.equal(h.smtp.delivered.length, 3)
      assert.equal((await view(h, id)).state, 'done')
    })

    test('cancel of a finished job → 409; of a job that does not exist → 404', async (t) => {
      const h = await start(t, kind)
      if (h === undefined) return
      const id = await postEmail(h, `finished-${kind}`, addresses(`finished-${kind}-`, 2))
      await untilState(h, id, ['done'])
      const res = await post(h, `/jobs/${id}/cancel`)
      assert.equal(res.status, 409, res.text)
      assert.equal(res.json.error.code, 'RT_ERR_CONFLICT')
      assert.equal((await view(h, id)).state, 'done', 'a refused cancel changes nothing')
      const missing = await post(h, '/jobs/no-such-job/cancel')
      assert.equal(missing.status, 404, missing.text)
      assert.equal(missing.json.error.code, 'RT_ERR_NOT_FOUND')
    })

    test('cancel of a queued job that never ran: it ends cancelled with all its items', async (t) => {
      const h = await start(t, kind, { concurrency: 0 })
      if (h === undefined) return
      const id = `queued-${kind}`
      await postRecord(h, id, 5)
      const res = await post(h, `/jobs/${id}/cancel`)
      assert.equal(res.status, 200, res.text)
      const v = await view(h, id)
      assert.deepEqual([v.state, v.pending, v.cancelled, v.sent, v.failed], ['cancelled', 0, 5, 0, 0])

      await t.test('the answer counts the five items the cancel stopped', () => {
        assert.deepEqual(res.json, { id, items: 5, state: 'cancelled' })
      })
      await t.test('a second cancel of the (finished) cancelled job → 409', async () => {
        const again = await post(h, `/jobs/${id}/cancel`)
        assert.equal(again.status, 409, again.text)
        assert.equal(again.json.error.code, 'RT_ERR_CONFLICT')
      })
      await t.test('a retry of the cancelled job → 409: its unsent items stay unsent', async () => {
        const retry = await post(h, `/jobs/${id}/retry`)
        assert.equal(retry.status, 409, retry.text)
        assert.equal(retry.json.error.code, 'RT_ERR_CONFLICT')
        assert.equal((await view(h, id)).state, 'cancelled')
      })
    })

    test('cancel while a slow job runs: pending recipients cancelled, the job ends cancelled, sending stops', async (t) => {
      const DATA_DELAY_MS = 250
      const CONNECTIONS = 2
      const recipients = addresses(`slow-${kind}-`, 24)
      // BullMQ chunks larger than the pool, as in production (200 vs 5): a chunk runs like a SQLite job.
      const h = await start(t, kind, { faults: { dataDelayMs: DATA_DELAY_MS }, maxConnections: CONNECTIONS, chunkSize: 12 })
      if (h === undefined) return
      const id = await postEmail(h, `slow-${kind}`, recipients)
      await until('4 messages delivered', async () => (h.smtp.delivered.length >= 4 ? true : undefined))
      // Half-way between two 250 replies: nothing is between "delivered" and "next one started".
      await sleep(DATA_DELAY_MS / 2)
      const started = (): string[] => recipients.filter((a) => h.smtp.rcptTries(a) > 0)
      const res = await post(h, `/jobs/${id}/cancel`)
      const startedAtCancel = started()
      const deliveredAtCancel = h.smtp.delivered.length
      assert.equal(res.status, 200, res.text)
      assert.equal(res.json.state, 'cancelled')
      assert.equal(res.json.id, id)

      // Wait until nothing has arrived for three message times.
      let seen = -1
      let quietSince = Date.now()
      await until('the SMTP server to go quiet', async () => {
        if (h.smtp.delivered.length !== seen) {
          seen = h.smtp.delivered.length
          quietSince = Date.now()
        }
        return Date.now() - quietSince > 3 * DATA_DELAY_MS ? true : undefined
      })
      const end = await view(h, id)
      const inFlightAtCancel = startedAtCancel.length - deliveredAtCancel
      const deliveredAfter = h.smtp.delivered.length - deliveredAtCancel
      const lateStarts = started().filter((a) => !startedAtCancel.includes(a))

      await t.test('the job ends cancelled, nothing pending, every item accounted for', () => {
        assert.equal(end.state, 'cancelled', JSON.stringify(end))
        assert.equal(end.pending, 0)
        assert.equal((end.cancelled ?? 0) + end.sent + end.failed, end.total)
        assert.ok((end.cancelled ?? 0) > 0, `cancelled ${String(end.cancelled)}`)
        assert.ok(h.smtp.delivered.length < recipients.length, 'the cancel stopped the job before the end')
        assert.ok(end.finishedAt !== undefined, 'a cancelled job has finished')
      })
      await t.test('after the cancel returned, at most the messages in flight then were delivered', () => {
        assert.ok(inFlightAtCancel <= CONNECTIONS, `in flight at cancel: ${inFlightAtCancel}`)
        assert.ok(deliveredAfter <= inFlightAtCancel,
          `${deliveredAfter} delivered after the cancel returned, ${inFlightAtCancel} were in flight then`)
      })
      await t.test('no recipient\'s message was started after the cancel returned', () => {
        assert.deepEqual(lateStarts, [], `started after the cancel: ${lateStarts.join(', ')}`)
      })
      await t.test('messages in flight at the cancel finish and count as sent, not cancelled', () => {
        assert.equal(end.sent, deliveredFor(h.smtp, id), `GET /jobs/:id says sent ${end.sent}; the server got ${deliveredFor(h.smtp, id)}`)
      })
      await t.test('listed under ?state=cancelled; a retry → 409', async () => {
        const listed = await list(h, '?state=cancelled')
        assert.deepEqual(listed.jobs.map((j) => j.id), [id])
        const retry = await post(h, `/jobs/${id}/retry`)
        assert.equal(retry.status, 409, retry.text)
      })
      await t.test('a second cancel → 409', async () => {
        const again = await post(h, `/jobs/${id}/cancel`)
        assert.equal(again.status, 409, again.text)
        assert.equal(again.json.error.code, 'RT_ERR_CONFLICT')
      })
    })

    test('with a secret, list/retry/cancel/suppressions need a valid signature (401 without or with a wrong one)', async (t) => {
      const h = await start(t, kind, { secret: SECRET })
      if (h === undefined) return
      const id = await postEmail(h, `signed-${kind}`, addresses(`signed-${kind}-`, 2), SECRET)
      const routes: Array<{ method: string, path: string, body?: string, ok: number }> = [
        { method: 'GET', path: '/jobs', ok: 200 },
        { method: 'GET', path: '/jobs?state=done&limit=5', ok: 200 },
        { method: 'GET', path: `/jobs/${id}`, ok: 200 },
        { method: 'POST', path: '/suppressions', body: JSON.stringify({ email: 'x@example.org', reason: 'test' }), ok: 201 },
        { method: 'GET', path: '/suppressions', ok: 200 },
        { method: 'DELETE', path: '/suppressions/x%40example.org', ok: 204 },
        { method: 'POST', path: '/jobs/no-such-job/cancel', ok: 404 },
        { method: 'POST', path: '/jobs/no-such-job/retry', ok: 404 },
      ]
      await untilState(h, id, ['done'], WAIT_MS, SECRET)
      for (const r of routes) {
        const body = r.body
        const json = body === undefined ? {} : { 'content-type': 'application/json' }
        const unsigned = await request(`${h.url}${r.path}`, { method: r.method, headers: json, ...(body === undefined ? {} : { body }) })
        assert.equal(unsigned.status, 401, `${r.method} ${r.path} unsigned: ${unsigned.text}`)
        assert.equal(unsigned.json.error.code, 'RT_ERR_UNAUTHORIZED')
        // Signed over another body (e.g. a replayed signature): refused as well.
        const wrong = await request(`${h.url}${r.path}`, { method: r.method, headers: { ...json, ...sign(SECRET, 'something else') }, ...(body === undefined ? {} : { body }) })
        assert.equal(wrong.status, 401, `${r.method} ${r.path} wrongly signed: ${wrong.text}`)
        const otherSecret = 'whsec_' + Buffer.from('another secret of thirty-two b..').toString('base64')
        const foreign = await request(`${h.url}${r.path}`, { method: r.method, headers: { ...json, ...sign(otherSecret, body ?? '') }, ...(body === undefined ? {} : { body }) })
        assert.equal(foreign.status, 401, `${r.method} ${r.path} signed with another secret: ${foreign.text}`)
        const signed = await request(`${h.url}${r.path}`, { method: r.method, headers: { ...json, ...sign(SECRET, body ?? '') }, ...(body === undefined ? {} : { body }) })
        assert.equal(signed.status, r.ok, `${r.method} ${r.path} signed: ${signed.text}`)
      }
      // A cancel and a retry that do something, signed (body-less POST: signature over "").
      const cancelled = await request(`${h.url}/jobs/${id}/cancel`, { method: 'POST', headers: sign(SECRET, '') })
      assert.equal(cancelled.status, 409, 'done: nothing to cancel, but the signature was accepted')
      const retry = await request(`${h.url}/jobs/${id}/retry`, { method: 'POST', headers: sign(SECRET, '') })
      assert.equal(retry.status, 409, 'nothing failed: nothing to retry, but the signature was accepted')
    })
  })
}
