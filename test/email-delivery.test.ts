// Delivery of the `email` job type (issue 4, RELIABILITY 19–22): a real receiver with a real SQLite
// store runs emailHandler through a pooled nodemailer transport against a real smtp-server in this
// process, whose fault plan answers 451/550 per recipient or drops every connection mid-batch.
// Then the embedded sink: startSink, GET /mailbox, the next free port.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import Database from 'better-sqlite3'
import nodemailer from 'nodemailer'
import {
  createMailer, createReceiver, emailHandler, startEmailService, startSink, type Mailer, type Receiver,
} from 'rawtrigger'
import { createLogger } from '../src/log.ts'
import { backoff, classify } from '../src/smtp/email-job.ts'
import { startSmtpServer, type FaultPlan, type TestSmtpServer } from './helpers/smtp-server.ts'

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

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls GET /jobs/:id until the job is done or failed (both final), then returns it. */
async function waitForEnd (receiver: { url: string }, id: string, timeoutMs = JOB_TIMEOUT_MS): Promise<JobView> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const { body } = await getJson(`${receiver.url}/jobs/${id}`)
    const view = body as unknown as JobView
    if (view.state === 'done' || view.state === 'failed') return view
    if (Date.now() > deadline) assert.fail(`job ${id} not finished after ${timeoutMs} ms: ${JSON.stringify(body).slice(0, 2000)}`)
    await sleep(POLL_MS)
  }
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

describe('the embedded sink', () => {
  test('startSink keeps the last 1,000 messages, newest first, and counts them all', async (t) => {
    const sink = await startSink({ port: 0 })
    t.after(() => sink.close())
    // One connection: messages arrive in the order they were sent.
    const transport = nodemailer.createTransport({ url: sink.url, pool: true, maxConnections: 1 })
    t.after(() => transport.close())
    const n = 1050
    let i = 0
    const next = async (): Promise<void> => {
      while (i < n) {
        const k = i++
        await transport.sendMail({ from: 'a@x.org', to: `r${k}@x.org`, subject: `Nr ${k}`, text: 'x', messageId: `<m.${k}@x.org>` })
      }
    }
    await Promise.all([next(), next(), next()])
    assert.equal(sink.received(), n)
    const kept = sink.messages()
    assert.equal(kept.length, 1000)
    assert.deepEqual(kept.map((m) => m.messageId), Array.from({ length: 1000 }, (_, j) => `<m.${n - 1 - j}@x.org>`))
    const newest = kept[0]
    assert.equal(newest?.subject, `Nr ${n - 1}`)
    assert.deepEqual(newest?.to, [`r${n - 1}@x.org`])
    assert.equal(newest?.from, 'a@x.org')
    assert.ok((newest?.size ?? 0) > 100)
    assert.ok(!Number.isNaN(Date.parse(newest?.receivedAt ?? '')))
  })

  test('GET /mailbox through the email service: newest first, last 1,000 kept, ?limit=', async (t) => {
    const email = await startEmailService({ sinkPort: 0, retryBaseMs: RETRY_BASE_MS, log: createLogger('silent') })
    t.after(() => email.close())
    assert.ok(email.sink !== undefined)
    assert.equal(email.smtpUrl, email.sink.url)
    const receiver = await createReceiver({
      port: 0, dataDir: tempDir(t), pollMs: 50, logLevel: 'silent', handlers: { email: email.handler }, routes: email.routes,
    })
    t.after(() => receiver.close())
    const id = await postCampaign(receiver, people(1010))
    const job = await waitForEnd(receiver, id)
    assert.equal(job.state, 'done')
    assert.equal(job.sent, 1010)

    const mailbox = async (query = ''): Promise<{ received: number, messages: Array<{ messageId: string, receivedAt: string, to: string[], subject: string }> }> => {
      const { status, body } = await getJson(`${receiver.url}/mailbox${query}`)
      assert.equal(status, 200)
      return body as unknown as Awaited<ReturnType<typeof mailbox>>
    }
    const page = await mailbox()
    assert.equal(page.received, 1010)
    assert.equal(page.messages.length, 100, 'default page')
    assert.equal((await mailbox('?limit=7')).messages.length, 7)
    const all = await mailbox('?limit=5000')
    assert.equal(all.messages.length, 1000, 'only the last 1,000 are kept')
    const times = all.messages.map((m) => Date.parse(m.receivedAt))
    for (let k = 1; k < times.length; k++) assert.ok((times[k - 1] as number) >= (times[k] as number), `newest first at ${k}`)
    const ids = all.messages.map((m) => m.messageId)
    assert.equal(new Set(ids).size, 1000)
    for (const m of all.messages) {
      assert.match(m.messageId, new RegExp(`^<${id}\\.(\\d+)@${DOMAIN.replace('.', '\\.')}>$`))
      assert.equal(m.to.length, 1)
    }
    // The first ten sent are the ones most likely dropped; at least some early ones must be gone.
    const indexes = ids.map((m) => Number(/\.(\d+)@/.exec(m)?.[1]))
    assert.ok(Math.min(...indexes) >= 1, 'the oldest messages were dropped')
  })

  test('GET /mailbox shows a non-ASCII subject as text, not as RFC 2047 encoded words', async (t) => {
    // What Mailpit or maildev show a developer: "Grüße, Zoë", not "=?UTF-8?Q?Gr=C3=BC=C3=9Fe…?=".
    const sink = await startSink({ port: 0 })
    t.after(() => sink.close())
    const transport = nodemailer.createTransport({ url: sink.url })
    t.after(() => transport.close())
    await transport.sendMail({ from: 'a@x.org', to: 'b@x.org', subject: 'Grüße, Zoë', text: 'x' })
    await transport.sendMail({ from: 'a@x.org', to: 'b@x.org', subject: 'Plain ASCII subject', text: 'x' })
    const [ascii, utf8] = sink.messages()
    assert.equal(ascii?.subject, 'Plain ASCII subject')
    assert.equal(utf8?.subject, 'Grüße, Zoë')
  })

  test('GET /mailbox is not served when mail goes to a real SMTP server', async (t) => {
    const smtp = await smtpServer(t)
    const email = await startEmailService({ smtpUrl: smtp.url, log: createLogger('silent') })
    t.after(() => email.close())
    assert.equal(email.sink, undefined)
    const receiver = await createReceiver({ port: 0, dataDir: tempDir(t), logLevel: 'silent', handlers: { email: email.handler }, routes: email.routes })
    t.after(() => receiver.close())
    assert.equal((await getJson(`${receiver.url}/mailbox`)).status, 404)
  })

  test('startSink takes the next port when the one asked for is busy', async (t) => {
    const blocker = net.createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
    const busy = (blocker.address() as AddressInfo).port
    const sink = await startSink({ port: busy })
    t.after(() => sink.close())
    assert.ok(sink.port > busy && sink.port <= busy + 20, `busy ${busy}, sink on ${sink.port}`)
    assert.equal(sink.url, `smtp://127.0.0.1:${sink.port}`)
    // And it is a working SMTP server there.
    const transport = nodemailer.createTransport({ url: sink.url })
    t.after(() => transport.close())
    await transport.sendMail({ from: 'a@x.org', to: 'b@x.org', subject: 'port', text: 'x' })
    assert.equal(sink.received(), 1)
  })
})
