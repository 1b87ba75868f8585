// The embedded sink of the `email` job type: startSink keeps the last 1,000 messages, GET /mailbox
// through the email service (and not when mail goes to a real SMTP server), non-ASCII subjects
// shown as text, the next free port. Delivery through a real SMTP server: email-delivery.test.ts.
import assert from 'node:assert/strict'
import net, { type AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import nodemailer from 'nodemailer'
import { createReceiver, startEmailService, startSink } from 'rawtrigger'
import { createLogger } from '../src/log.ts'
import { postJob, request, tempDir, waitForState } from './helpers/receiver.ts'
import { startSmtpServer } from './helpers/smtp-server.ts'

const JOB_TIMEOUT_MS = 45_000 // a generous guard: 1,000 local messages take about a second
const RETRY_BASE_MS = 50
const DOMAIN = 'shop.example'

function people (n: number): Array<{ email: string, name: string }> {
  return Array.from({ length: n }, (_, i) => ({ email: `person${i}@mail${i % 7}.example`, name: `Person Nr${i} Ünïcödé` }))
}

async function postCampaign (url: string, recipients: unknown[]): Promise<string> {
  const res = await postJob(url, 'email', { from: `Shop <news@${DOMAIN}>`, subject: 'A tip for {{name}}', text: 'Hello {{name}}', recipients })
  assert.equal(res.status, 202, res.text)
  assert.equal(res.json.recipients, recipients.length)
  return String(res.json.id)
}

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
    const id = await postCampaign(receiver.url, people(1010))
    const job = await waitForState(receiver.url, id, 'done', JOB_TIMEOUT_MS)
    assert.equal(job.state, 'done')
    assert.equal(job.sent, 1010)

    const mailbox = async (query = ''): Promise<{ received: number, messages: Array<{ messageId: string, receivedAt: string, to: string[], subject: string }> }> => {
      const res = await request(`${receiver.url}/mailbox${query}`)
      assert.equal(res.status, 200, res.text)
      return res.json as Awaited<ReturnType<typeof mailbox>>
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

  test('a kept message reads back whole: many recipients (past the ring\'s envelope slot), the head cut at 4 KiB, limit', async (t) => {
    const sink = await startSink({ port: 0, keep: 3 })
    t.after(() => sink.close())
    const transport = nodemailer.createTransport({ url: sink.url })
    t.after(() => transport.close())
    const many = Array.from({ length: 40 }, (_, i) => `recipient-number-${i}@a-rather-long-domain.example`)
    await transport.sendMail({ from: 'a@x.org', to: many, subject: 'to many', text: 'x', messageId: '<many@x.org>' })
    await transport.sendMail({ from: 'ö@x.org', to: 'b@x.org', subject: 'long', text: 'y'.repeat(10_000), messageId: '<long@x.org>' })
    for (let i = 0; i < 3; i++) await transport.sendMail({ from: 'a@x.org', to: `c${i}@x.org`, subject: `n${i}`, text: 'z' })
    assert.equal(sink.received(), 5)
    assert.deepEqual(sink.messages().map((m) => m.subject), ['n2', 'n1', 'n0'], 'the last 3, newest first')
    assert.deepEqual(sink.messages(2).map((m) => m.subject), ['n2', 'n1'])

    const ring = await startSink({ port: 0, keep: 2 })
    t.after(() => ring.close())
    const to = nodemailer.createTransport({ url: ring.url })
    t.after(() => to.close())
    await to.sendMail({ from: 'a@x.org', to: many, subject: 'to many', text: 'x', messageId: '<many@x.org>' })
    await to.sendMail({ from: 'ö@x.org', to: 'b@x.org', subject: 'long', text: 'y'.repeat(10_000), messageId: '<long@x.org>' })
    const [long, toMany] = ring.messages()
    assert.deepEqual(toMany?.to, many)
    assert.equal(toMany?.messageId, '<many@x.org>')
    assert.equal(long?.from, 'ö@x.org')
    assert.equal(long?.messageId, '<long@x.org>')
    assert.equal(Buffer.byteLength(long?.head ?? ''), 4 * 1024)
    assert.ok((long?.size ?? 0) > 10_000)
  })

  test('GET /mailbox is not served when mail goes to a real SMTP server', async (t) => {
    const smtp = await startSmtpServer()
    t.after(() => smtp.close())
    const email = await startEmailService({ smtpUrl: smtp.url, log: createLogger('silent') })
    t.after(() => email.close())
    assert.equal(email.sink, undefined)
    const receiver = await createReceiver({ port: 0, dataDir: tempDir(t), logLevel: 'silent', handlers: { email: email.handler }, routes: email.routes })
    t.after(() => receiver.close())
    assert.equal((await request(`${receiver.url}/mailbox`)).status, 404)
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
