// Intake of the `email` job type (issue 4, RELIABILITY 24): parseEmailJob on its own, then
// POST /jobs/email on a real receiver with a real SQLite store, and what one recipient's message
// looks like at a real SMTP server ({{name}}/{{email}} filled, HTML-escaped in the html part).
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import {
  createMailer, createReceiver, emailHandler, MAX_RECIPIENTS, parseEmailJob, startSink, ValidationError, type Receiver,
} from 'rawtrigger'
import { fill, isValidEmail, normaliseRecipients } from '../src/smtp/addresses.ts'
import { startSmtpServer } from './helpers/smtp-server.ts'

const JOB_DONE_TIMEOUT_MS = 20_000 // a handful of messages to a local server: seconds at most
const POLL_MS = 20

function validationError (fn: () => unknown): ValidationError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${String(err)}`)
    assert.equal(err.code, 'RT_ERR_VALIDATION')
    return err
  }
  assert.fail('expected a ValidationError')
}

const base = { subject: 'Hello {{name}}', text: 'Dear {{name}} <{{email}}>' }

describe('parseEmailJob', () => {
  test('subject is required and must not be blank or span lines', () => {
    assert.equal(validationError(() => parseEmailJob({ text: 'x', recipients: ['a@x.org'] })).field, 'subject')
    assert.equal(validationError(() => parseEmailJob({ subject: '  ', text: 'x', recipients: ['a@x.org'] })).field, 'subject')
    assert.equal(validationError(() => parseEmailJob({ subject: 42, text: 'x', recipients: ['a@x.org'] })).field, 'subject')
    assert.equal(validationError(() => parseEmailJob({ subject: 'a\r\nBcc: evil@x.org', text: 'x', recipients: ['a@x.org'] })).field, 'subject')
  })

  test('text or html is required; either one alone is enough', () => {
    assert.equal(validationError(() => parseEmailJob({ subject: 's', recipients: ['a@x.org'] })).field, 'text')
    assert.equal(validationError(() => parseEmailJob({ subject: 's', text: '', html: '', recipients: ['a@x.org'] })).field, 'text')
    assert.equal(parseEmailJob({ subject: 's', text: 't', recipients: ['a@x.org'] }).payload.text, 't')
    const htmlOnly = parseEmailJob({ subject: 's', html: '<p>h</p>', recipients: ['a@x.org'] }).payload
    assert.equal(htmlOnly.html, '<p>h</p>')
    assert.equal(htmlOnly.text, undefined)
  })

  test('the body must be an object and recipients an array', () => {
    assert.equal(validationError(() => parseEmailJob([])).field, 'body')
    assert.equal(validationError(() => parseEmailJob(null)).field, 'body')
    assert.equal(validationError(() => parseEmailJob({ ...base, recipients: 'a@x.org' })).field, 'recipients')
    assert.equal(validationError(() => parseEmailJob({ ...base })).field, 'recipients')
  })

  test('1 to 100,000 recipients: 0 and 100,001 are refused', () => {
    assert.equal(MAX_RECIPIENTS, 100_000)
    assert.equal(validationError(() => parseEmailJob({ ...base, recipients: [] })).field, 'recipients')
    const one = parseEmailJob({ ...base, recipients: ['a@x.org'] })
    assert.equal(one.items, 1)
    const max = Array.from({ length: MAX_RECIPIENTS }, (_, i) => `u${i}@x.org`)
    assert.equal(parseEmailJob({ ...base, recipients: max }).items, MAX_RECIPIENTS)
    const over = validationError(() => parseEmailJob({ ...base, recipients: [...max, 'one-more@x.org'] }))
    assert.equal(over.field, 'recipients')
    assert.match(over.message, /100001/)
  })

  test('the three recipient forms: "a@x.org", "Name <a@x.org>", {email, name}', () => {
    const { payload, items, summary } = parseEmailJob({
      ...base,
      recipients: ['plain@x.org', 'Ann Example <ann@x.org>', '"Bo, Jr." <bo@x.org>', { email: 'cy@x.org', name: 'Cy' }, { email: 'di@x.org' }, '  pad@x.org  '],
    })
    assert.equal(items, 6)
    assert.deepEqual(payload.recipients, [
      { email: 'plain@x.org' },
      { email: 'ann@x.org', name: 'Ann Example' },
      { email: 'bo@x.org', name: 'Bo, Jr.' },
      { email: 'cy@x.org', name: 'Cy' },
      { email: 'di@x.org' },
      { email: 'pad@x.org' },
    ])
    assert.deepEqual(summary, { recipients: 6, duplicates: 0 })
  })

  test('invalid addresses refuse the job, naming up to 20 of them and counting all', () => {
    const bad = Array.from({ length: 25 }, (_, i) => `not-an-address-${i}`)
    const err = validationError(() => parseEmailJob({ ...base, recipients: ['ok@x.org', ...bad] }))
    assert.equal(err.field, 'recipients')
    assert.deepEqual(err.details?.invalid, bad.slice(0, 20))
    assert.equal(err.details?.invalidCount, 25)
    assert.match(err.message, /not-an-address-0/)
    assert.doesNotMatch(err.message, /not-an-address-20/)
  })

  test('what counts as invalid', () => {
    const invalid: unknown[] = [
      '', 'a', 'a@', '@x.org', 'a@x', 'a@@x.org', 'a b@x.org', 'a@x..org', 'a@-x.org', 'a@x.123', '.a@x.org',
      'a@x.org, b@x.org', 'A <a@x.org>, B <b@x.org>', 'Name <>', 'Name <not-an-address>', 'a\r\n@x.org',
      42, null, true, ['a@x.org'], { email: 42 }, { email: 'a@x.org', name: 42 }, { name: 'no address' },
      `${'l'.repeat(65)}@x.org`,
    ]
    const list = normaliseRecipients(invalid)
    assert.equal(list.recipients.length, 0, `accepted: ${JSON.stringify(list.recipients)}`)
    assert.equal(list.invalid.length, invalid.length)
    for (const ok of ['a@x.org', 'first.last+tag@sub.x.org', "o'brien@x.co.uk", 'a_b-c@x-y.org']) assert.ok(isValidEmail(ok), ok)
  })

  test('duplicates are case-insensitive, the first one wins, and they are counted', () => {
    const { payload, items, summary } = parseEmailJob({
      ...base,
      recipients: [{ email: 'Ann@X.org', name: 'First' }, 'ann@x.org', 'ANN@x.ORG', 'Other Name <ann@x.org>', 'bo@x.org', 'Bo@x.org'],
    })
    assert.equal(items, 2)
    assert.deepEqual(payload.recipients, [{ email: 'Ann@X.org', name: 'First' }, { email: 'bo@x.org' }])
    assert.deepEqual(summary, { recipients: 2, duplicates: 4 })
  })

  test('the sender: a default, or the given one when it is an address', () => {
    assert.match(parseEmailJob({ ...base, recipients: ['a@x.org'] }).payload.from, /@/)
    assert.equal(parseEmailJob({ ...base, from: 'Shop <shop@x.org>', recipients: ['a@x.org'] }).payload.from, 'Shop <shop@x.org>')
    assert.equal(validationError(() => parseEmailJob({ ...base, from: 'nobody', recipients: ['a@x.org'] })).field, 'from')
  })

  test('fill: {{name}} and {{email}}, HTML-escaped only for html', () => {
    const r = { email: 'a@x.org', name: '<b>&"\'' }
    assert.equal(fill('Hi {{name}} ({{ email }})', r), 'Hi <b>&"\' (a@x.org)')
    assert.equal(fill('<p>Hi {{name}}</p>', r, true), '<p>Hi &lt;b&gt;&amp;&quot;&#39;</p>')
    assert.equal(fill('Hi {{name}}!', { email: 'a@x.org' }), 'Hi !')
    // A value is not a template: a name that looks like a placeholder stays as it is.
    assert.equal(fill('{{name}}', { email: 'a@x.org', name: '{{email}}' }), '{{email}}')
  })
})

interface Answer { status: number, body: Record<string, unknown> }

async function post (url: string, body: unknown, contentType = 'application/json'): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body: typeof body === 'string' ? body : JSON.stringify(body) })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

async function getJson (url: string): Promise<Answer> {
  const res = await fetch(url)
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

function tempDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rawtrigger-email-intake-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function startReceiver (t: TestContext, smtp: { url: string }, concurrency: number): Promise<Receiver> {
  const mailer = createMailer({ url: smtp.url })
  const receiver = await createReceiver({
    port: 0,
    dataDir: tempDir(t),
    concurrency,
    pollMs: 50,
    logLevel: 'silent',
    handlers: { email: emailHandler({ mailer, retryBaseMs: 50, maxAttempts: 4 }) },
  })
  t.after(async () => {
    await receiver.close()
    mailer.close()
  })
  return receiver
}

async function waitForJob (receiver: Receiver, id: string, state: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + JOB_DONE_TIMEOUT_MS
  for (;;) {
    const { body } = await getJson(`${receiver.url}/jobs/${id}`)
    if (body.state === state) return body
    if (Date.now() > deadline) assert.fail(`job ${id} not ${state} after ${JOB_DONE_TIMEOUT_MS} ms: ${JSON.stringify(body)}`)
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}

describe('POST /jobs/email', () => {
  test('400 names the field: subject, text, recipients; 415 not JSON; 400 bad JSON', async (t) => {
    const smtp = await startSmtpServer()
    t.after(() => smtp.close())
    const receiver = await startReceiver(t, smtp, 0)
    const url = `${receiver.url}/jobs/email`

    const noSubject = await post(url, { text: 'x', recipients: ['a@x.org'] })
    assert.equal(noSubject.status, 400)
    assert.deepEqual([(noSubject.body.error as Record<string, unknown>).code, (noSubject.body.error as Record<string, unknown>).field], ['RT_ERR_VALIDATION', 'subject'])
    const noBody = await post(url, { subject: 's', recipients: ['a@x.org'] })
    assert.equal(noBody.status, 400)
    assert.equal((noBody.body.error as Record<string, unknown>).field, 'text')
    const none = await post(url, { subject: 's', text: 't', recipients: [] })
    assert.equal(none.status, 400)
    assert.equal((none.body.error as Record<string, unknown>).field, 'recipients')
    assert.equal((await post(url, 'subject=s', 'application/x-www-form-urlencoded')).status, 415)
    const badJson = await post(url, '{"subject":', 'application/json')
    assert.equal(badJson.status, 400)
    assert.equal((badJson.body.error as Record<string, unknown>).code, 'RT_ERR_BAD_JSON')

    const stats = (await getJson(`${receiver.url}/stats`)).body
    assert.equal((stats.jobs as Record<string, number>).queued, 0, 'no job was stored')
  })

  test('invalid addresses → 400 naming up to 20 in error.invalid; nothing stored', async (t) => {
    const smtp = await startSmtpServer()
    t.after(() => smtp.close())
    const receiver = await startReceiver(t, smtp, 0)
    const bad = Array.from({ length: 30 }, (_, i) => `bad${i}@`)
    const { status, body } = await post(`${receiver.url}/jobs/email`, { ...base, recipients: ['good@x.org', ...bad, 'Fine <fine@x.org>'] })
    assert.equal(status, 400)
    const error = body.error as Record<string, unknown>
    assert.equal(error.code, 'RT_ERR_VALIDATION')
    assert.equal(error.field, 'recipients')
    assert.deepEqual(error.invalid, bad.slice(0, 20))
    assert.equal(error.invalidCount, 30)
    assert.match(String(error.message), /30 invalid/)
    const jobs = (await getJson(`${receiver.url}/stats`)).body.jobs as Record<string, number>
    for (const state of ['queued', 'running', 'done', 'failed']) assert.equal(jobs[state], 0, `${state} jobs`)
  })

  test('100,000 recipients → 202; 100,001 → 400 on recipients', async (t) => {
    const smtp = await startSmtpServer()
    t.after(() => smtp.close())
    const receiver = await startReceiver(t, smtp, 0) // store only: nothing is sent
    const max = Array.from({ length: MAX_RECIPIENTS }, (_, i) => ({ email: `user${i}@example.org`, name: `User ${i}` }))
    const ok = await post(`${receiver.url}/jobs/email`, { ...base, recipients: max })
    assert.equal(ok.status, 202, JSON.stringify(ok.body))
    assert.equal(ok.body.recipients, MAX_RECIPIENTS)
    const job = (await getJson(`${receiver.url}/jobs/${String(ok.body.id)}`)).body
    assert.equal(job.total, MAX_RECIPIENTS)
    assert.equal(job.state, 'queued')

    const over = await post(`${receiver.url}/jobs/email`, { ...base, recipients: [...max, 'one-more@example.org'] })
    assert.equal(over.status, 400)
    assert.equal((over.body.error as Record<string, unknown>).field, 'recipients')
    assert.equal(((await getJson(`${receiver.url}/stats`)).body.jobs as Record<string, number>).queued, 1)
  })

  test('duplicates (case-insensitive) are sent once and the 202 says how many were dropped', async (t) => {
    const smtp = await startSmtpServer()
    t.after(() => smtp.close())
    const receiver = await startReceiver(t, smtp, 1)
    const { status, body } = await post(`${receiver.url}/jobs/email`, {
      ...base,
      recipients: ['Ann <ann@x.org>', 'ANN@x.org', { email: 'ann@X.ORG', name: 'Other' }, 'bo@x.org', 'Bo@x.org', 'cy@x.org'],
    })
    assert.equal(status, 202, JSON.stringify(body))
    assert.equal(body.recipients, 3)
    assert.equal(body.duplicates, 3)
    const job = await waitForJob(receiver, String(body.id), 'done')
    assert.deepEqual([job.total, job.sent, job.failed, job.pending], [3, 3, 0, 0])
    assert.deepEqual(new Map([...smtp.countByAddress()]), new Map([['ann@x.org', 1], ['bo@x.org', 1], ['cy@x.org', 1]]))
    const ann = smtp.delivered.find((m) => m.rcpt[0] === 'ann@x.org')
    assert.equal(ann?.subject, 'Hello Ann', 'the first entry of a duplicate address wins')
  })

  test('{{name}}/{{email}} are filled per recipient; the name is HTML-escaped in html and raw in text', async (t) => {
    const smtp = await startSmtpServer()
    t.after(() => smtp.close())
    const receiver = await startReceiver(t, smtp, 1)
    const tricky = '<b>&"Zoë\''
    const { status, body } = await post(`${receiver.url}/jobs/email`, {
      from: 'Shop <shop@shop.example>',
      subject: 'For {{name}}',
      text: 'Hello {{name}}, this goes to {{email}}.',
      html: '<p>Hello {{ name }}, this goes to {{email}}.</p>',
      recipients: [{ email: 'zoe@x.org', name: tricky }, 'Plain Name <plain@x.org>', 'noname@x.org'],
    })
    assert.equal(status, 202, JSON.stringify(body))
    await waitForJob(receiver, String(body.id), 'done')
    assert.equal(smtp.delivered.length, 3)
    const by = (address: string) => {
      const m = smtp.delivered.find((d) => d.rcpt[0] === address)
      assert.ok(m !== undefined, `nothing delivered to ${address}`)
      return m
    }
    const zoe = by('zoe@x.org')
    assert.equal(zoe.text, `Hello ${tricky}, this goes to zoe@x.org.`)
    assert.equal(zoe.html, '<p>Hello &lt;b&gt;&amp;&quot;Zoë&#39;, this goes to zoe@x.org.</p>')
    assert.equal(zoe.subject, `For ${tricky}`)
    assert.equal(zoe.mailFrom, 'shop@shop.example')
    assert.match(zoe.to, /<zoe@x\.org>$/)
    assert.equal(by('plain@x.org').text, 'Hello Plain Name, this goes to plain@x.org.')
    assert.equal(by('noname@x.org').text, 'Hello , this goes to noname@x.org.')
    for (const m of smtp.delivered) assert.equal(m.rcpt.length, 1, 'one message per recipient')
  })

  test('a recipient without a name: "Hi {{name}}" is sent as "Subject: Hi", no trailing space (issue 16)', async (t) => {
    // The embedded sink keeps the raw head: the test server's parsed Subject would hide the space.
    const sink = await startSink({ port: 0 })
    const receiver = await startReceiver(t, sink, 1)
    t.after(() => sink.close()) // after the mailer closed: the sink waits for open connections
    const { status, body } = await post(`${receiver.url}/jobs/email`, {
      subject: 'Hi {{name}}',
      text: 'Hello',
      recipients: ['noname@x.org', 'Ada <ada@x.org>'],
    })
    assert.equal(status, 202, JSON.stringify(body))
    await waitForJob(receiver, String(body.id), 'done')
    const subjectLine = (address: string): string | undefined => {
      const m = sink.messages().find((c) => c.to.includes(address))
      return /^Subject:[^\r\n]*/m.exec(m?.head ?? '')?.[0]
    }
    assert.equal(subjectLine('noname@x.org'), 'Subject: Hi')
    assert.equal(subjectLine('ada@x.org'), 'Subject: Hi Ada')
  })

  test('a display name with CR/LF cannot inject a header or a recipient', async (t) => {
    const smtp = await startSmtpServer()
    t.after(() => smtp.close())
    const receiver = await startReceiver(t, smtp, 1)
    const { status, body } = await post(`${receiver.url}/jobs/email`, {
      subject: 'Hi {{name}}',
      text: 'Hello {{name}}',
      recipients: [{ email: 'victim@x.org', name: 'Eve\r\nBcc: spam@evil.example\r\nX-Injected: yes' }],
    })
    assert.equal(status, 202, JSON.stringify(body))
    await waitForJob(receiver, String(body.id), 'done')
    assert.equal(smtp.delivered.length, 1)
    const m = smtp.delivered[0]
    assert.deepEqual(m?.rcpt, ['victim@x.org'])
    assert.doesNotMatch(m?.subject ?? '', /[\r\n]/)
    assert.ok(!m?.headerNames.includes('x-injected'), `headers: ${m?.headerNames.join(', ')}`)
    assert.ok(!m?.headerNames.includes('bcc'))
    assert.equal(smtp.rcptTries('spam@evil.example'), 0)
  })
})
