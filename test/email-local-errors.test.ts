// Failures that carry no SMTP reply (issue 16): nodemailer's own error code decides whether a
// recipient is retried. A message nodemailer cannot build fails on its first try, with the reason
// kept; a dropped connection is still retried. Real receiver, real SQLite, real smtp-server.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { createMailer, emailHandler, type Mailer } from 'rawtrigger'
import { classify, PERMANENT_WITHOUT_REPLY } from '../src/smtp/email-job.ts'
import { getJob, postJob, startReceiver, waitFor } from './helpers/receiver.ts'
import { startSmtpServer } from './helpers/smtp-server.ts'

const RETRY_BASE_MS = 50
const MAX_ATTEMPTS = 4
const JOB_TIMEOUT_MS = 20_000 // two messages to a local server and one retry: well under a second
const MISSING_FILE = '/nonexistent/rawtrigger-test/brochure.pdf'

/** nodemailer's table of its error codes; not exported by the package, so read from its file. */
async function nodemailerCodes (): Promise<string[]> {
  const main = createRequire(import.meta.url).resolve('nodemailer') // …/dist/cjs/nodemailer.js
  const errors = await import(pathToFileURL(join(dirname(main), 'errors.js')).href) as { ERROR_CODES: Record<string, string> }
  return Object.keys(errors.ERROR_CODES)
}

describe('classify without an SMTP reply', () => {
  test('every error code nodemailer defines is decided in writing, and nothing else but Node\'s ERR_ACCESS_DENIED', async () => {
    const codes = await nodemailerCodes()
    assert.ok(codes.length >= 20, `nodemailer lists ${codes.length} codes`)
    const undecided = codes.filter((c) => !Object.hasOwn(PERMANENT_WITHOUT_REPLY, c))
    assert.deepEqual(undecided, [], 'a nodemailer upgrade added codes: decide them in PERMANENT_WITHOUT_REPLY')
    assert.deepEqual(Object.keys(PERMANENT_WITHOUT_REPLY).filter((c) => !codes.includes(c)), ['ERR_ACCESS_DENIED'])
  })

  test('local refusals are permanent, connection trouble temporary, and a reply\'s code still wins', () => {
    const err = (code: string | undefined, message: string, extra: Record<string, unknown> = {}): Error =>
      Object.assign(new Error(message), code === undefined ? {} : { code }, extra)
    for (const code of ['EENVELOPE', 'EMESSAGE', 'ESTREAM', 'EAUTH', 'ENOAUTH', 'EREQUIRETLS', 'EMAXRECIPIENTS', 'ECONFIG']) {
      const r = classify(err(code, 'refused here'))
      assert.deepEqual([r.temporary, r.reply, r.code], [false, `${code}: refused here`, undefined], code)
    }
    for (const code of ['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'EPROTOCOL', 'EMAXLIMIT', 'EPROXY']) {
      assert.equal(classify(err(code, 'try again')).temporary, true, code)
    }
    assert.equal(classify(err(undefined, 'Timeout')).temporary, true, 'no code: temporary')
    assert.equal(classify(err('ESOMETHINGNEW', 'x')).temporary, true, 'an unknown code: temporary')
    assert.equal(classify(err('constructor', 'x')).temporary, true, 'not fooled by Object.prototype')
    // The server's reply decides when there is one: EAUTH 454 is "try later", EENVELOPE 550 is not.
    const later = classify(err('EAUTH', 'Invalid login', { responseCode: 454, response: '454 4.7.0 Try again later' }))
    assert.deepEqual([later.temporary, later.reply, later.code], [true, '454 4.7.0 Try again later', 454])
    assert.equal(classify(err('ECONNECTION', 'x', { responseCode: 421, response: '421 closing' })).temporary, true)
    assert.equal(classify(err('EENVELOPE', 'x', { responseCode: 550, response: '550 no' })).temporary, false)
    // The OS code nodemailer replaced stays readable (STYLE.md 3), unless the message names it.
    assert.equal(classify(err('ESTREAM', 'boom', { originalCode: 'EIO' })).reply, 'ESTREAM: boom (EIO)')
    assert.equal(classify(err('ESOCKET', 'read ECONNRESET', { originalCode: 'ECONNRESET' })).reply, 'ESOCKET: read ECONNRESET')
  })
})

describe('through a real send', () => {
  test('a message nodemailer cannot build fails on the first try with its reason; a dropped connection is still retried', async (t) => {
    // The first message whose data arrives is dropped before its 250: a temporary failure.
    const smtp = await startSmtpServer({ faults: { dropAtMessage: [1] } })
    t.after(() => smtp.close())
    // One connection, so the two messages go in order: the broken one, then the one that is dropped.
    const real = createMailer({ url: smtp.url, maxConnections: 1 })
    t.after(() => real.close())
    // The job hands nodemailer a finished message (raw); for one recipient this mailer swaps it
    // for a file that cannot be read, and nodemailer itself then fails on it (ESTREAM, ENOENT).
    const mailer: Mailer = {
      maxConnections: real.maxConnections,
      send: (message) => real.send(JSON.stringify(message.envelope).includes('broken@')
        ? { ...message, raw: { path: MISSING_FILE } }
        : message),
      close: () => real.close(),
    }
    const receiver = await startReceiver(t, { handlers: { email: emailHandler({ mailer, retryBaseMs: RETRY_BASE_MS, maxAttempts: MAX_ATTEMPTS }) } })
    const sent = await postJob(receiver.url, 'email', { subject: 'Brochure', text: 'Attached.', recipients: ['broken@x.org', 'ok@x.org'] })
    assert.equal(sent.status, 202, sent.text)
    const job = await waitFor('the job to end', async () => {
      const view = await getJob(receiver.url, sent.json.id)
      return view.state === 'done' || view.state === 'failed' ? view : undefined
    }, JOB_TIMEOUT_MS)

    assert.equal(job.state, 'done', JSON.stringify(job))
    assert.deepEqual([job.sent, job.failed, job.pending], [1, 1, 0])
    const [broken] = job.errors
    assert.equal(job.errors.length, 1, JSON.stringify(job.errors))
    assert.equal(broken?.index, 0)
    assert.equal(broken?.attempts, 1, 'not retried: the same message would fail the same way')
    assert.match(broken?.message ?? '', /^ESTREAM: ENOENT: no such file or directory/)
    assert.ok(broken?.message.includes(MISSING_FILE), broken?.message)
    assert.equal(smtp.rcptTries('broken@x.org'), 1, 'one envelope, and no data: the message never got built')
    assert.equal(smtp.dataReceived, 2, 'the dropped message and its retry')
    // The dropped one: tried again, delivered once.
    assert.equal(smtp.drops, 1)
    assert.equal(smtp.rcptTries('ok@x.org'), 2)
    assert.deepEqual([...smtp.countByAddress()], [['ok@x.org', 1]])
  })
})
