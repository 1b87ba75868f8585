// Delivery of the `email` job type (issue 4, RELIABILITY 19–22): a real receiver with a real SQLite
// store runs emailHandler through a pooled nodemailer transport against a real smtp-server in this
// process, whose fault plan answers 451/550 per recipient or drops every connection mid-batch.
// The embedded sink: email-sink.test.ts.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import Database from 'better-sqlite3'
import {
  createMailer, createReceiver, emailHandler, type Mailer, type Receiver,
} from 'rawtrigger'
import { backoff, classify } from '../src/smtp/email-job.ts'
import { startSmtpServer, type FaultPlan, type TestSmtpServer } from './helpers/smtp-server.ts'
import { waitFor } from './helpers/wait.ts'

const JOB_TIMEOUT_MS = 45_000 // a generous guard: 1,000 local messages take about a second
const POLL_MS = 25
const RETRY_BASE_MS = 50
const MAX_ATTEMPTS = 4
const DOMAIN = 'shop.example'
const FROM = `Shop <news@${DOMAIN}>`

interface Answer { status: number, body: Record<string, unknown> }
interface JobView {
  id: string, state: string, total: number, sent: number, failed: number, pending: number, attempts: number
  errors: Array<{ index?: number, message: string, attempts: number, state?: string }>
}

async function post (url: string, body: unknown): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

async function getJson (url: string): Promise<Answer> {
  const res = await fetch(url)
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

function tempDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rawtrigger-email-delivery-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Polls GET /jobs/:id until the job is done or failed (both final), then returns it. */
async function waitForEnd (receiver: { url: string }, id: string, timeoutMs = JOB_TIMEOUT_MS): Promise<JobView> {
  let last = ''
  return waitFor(`job ${id} finished`, async () => {
    const { body } = await getJson(`${receiver.url}/jobs/${id}`)
    last = JSON.stringify(body).slice(0, 2000)
    const view = body as unknown as JobView
    return view.state === 'done' || view.state === 'failed' ? view : undefined
  }, timeoutMs, POLL_MS).catch((err: Error) => { throw new Error(`${err.message}: ${last}`) })
}

interface Harness { receiver: Receiver, mailer: Mailer, dataDir: string }

async function startHarness (t: TestContext, smtpUrl: string, maxAttempts = MAX_ATTEMPTS): Promise<Harness> {
  const mailer = createMailer({ url: smtpUrl })
  const dataDir = tempDir(t)
  const receiver = await createReceiver({
    port: 0,
    dataDir,
    pollMs: 50,
    logLevel: 'silent',
    handlers: { email: emailHandler({ mailer, retryBaseMs: RETRY_BASE_MS, maxAttempts }) },
  })
  t.after(async () => {
    await receiver.close()
    mailer.close()
  })
  return { receiver, mailer, dataDir }
}

async function smtpServer (t: TestContext, faults?: FaultPlan): Promise<TestSmtpServer> {
  const smtp = await startSmtpServer(faults === undefined ? {} : { faults })
  t.after(() => smtp.close())
  return smtp
}

function people (n: number): Array<{ email: string, name: string }> {
  return Array.from({ length: n }, (_, i) => ({ email: `person${i}@mail${i % 7}.example`, name: `Person Nr${i} Ünïcödé` }))
}

async function postCampaign (receiver: Receiver, recipients: unknown[]): Promise<string> {
  const { status, body } = await post(`${receiver.url}/jobs/email`, {
    from: FROM,
    subject: 'A tip for {{name}}',
    text: 'Hello {{name}},\nwe thought of you ({{email}}).',
    html: '<p>Hello {{name}}</p>',
    recipients,
  })
  assert.equal(status, 202, JSON.stringify(body))
  assert.equal(body.recipients, recipients.length)
  return String(body.id)
}

/** Per-recipient state as stored (RELIABILITY 23: the job resumes from it), read from the SQLite file. */
function storedItems (dataDir: string, jobId: string): Array<{ idx: number, state: string, attempts: number, error: string | null }> {
  const db = new Database(join(dataDir, 'rawtrigger.db'), { readonly: true })
  try {
    return db.prepare(`SELECT idx, state, attempts, error FROM items
      WHERE job_seq = (SELECT seq FROM jobs WHERE id = ?) ORDER BY idx`).all(jobId) as Array<{ idx: number, state: string, attempts: number, error: string | null }>
  } finally {
    db.close()
  }
}

describe('classify and backoff', () => {
  test('4xx replies and connection errors are temporary, 5xx permanent, the reply kept', () => {
    for (const code of [421, 450, 451, 452]) {
      const r = classify({ responseCode: code, response: `${code} try later`, message: 'x' })
      assert.deepEqual([r.temporary, r.reply], [true, `${code} try later`])
    }
    for (const code of [550, 551, 552, 553, 554]) {
      const r = classify({ responseCode: code, response: `${code} no` })
      assert.deepEqual([r.temporary, r.reply], [false, `${code} no`])
    }
    const refused = classify(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNECTION' }))
    assert.equal(refused.temporary, true)
    assert.match(refused.reply, /^ECONNECTION: connect ECONNREFUSED/)
    assert.equal(classify(new Error('Timeout')).temporary, true)
  })

  test('backoff doubles per attempt with ±25 % jitter', () => {
    for (let attempt = 1; attempt <= 6; attempt++) {
      const mid = 1000 * 2 ** (attempt - 1)
      for (let i = 0; i < 200; i++) {
        const ms = backoff(1000, attempt)
        assert.ok(ms >= mid * 0.75 && ms <= mid * 1.25, `attempt ${attempt}: ${ms} ms`)
      }
    }
    const spread = new Set(Array.from({ length: 50 }, () => backoff(1000, 1)))
    assert.ok(spread.size > 10, 'jittered, not constant')
  })
})

describe('delivery through a pooled transport', () => {
  test('1,000 recipients each get exactly one message carrying their name, with Message-ID <jobId.index@domain>', async (t) => {
    const smtp = await smtpServer(t)
    const { receiver } = await startHarness(t, smtp.url)
    const recipients = people(1000)
    const id = await postCampaign(receiver, recipients)
    const job = await waitForEnd(receiver, id)
    assert.equal(job.state, 'done', JSON.stringify(job.errors))
    assert.deepEqual([job.total, job.sent, job.failed, job.pending], [1000, 1000, 0, 0])
    assert.equal(smtp.delivered.length, 1000)
    assert.equal(smtp.duplicates(), 0)

    const byAddress = new Map(smtp.delivered.map((m) => [m.rcpt[0], m]))
    recipients.forEach((r, index) => {
      const m = byAddress.get(r.email)
      assert.ok(m !== undefined, `nothing delivered to ${r.email}`)
      assert.deepEqual(m.rcpt, [r.email], 'one message per recipient: exactly one RCPT TO')
      assert.equal(m.messageId, `<${id}.${index}@${DOMAIN}>`)
      assert.equal(m.subject, `A tip for ${r.name}`)
      assert.equal(m.text, `Hello ${r.name},\nwe thought of you (${r.email}).`)
      assert.equal(m.html, `<p>Hello ${r.name}</p>`)
      assert.equal(m.mailFrom, `news@${DOMAIN}`)
      assert.ok(m.to.includes(r.email) && m.to.includes(r.name), `To: ${m.to}`)
    })
    const stats = (await getJson(`${receiver.url}/stats`)).body
    assert.deepEqual(stats.emails, { sent: 1000, failed: 0, pending: 0 })
    // The pool: at most 5 connections at once, each reused for up to 100 messages.
    assert.ok(smtp.connections <= 20, `connections opened: ${smtp.connections}`)
  })

  test('fault plan: 451 once → delivered after a retry; 550 → failed with the server reply; the rest delivered', async (t) => {
    const recipients = people(1000)
    const greylisted = [3, 150, 499, 500, 501, 777, 998].map((i) => (recipients[i] as { email: string }).email)
    const rejectedIdx = [10, 400, 999]
    const rcpt: NonNullable<FaultPlan['rcpt']> = {}
    for (const a of greylisted) rcpt[a.toUpperCase()] = { code: 451, message: '4.7.1 Greylisted, come back later', times: 1 }
    for (const i of rejectedIdx) rcpt[(recipients[i] as { email: string }).email] = { code: 550, message: `5.1.1 <person${i}> User unknown`, times: Infinity }
    const smtp = await smtpServer(t, { rcpt })
    const { receiver, dataDir } = await startHarness(t, smtp.url)
    const id = await postCampaign(receiver, recipients)
    const job = await waitForEnd(receiver, id)

    assert.equal(job.state, 'done', JSON.stringify(job))
    assert.deepEqual([job.total, job.sent, job.failed, job.pending], [1000, 997, 3, 0])
    assert.equal(job.sent + job.failed, job.total)
    // 550: failed at once (one try), the server's reply text visible in GET /jobs/:id.
    assert.deepEqual(job.errors.map((e) => e.index), rejectedIdx)
    for (const e of job.errors) {
      assert.equal(e.state, 'failed')
      assert.equal(e.attempts, 1)
      assert.match(e.message, new RegExp(`^550 5\\.1\\.1 <person${String(e.index)}> User unknown`))
    }
    for (const i of rejectedIdx) assert.equal(smtp.rcptTries((recipients[i] as { email: string }).email), 1, 'a permanent failure is not retried')
    // 451 once: a second try, delivered once.
    const counts = smtp.countByAddress()
    for (const a of greylisted) {
      assert.equal(smtp.rcptTries(a), 2, a)
      assert.equal(counts.get(a), 1, a)
    }
    assert.equal(smtp.delivered.length, 997)
    assert.equal(smtp.duplicates(), 0)
    for (const r of recipients.filter((_, i) => !rejectedIdx.includes(i))) assert.equal(counts.get(r.email), 1, r.email)
    // The store keeps per-recipient state: attempts 2 for the greylisted, 1 for the rest.
    const items = storedItems(dataDir, id)
    assert.equal(items.length, 1000)
    for (const item of items) {
      const email = (recipients[item.idx] as { email: string }).email
      if (rejectedIdx.includes(item.idx)) assert.deepEqual([item.state, item.attempts], ['failed', 1])
      else assert.deepEqual([item.state, item.attempts], ['done', greylisted.includes(email) ? 2 : 1], email)
    }
  })

  test('always 451 → failed after maxAttempts tries with the last reply; job done', async (t) => {
    const recipients = people(20)
    const stubborn = (recipients[7] as { email: string }).email
    const smtp = await smtpServer(t, { rcpt: { [stubborn]: { code: 451, message: '4.3.0 Mailbox busy', times: Infinity } } })
    const { receiver } = await startHarness(t, smtp.url)
    const id = await postCampaign(receiver, recipients)
    const job = await waitForEnd(receiver, id)
    assert.equal(job.state, 'done', JSON.stringify(job))
    assert.deepEqual([job.sent, job.failed, job.pending], [19, 1, 0])
    assert.equal(smtp.rcptTries(stubborn), MAX_ATTEMPTS)
    assert.deepEqual(job.errors, [{ index: 7, message: '451 4.3.0 Mailbox busy', attempts: MAX_ATTEMPTS, state: 'failed' }])
  })

  test('always 451 with maxAttempts 6 → the recipient fails after 6 tries, the job still ends done', async (t) => {
    // maxAttempts is the recipient's limit (issue 4). Each retry is a new run of the job, and the
    // worker fails a job outright after MAX_RUNS (5) runs: the recipient's limit must still win.
    const recipients = people(5)
    const stubborn = (recipients[2] as { email: string }).email
    const smtp = await smtpServer(t, { rcpt: { [stubborn]: { code: 451, message: '4.3.0 Mailbox busy', times: Infinity } } })
    const { receiver } = await startHarness(t, smtp.url, 6)
    const id = await postCampaign(receiver, recipients)
    const job = await waitForEnd(receiver, id)
    assert.equal(smtp.rcptTries(stubborn), 6, `tries; job: ${JSON.stringify(job)}`)
    assert.equal(job.state, 'done', JSON.stringify(job))
    assert.deepEqual([job.sent, job.failed, job.pending], [4, 1, 0])
  })

  test('greylisting with retries spread out (base ≫ run time, as with real greylisting) → all delivered, job done', async (t) => {
    // Real greylisting: --retry-base-ms of minutes with ±25 % jitter, a run of seconds. The retries
    // then come due one by one, and each due retry starts a new run of the job. Scaled down here:
    // a 600 ms base (due 450–750 ms later), a run of a few milliseconds.
    const recipients = people(12)
    const rcpt: NonNullable<FaultPlan['rcpt']> = {}
    for (const r of recipients) rcpt[r.email] = { code: 451, message: '4.7.1 Greylisted, come back later', times: 1 }
    const smtp = await smtpServer(t, { rcpt })
    const mailer = createMailer({ url: smtp.url })
    const receiver = await createReceiver({
      port: 0, dataDir: tempDir(t), pollMs: 20, logLevel: 'silent',
      handlers: { email: emailHandler({ mailer, retryBaseMs: 600, maxAttempts: 5 }) },
    })
    t.after(async () => {
      await receiver.close()
      mailer.close()
    })
    const id = await postCampaign(receiver, recipients)
    const job = await waitForEnd(receiver, id)
    const retried = recipients.filter((r) => smtp.rcptTries(r.email) >= 2).length
    assert.equal(job.state, 'done', `${retried} of 12 retried; job: ${JSON.stringify(job)}`)
    assert.deepEqual([job.sent, job.failed, job.pending], [12, 0, 0])
    assert.equal(smtp.delivered.length, 12)
  })

  test('the server dropping every connection mid-batch → all recovered, none twice, connections bounded', async (t) => {
    const recipients = people(1000)
    const smtp = await smtpServer(t, { dropAtMessage: [100, 350, 600, 850] })
    const { receiver } = await startHarness(t, smtp.url)
    const started = Date.now()
    const id = await postCampaign(receiver, recipients)
    const job = await waitForEnd(receiver, id)
    assert.equal(job.state, 'done', JSON.stringify(job))
    assert.deepEqual([job.sent, job.failed, job.pending], [1000, 0, 0])
    assert.equal(smtp.drops, 4)
    const counts = smtp.countByAddress()
    for (const r of recipients) assert.equal(counts.get(r.email), 1, r.email)
    assert.equal(smtp.duplicates(), 0)
    // No tight loop: a pool of 5 opens about 1000/100 + 5 per drop connections, not hundreds.
    t.diagnostic(`connections opened: ${smtp.connections}, messages whose data arrived: ${smtp.dataReceived}, in ${Date.now() - started} ms`)
    assert.ok(smtp.connections <= 60, `connections opened: ${smtp.connections} in ${Date.now() - started} ms`)
  })

  test('connections dropped at once, every time → retried with backoff, failed after maxAttempts; no tight loop', async (t) => {
    let accepted = 0
    const slammer = net.createServer((socket) => {
      accepted++
      socket.destroy()
    })
    await new Promise<void>((resolve) => slammer.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => slammer.close(() => resolve())))
    const port = (slammer.address() as AddressInfo).port
    const { receiver } = await startHarness(t, `smtp://127.0.0.1:${port}`, 3)
    const recipients = people(10)
    const started = Date.now()
    const id = await postCampaign(receiver, recipients)
    const job = await waitForEnd(receiver, id)
    const elapsed = Date.now() - started
    assert.equal(job.state, 'done', JSON.stringify(job))
    assert.deepEqual([job.sent, job.failed, job.pending], [0, 10, 0])
    for (const e of job.errors) {
      assert.equal(e.attempts, 3)
      assert.match(e.message, /^E[A-Z]+: /, 'the connection error code stays readable')
    }
    t.diagnostic(`connections: ${accepted} in ${elapsed} ms`)
    // nodemailer's pool requeues a message whose connection closed (at most 5 times, backing off),
    // then the job backs off: about 10 recipients × 3 tries × (1 + 5) connections (180), never
    // thousands; a connection opened before a message was assigned to it adds a few.
    assert.ok(accepted <= 10 * 3 * 6 * 1.5, `connections: ${accepted} in ${elapsed} ms`)
    assert.ok(accepted / (elapsed / 1000) < 200, `connection rate ${Math.round(accepted / (elapsed / 1000))}/s`)
  })

  test('nodemailer resolving with info.rejected → that recipient failed with its reply', async (t) => {
    // A single-recipient message that is refused makes nodemailer reject, so the resolved-but-
    // rejected case (RELIABILITY 21) cannot be produced by a real server: a stand-in mailer.
    const sent: string[] = []
    const mailer: Mailer = {
      maxConnections: 2,
      async send (message) {
        const address = String((message.envelope as { to: string[] }).to[0])
        sent.push(address)
        const rejected = address.startsWith('person1@') ? [address] : []
        const rejectedErrors = rejected.length === 0 ? [] : [Object.assign(new Error('rejected'), { responseCode: 553, response: '553 5.7.1 Sender not allowed' })]
        return { accepted: rejected.length === 0 ? [address] : [], rejected, rejectedErrors, response: '250 OK', envelope: { from: '', to: [address] }, messageId: '' } as unknown as Awaited<ReturnType<Mailer['send']>>
      },
      close () {},
    }
    const receiver = await createReceiver({
      port: 0, dataDir: tempDir(t), pollMs: 50, logLevel: 'silent',
      handlers: { email: emailHandler({ mailer, retryBaseMs: RETRY_BASE_MS, maxAttempts: MAX_ATTEMPTS }) },
    })
    t.after(() => receiver.close())
    const id = await postCampaign(receiver, people(3))
    const job = await waitForEnd(receiver, id)
    assert.equal(job.state, 'done')
    assert.deepEqual([job.sent, job.failed], [2, 1])
    assert.deepEqual(job.errors, [{ index: 1, message: '553 5.7.1 Sender not allowed', attempts: 1, state: 'failed' }])
    assert.equal(sent.length, 3)
  })
})
