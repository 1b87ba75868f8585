// POST /bounces (issue 14): a real receiver on port 0 takes one realistic sample of each format —
// Amazon SES through SNS (permanent, transient, complaint, and the subscription confirmation),
// Postmark (hard, soft, spam complaint) and an RFC 3464 DSN laid out like Postfix's bounce(8)
// with one failed 5.1.1 and one delayed 4.4.1 recipient — then GET /suppressions holds exactly
// the hard bounces and complaints, and a later job skips them. The DSN parser is checked against
// mailparser (keepDeliveryStatus) as an independent reader. Bad inputs and access at the end.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { test, type TestContext } from 'node:test'
import Database from 'better-sqlite3'
import { simpleParser } from 'mailparser'
import { pino } from 'pino'
import { createMailer, emailHandler, generateSecret, sign } from 'rawtrigger'
import { EMAIL_ACCESS } from '../src/email/plugin.ts'
import { accessTable } from '../src/server/access.ts'
import { deliveryStatusOf, parseDeliveryStatus, type DsnRecipient } from '../src/smtp/bounce-dsn.ts'
import { parseBounce } from '../src/smtp/bounce-parse.ts'
import { postJob, request, startReceiver, waitFor, type JsonResponse, type TestReceiver } from './helpers/receiver.ts'
import { startSmtpServer } from './helpers/smtp-server.ts'

const FIXTURES = new URL('./fixtures/bounces/', import.meta.url)
const fixture = (name: string): Buffer => readFileSync(new URL(name, FIXTURES))
const SNS_TYPE = 'text/plain; charset=UTF-8' // what SNS sends with its JSON
const JSON_TYPE = 'application/json'
const DSN_TYPE = 'message/rfc822'

/** The DSN as an MTA puts it on the wire: CRLF line ends. */
const dsnCrlf = (): Buffer => Buffer.from(fixture('dsn-postfix.eml').toString('utf8').replace(/\n/g, '\r\n'))

function postBounce (base: string, body: Buffer | string, contentType: string | undefined, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return request(`${base}/bounces`, { method: 'POST', headers: { ...(contentType === undefined ? {} : { 'content-type': contentType }), ...headers }, body })
}

async function suppressions (base: string): Promise<Array<{ email: string, reason: string }>> {
  const res = await request(`${base}/suppressions?limit=1000`)
  assert.equal(res.status, 200, res.text)
  return res.json.suppressions
}

/** What mailparser reads of a DSN: the delivery-status part, and each recipient block's fields. */
async function mailparserRecipients (raw: Buffer): Promise<{ text: string, recipients: DsnRecipient[] }> {
  const mail = await simpleParser(raw, { keepDeliveryStatus: true })
  const part = mail.attachments.find((a) => a.contentType === 'message/delivery-status')
  assert.ok(part !== undefined, 'mailparser finds the message/delivery-status part')
  const text = part.content.toString('utf8')
  const recipients: DsnRecipient[] = []
  for (const block of text.split(/\r?\n\r?\n/)) {
    const fields = (await simpleParser(`${block}\r\n\r\n`)).headers
    const final = fields.get('final-recipient')
    if (typeof final !== 'string') continue
    const text = (name: string): string | undefined => {
      const v = fields.get(name)
      return typeof v === 'string' ? v : undefined
    }
    recipients.push({
      recipient: final.slice(final.indexOf(';') + 1).trim(),
      action: String(text('action')).toLowerCase(),
      status: text('status'),
      diagnosticCode: text('diagnostic-code'),
      remoteMta: text('remote-mta'),
    })
  }
  return { text, recipients }
}

test('the DSN parser reads what mailparser reads, whatever the line ends and however the DSN is posted', async () => {
  for (const raw of [dsnCrlf(), fixture('dsn-postfix.eml')]) {
    const reference = await mailparserRecipients(raw)
    assert.equal(reference.recipients.length, 2)
    const ours = parseDeliveryStatus(deliveryStatusOf(DSN_TYPE, raw))
    assert.deepEqual(ours, reference.recipients)
    assert.equal(deliveryStatusOf(DSN_TYPE, raw).trim(), reference.text.replace(/\r\n/g, '\n').trim())
  }
  // multipart/report posted as it is, its Content-Type (with the boundary) moved to the HTTP header.
  const message = fixture('dsn-postfix.eml').toString('utf8')
  const headEnd = message.indexOf('\n\n')
  const contentType = /^Content-Type: (multipart\/report;.*\n\t.*)$/m.exec(message.slice(0, headEnd))?.[1]?.replace(/\n\t/, ' ')
  assert.ok(contentType !== undefined)
  const report = parseBounce(contentType, Buffer.from(message.slice(headEnd + 2)))
  assert.deepEqual(report.events.map((e) => [e.email, e.kind]), [['nobody@example.net', 'hard'], ['later@example.com', 'soft']])
  const part = (await mailparserRecipients(dsnCrlf())).text
  assert.deepEqual(parseBounce('message/delivery-status', Buffer.from(part)).events.map((e) => e.kind), ['hard', 'soft'])
  // A DSN forwarded as an attachment of another message.
  const forward = `From: postmaster@news.example.org\nSubject: Fwd: Undelivered Mail\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n\n--outer\nContent-Type: text/plain\n\nSee attached.\n--outer\nContent-Type: message/rfc822\n\n${message}\n--outer--\n`
  assert.deepEqual(parseBounce(DSN_TYPE, Buffer.from(forward)).events.map((e) => [e.email, e.kind]), [['nobody@example.net', 'hard'], ['later@example.com', 'soft']])
  // A delivery-status part in base64 (some MTAs encode every part) reads the same.
  const encoded = dsnCrlf().toString('utf8').replace(/Content-Type: message\/delivery-status\r\n\r\n([\s\S]*?)\r\n--3F2A/, (_, text: string) =>
    `Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from(text).toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n--3F2A`)
  assert.match(encoded, /Content-Transfer-Encoding: base64/)
  const fromEncoded = await mailparserRecipients(Buffer.from(encoded))
  assert.deepEqual(parseDeliveryStatus(deliveryStatusOf(DSN_TYPE, Buffer.from(encoded))), fromEncoded.recipients)
})

interface Setup { r: TestReceiver, logs: Array<Record<string, unknown>> }

async function start (t: TestContext, options: Parameters<typeof startReceiver>[1] = {}): Promise<Setup> {
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const r = await startReceiver(t, { logger: pino({ level: 'info' }, sink), ...options })
  return { r, logs }
}

test('every format: hard bounces and complaints are suppressed, soft ones counted; a later job skips them', async (t) => {
  const smtp = await startSmtpServer()
  t.after(() => smtp.close())
  const mailer = createMailer({ url: smtp.url })
  t.after(() => mailer.close())
  const { r, logs } = await start(t, { handlers: { email: emailHandler({ mailer, retryBaseMs: 50, maxAttempts: 2 }) } })

  const samples: Array<[file: string, type: string, expected: { source: string, suppressed: string[], soft: number, ignored: number }]> = [
    ['sns-subscription-confirmation.json', SNS_TYPE, { source: 'ses', suppressed: [], soft: 0, ignored: 1 }],
    ['ses-bounce-permanent.json', SNS_TYPE, { source: 'ses', suppressed: ['gone@example.net'], soft: 0, ignored: 0 }],
    ['ses-bounce-transient.json', SNS_TYPE, { source: 'ses', suppressed: [], soft: 1, ignored: 0 }],
    ['ses-complaint.json', JSON_TYPE, { source: 'ses', suppressed: ['Angry@Example.org'], soft: 0, ignored: 0 }],
    ['postmark-hard-bounce.json', JSON_TYPE, { source: 'postmark', suppressed: ['nobody@example.com'], soft: 0, ignored: 0 }],
    ['postmark-soft-bounce.json', JSON_TYPE, { source: 'postmark', suppressed: [], soft: 1, ignored: 0 }],
    ['postmark-spam-complaint.json', JSON_TYPE, { source: 'postmark', suppressed: ['annoyed@example.org'], soft: 0, ignored: 0 }],
    ['dsn-postfix.eml', DSN_TYPE, { source: 'dsn', suppressed: ['nobody@example.net'], soft: 1, ignored: 0 }],
  ]
  for (const [file, type, expected] of samples) {
    const body = file.endsWith('.eml') ? dsnCrlf() : fixture(file)
    const res = await postBounce(r.url, body, type)
    assert.equal(res.status, 200, `${file}: ${res.text}`)
    const { suppressed, ...counts } = res.json as { suppressed: Array<{ email: string, kind: string, reason: string, added: boolean }>, source: string, soft: number, ignored: number }
    assert.deepEqual({ ...counts, suppressed: suppressed.map((s) => s.email) }, expected, file)
    for (const s of suppressed) assert.equal(s.added, true, `${file}: ${s.email} is new`)
  }

  const listed = await suppressions(r.url)
  const byEmail = new Map(listed.map((s) => [s.email, s.reason]))
  assert.deepEqual([...byEmail.keys()].sort(), ['Angry@Example.org', 'annoyed@example.org', 'gone@example.net', 'nobody@example.com', 'nobody@example.net'])
  assert.equal(byEmail.get('gone@example.net'), 'bounce:ses Permanent/General 5.1.1 smtp; 550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown in virtual mailbox table')
  assert.equal(byEmail.get('Angry@Example.org'), 'complaint:ses abuse')
  assert.match(byEmail.get('nobody@example.com') ?? '', /^bounce:postmark HardBounce smtp;550 5\.1\.1 /)
  assert.match(byEmail.get('annoyed@example.org') ?? '', /^complaint:postmark SpamComplaint/)
  assert.equal(byEmail.get('nobody@example.net'), 'bounce:dsn failed 5.1.1 smtp; 550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in virtual mailbox table')

  // The confirmation is for the operator: its SubscribeURL is logged (and never fetched).
  const confirmation = JSON.parse(fixture('sns-subscription-confirmation.json').toString('utf8')) as { SubscribeURL: string }
  const line = logs.find((l) => l.subscribeUrl !== undefined)
  assert.equal(line?.subscribeUrl, confirmation.SubscribeURL)
  assert.equal(line?.level, 40, 'logged at warn: seen with the default log level')

  const metrics = (await request(`${r.url}/metrics`)).text
  for (const [source, kind, n] of [['ses', 'hard', 1], ['ses', 'soft', 1], ['ses', 'complaint', 1], ['ses', 'ignored', 1], ['postmark', 'hard', 1], ['postmark', 'soft', 1], ['postmark', 'complaint', 1], ['dsn', 'hard', 1], ['dsn', 'soft', 1]] as const) {
    assert.match(metrics, new RegExp(`^rawtrigger_bounces_total\\{source="${source}",kind="${kind}"\\} ${n}$`, 'm'), `${source} ${kind}`)
  }

  // A job to a suppressed address and a soft-bounced one: only the soft one is mailed.
  const job = await postJob(r.url, 'email', { from: 'News <hello@news.example.org>', subject: 'Again', text: 'Hi', recipients: ['NOBODY@example.net', 'later@example.com'] })
  assert.equal(job.status, 202, job.text)
  const view = await waitFor('the job to end', async () => {
    const v = (await request(`${r.url}/jobs/${job.json.id as string}`)).json
    return v.state === 'done' ? v : undefined
  })
  assert.deepEqual(smtp.delivered.map((m) => m.rcpt), [['later@example.com']])
  assert.match(view.errors[0].message, /^suppressed: bounce:dsn failed 5\.1\.1/)
})

test('a repeated report updates the reason and adds nothing; the same address twice in one DSN is suppressed once', async (t) => {
  const { r } = await start(t, { concurrency: 0 })
  assert.equal((await postBounce(r.url, fixture('postmark-hard-bounce.json'), JSON_TYPE)).json.suppressed[0].added, true)
  const again = await postBounce(r.url, fixture('postmark-hard-bounce.json'), JSON_TYPE)
  assert.equal(again.status, 200)
  assert.equal(again.json.suppressed[0].added, false)
  const twice = fixture('dsn-postfix.eml').toString('utf8').replace('Final-Recipient: rfc822; later@example.com', 'Final-Recipient: rfc822; NoBody@example.net').replace('Action: delayed\nStatus: 4.4.1', 'Action: failed\nStatus: 5.1.1')
  const res = await postBounce(r.url, twice, DSN_TYPE)
  assert.equal(res.status, 200, res.text)
  assert.deepEqual(res.json.suppressed.map((s: { email: string }) => s.email), ['nobody@example.net'])
  assert.equal((await suppressions(r.url)).length, 2)
})

test('bad inputs: 400 for a body of no format, 415 for a wrong Content-Type, 413 over the limit, 405 for GET; nothing is suppressed', async (t) => {
  const { r } = await start(t, { concurrency: 0, maxBodyBytes: 16 * 1024 })
  const cases: Array<[what: string, body: string | Buffer, type: string | undefined, status: number, code: string, message?: RegExp]> = [
    ['garbage JSON', '{"RecordType": "Bounce", ', JSON_TYPE, 400, 'RT_ERR_BAD_JSON'],
    ['an unknown JSON shape', '{"event": "bounce", "recipient": "a@example.org"}', JSON_TYPE, 400, 'RT_ERR_BAD_BOUNCE', /none of the bounce formats.*fields: event, recipient/],
    ['a JSON array', '[]', JSON_TYPE, 400, 'RT_ERR_BAD_BOUNCE'],
    ['a Postmark delivery record', '{"RecordType": "Delivery", "Email": "a@example.org"}', JSON_TYPE, 400, 'RT_ERR_BAD_BOUNCE', /RecordType must be Bounce or SpamComplaint/],
    ['an SNS notification that is not from SES', '{"Type": "Notification", "TopicArn": "arn:aws:sns:eu-west-1:1:t", "Message": "hello"}', SNS_TYPE, 400, 'RT_ERR_BAD_BOUNCE', /not an SES notification/],
    ['an SES bounce without a bounce type', JSON.stringify({ notificationType: 'Bounce', mail: {}, bounce: { bouncedRecipients: [] } }), JSON_TYPE, 400, 'RT_ERR_BAD_BOUNCE', /bounceType/],
    ['a message that is no DSN', 'From: a@example.org\r\nSubject: hi\r\n\r\nHello\r\n', DSN_TYPE, 400, 'RT_ERR_BAD_BOUNCE', /no message\/delivery-status part/],
    ['an ARF complaint', 'Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n--b--\r\n', DSN_TYPE, 400, 'RT_ERR_BAD_BOUNCE', /ARF/],
    ['a form', 'email=a%40example.org', 'application/x-www-form-urlencoded', 415, 'RT_ERR_UNSUPPORTED_MEDIA_TYPE', /message\/rfc822/],
    ['no Content-Type', fixture('postmark-hard-bounce.json'), undefined, 415, 'RT_ERR_UNSUPPORTED_MEDIA_TYPE'],
    ['text/plain that is not from SNS', fixture('postmark-hard-bounce.json'), 'text/plain', 415, 'RT_ERR_UNSUPPORTED_MEDIA_TYPE', /Amazon SNS messages only/],
    ['a body over the limit', Buffer.alloc(17 * 1024, 'x'), DSN_TYPE, 413, 'RT_ERR_BODY_TOO_LARGE'],
  ]
  for (const [what, body, type, status, code, message] of cases) {
    const res = await postBounce(r.url, body, type)
    assert.equal(res.status, status, `${what}: ${res.text}`)
    assert.equal(res.json.error.code, code, what)
    if (message !== undefined) assert.match(res.json.error.message, message, what)
  }
  const get = await request(`${r.url}/bounces`)
  assert.equal(get.status, 405)
  assert.deepEqual(await suppressions(r.url), [])
})

test('access as /jobs: signed with a secret (unsigned → 401), and a store failure answers 503 RT_ERR_STORE', async (t) => {
  assert.equal(accessTable(EMAIL_ACCESS)('/bounces'), 'signed')
  const secret = generateSecret()
  const { r } = await start(t, { concurrency: 0, secret })
  const body = fixture('ses-bounce-permanent.json')
  const unsigned = await postBounce(r.url, body, SNS_TYPE)
  assert.equal(unsigned.status, 401, unsigned.text)
  assert.equal(unsigned.json.error.code, 'RT_ERR_UNAUTHORIZED')
  const tampered = await postBounce(r.url, body.toString('utf8').replace('gone@', 'other@'), SNS_TYPE, { ...sign(secret, body) })
  assert.equal(tampered.status, 401)
  const signed = await postBounce(r.url, body, SNS_TYPE, { ...sign(secret, body), host: 'bounces.example.org' })
  assert.equal(signed.status, 200, signed.text)
  assert.deepEqual(signed.json.suppressed.map((s: { email: string }) => s.email), ['gone@example.net'])

  const other = new Database(join(r.dataDir, 'rawtrigger.db'))
  t.after(() => { if (other.open) other.close() })
  other.exec('BEGIN IMMEDIATE') // holds the write lock: the suppression waits its busy timeout, then fails
  const held = fixture('postmark-hard-bounce.json')
  const failed = await postBounce(r.url, held, JSON_TYPE, { ...sign(secret, held) })
  other.exec('ROLLBACK')
  assert.equal(failed.status, 503, failed.text)
  assert.equal(failed.json.error.code, 'RT_ERR_STORE')
})
