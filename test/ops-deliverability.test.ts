// Deliverability (issue 8): DKIM signatures checked by an independent verifier (mailauth's
// dkimVerify, its DNS answered by a resolver holding the test's public key), RFC 8058 one-click
// List-Unsubscribe headers, a plain-text part derived from html, and the suppression list on both
// stores: by hand over HTTP, after a hard bounce, skipped by later jobs and reported as
// "suppressed: …". Messages are caught raw by a real SMTP server in this process; `serve` with
// --dkim-* and --unsubscribe-url runs as a child process.
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { dkimVerify, type DKIMResult } from 'mailauth'
import { createMailer, emailHandler, type EmailJobOptions, type MailerOptions, type Receiver } from 'rawtrigger'
import type { JobView } from '../src/queue/types.ts'
import { request, type JsonResponse } from './helpers/receiver.ts'
import { startServe } from './helpers/serve-process.ts'
import { startSmtpServer, textParts, type DeliveredMessage, type FaultPlan, type TestSmtpServer } from './helpers/smtp-server.ts'
import { startOnStore, type StoreKind } from './helpers/store-receiver.ts'
import { sleep, waitFor } from './helpers/wait.ts'

const WAIT_MS = 20_000
const DOMAIN = 'news.example.org'
const SELECTOR = 'rt2026'
const UNSUBSCRIBE = 'https://example.org/unsubscribe?e={{email}}&job={{job}}'

// ---------------------------------------------------------------------------------------------
// The messages, byte for byte, from the shared test SMTP server

/** The test SMTP server, closed when the test ends. */
async function startCatcher (t: TestContext): Promise<TestSmtpServer> {
  const smtp = await startSmtpServer()
  t.after(() => smtp.close())
  return smtp
}

/** The top-level header `name` (case-insensitive), unfolded; undefined when absent. */
function header (raw: Buffer, name: string): string | undefined {
  const head = raw.toString('utf8').split(/\r?\n\r?\n/, 1)[0] as string
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ')
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0 && line.slice(0, colon).toLowerCase() === name.toLowerCase()) return line.slice(colon + 1).trim()
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// DKIM keys and the verifier's DNS

interface Keys { privateKey: string, dnsRecord: string }

function makeKeys (): Keys {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return {
    privateKey: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    dnsRecord: `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`,
  }
}

/** A DNS that knows one TXT record: `${selector}._domainkey.${domain}`. */
function resolverFor (record: string, selector = SELECTOR, domain = DOMAIN) {
  const asked: string[] = []
  const resolver = async (name: string, rrtype: string): Promise<string[][]> => {
    asked.push(`${rrtype} ${name}`)
    if (rrtype === 'TXT' && name.toLowerCase() === `${selector}._domainkey.${domain}`) return [[record]]
    throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' })
  }
  return { resolver, asked }
}

async function verify (raw: Buffer | string, record: string): Promise<DKIMResult[]> {
  const { resolver } = resolverFor(record)
  return (await dkimVerify(raw, { resolver })).results
}

// ---------------------------------------------------------------------------------------------
// Receivers

type Kind = StoreKind

/** A receiver on `kind` with the `email` job type; undefined when Redis is wanted and absent. */
async function startReceiver (
  t: TestContext, kind: Kind, smtpUrl: string, mail: Omit<MailerOptions, 'url'> = {}, job: Omit<EmailJobOptions, 'mailer'> = {},
): Promise<Receiver | undefined> {
  const mailer = createMailer({ ...mail, url: smtpUrl })
  return startOnStore(t, kind, {
    handlers: { email: emailHandler({ retryBaseMs: 50, maxAttempts: 3, ...job, mailer }) },
    closeAfter: [() => mailer.close()],
  })
}

function postJson (url: string, path: string, body: unknown): Promise<JsonResponse> {
  return request(`${url}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } })
}

async function sendJob (url: string, body: Record<string, unknown>): Promise<string> {
  const res = await postJson(url, '/jobs/email', { from: `News <hello@${DOMAIN}>`, subject: 'Hello {{name}}', ...body })
  assert.equal(res.status, 202, res.text)
  return res.json.id as string
}

async function untilDone (url: string, id: string): Promise<JobView> {
  let last: JobView | undefined
  return waitFor(`job ${id} done`, async () => {
    last = (await request(`${url}/jobs/${id}`)).json as JobView
    return last.state === 'done' || last.state === 'failed' ? last : undefined
  }, WAIT_MS).catch((err: Error) => { throw new Error(`${err.message}; last view: ${JSON.stringify(last)}`) })
}

// ---------------------------------------------------------------------------------------------

describe('DKIM, List-Unsubscribe and the text part (createMailer + emailHandler)', () => {
  test('every message carries a DKIM signature that mailauth verifies against the public key; tampering breaks it', async (t) => {
    const keys = makeKeys()
    const catcher = await startCatcher(t)
    const receiver = await startReceiver(t, 'sqlite', catcher.url,
      { dkim: { domainName: DOMAIN, keySelector: SELECTOR, privateKey: keys.privateKey } }, { unsubscribeUrl: UNSUBSCRIBE })
    assert.ok(receiver !== undefined)
    const id = await sendJob(receiver.url, {
      html: '<h1>Spring news</h1><p>Hello <b>{{name}}</b>, the <a href="https://example.org/shop">shop</a> is open.</p>',
      recipients: [{ email: 'ann+tag@example.com', name: 'Ann' }, 'Bob@Example.com', 'Zoë <zoe@example.com>'],
    })
    const view = await untilDone(receiver.url, id)
    assert.deepEqual([view.state, view.sent], ['done', 3])
    assert.equal(catcher.delivered.length, 3)

    for (const m of catcher.delivered) {
      const results = await verify(m.raw, keys.dnsRecord)
      assert.equal(results.length, 1, 'one signature')
      const r = results[0] as DKIMResult
      assert.equal(r.status.result, 'pass', `${m.rcpt.join()}: ${r.info} ${JSON.stringify(r.status)}`)
      assert.equal(r.signingDomain, DOMAIN)
      assert.equal(r.selector, SELECTOR)
      assert.equal(r.status.aligned, DOMAIN, 'd= aligns with the From domain')
      // RFC 8058 §4: one-click unsubscribe counts only when the signature covers both headers.
      const signed = (/\bh=([^;]+)/.exec(header(m.raw, 'DKIM-Signature') ?? '')?.[1] ?? '').toLowerCase().split(':').map((s) => s.trim())
      for (const h of ['from', 'subject', 'list-unsubscribe', 'list-unsubscribe-post']) assert.ok(signed.includes(h), `h= covers ${h}: ${signed.join(':')}`)
    }

    const raw = (catcher.delivered[0] as DeliveredMessage).raw.toString('utf8')
    const tamperings: Array<[string, string]> = [
      ['the body', raw.replace(/Spring news/g, 'Autumn news').replace(/U3ByaW5nIG5ld3M/g, 'QXV0dW1uIG5ld3M')],
      ['the Subject', raw.replace(/^Subject: .*$/m, 'Subject: Something else')],
      ['the unsubscribe link', raw.replace('<https://example.org/unsubscribe?', '<https://evil.example/unsubscribe?')],
    ]
    for (const [what, changed] of tamperings) {
      assert.notEqual(changed, raw, `the test changed ${what}`)
      const [r] = await verify(changed, keys.dnsRecord)
      assert.notEqual(r?.status.result, 'pass', `a message with ${what} changed must not verify`)
    }
    // Another key published under the selector: the signature does not verify.
    const [other] = await verify(raw, makeKeys().dnsRecord)
    assert.notEqual(other?.status.result, 'pass', 'verified against a key that did not sign')
    const { resolver, asked } = resolverFor(keys.dnsRecord)
    await dkimVerify(raw, { resolver })
    assert.ok(asked.includes(`TXT ${SELECTOR}._domainkey.${DOMAIN}`), `the verifier asked DNS: ${asked.join(', ')}`)
  })

  test('List-Unsubscribe (email URL-encoded, job filled) and List-Unsubscribe-Post: List-Unsubscribe=One-Click; text part from html', async (t) => {
    const catcher = await startCatcher(t)
    const receiver = await startReceiver(t, 'sqlite', catcher.url, {}, { unsubscribeUrl: UNSUBSCRIBE })
    assert.ok(receiver !== undefined)
    const recipients = ['ann+tag@example.com', 'Bob.Smith@Example.com', "o'neil@example.com"]
    const id = await sendJob(receiver.url, {
      html: '<h1>Spring news</h1><p>Hello <b>{{name}}</b>, the <a href="https://example.org/shop">shop</a> is open.</p>',
      recipients: recipients.map((email, i) => ({ email, name: `Reader ${i}` })),
    })
    await untilDone(receiver.url, id)
    assert.equal(catcher.delivered.length, recipients.length)
    for (const m of catcher.delivered) {
      // The envelope may spell the domain otherwise (nodemailer lower-cases it): the link has the address as given.
      const to = recipients.find((r) => r.toLowerCase() === m.rcpt[0]?.toLowerCase()) as string
      assert.ok(to !== undefined, `a message to ${String(m.rcpt[0])}`)
      const link = `https://example.org/unsubscribe?e=${encodeURIComponent(to)}&job=${encodeURIComponent(id)}`
      assert.equal(header(m.raw, 'List-Unsubscribe'), `<${link}>`, to)
      assert.equal(header(m.raw, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click', to)
      const parts = textParts(m.raw.toString('utf8'))
      assert.match(parts.html, /<b>Reader \d<\/b>/)
      assert.ok(parts.text !== '', `${to}: a text/plain part is present`)
      assert.match(parts.text, /SPRING NEWS|Spring news/i)
      assert.match(parts.text, /Hello Reader \d, the shop \[https:\/\/example\.org\/shop\] is open\./)
      assert.ok(!/<[a-z]/i.test(parts.text), `no markup in the text part: ${parts.text}`)
      assert.match(header(m.raw, 'Content-Type') ?? '', /^multipart\/alternative/)
    }
  })

  test('without an unsubscribe URL no List-Unsubscribe headers; text given → that text is the text part', async (t) => {
    const catcher = await startCatcher(t)
    const receiver = await startReceiver(t, 'sqlite', catcher.url)
    assert.ok(receiver !== undefined)
    const id = await sendJob(receiver.url, { text: 'Plain {{name}}', html: '<p>Rich {{name}}</p>', recipients: [{ email: 'ann@example.com', name: 'Ann' }] })
    await untilDone(receiver.url, id)
    const m = catcher.delivered[0] as DeliveredMessage
    assert.equal(header(m.raw, 'List-Unsubscribe'), undefined)
    assert.equal(header(m.raw, 'List-Unsubscribe-Post'), undefined)
    assert.equal(header(m.raw, 'DKIM-Signature'), undefined, 'not signed without dkim')
    assert.equal(textParts(m.raw.toString('utf8')).text, 'Plain Ann')
  })
})

describe('serve --dkim-domain/--dkim-selector/--dkim-key-file and --unsubscribe-url (child process)', () => {
  test('a job through serve is signed (mailauth: pass) and carries the one-click headers', async (t) => {
    const keys = makeKeys()
    const dir = mkdtempSync(join(tmpdir(), 'rttest-ops-dkim-'))
    const keyFile = join(dir, 'dkim.pem')
    writeFileSync(keyFile, keys.privateKey)
    const catcher = await startCatcher(t)
    const serve = await startServe(t, join(dir, 'data'), [
      '--smtp', catcher.url, '--log-level', 'warn',
      '--dkim-domain', DOMAIN, '--dkim-selector', SELECTOR, '--dkim-key-file', keyFile, '--unsubscribe-url', UNSUBSCRIBE,
    ]).catch((err: unknown) => {
      rmSync(dir, { recursive: true, force: true })
      throw err
    })
    t.after(() => rmSync(dir, { recursive: true, force: true })) // after the child is gone (its hook came first)
    const id = await sendJob(serve.url, { html: '<p>Hi {{name}}</p>', recipients: [{ email: 'ann@example.com', name: 'Ann' }] })
    await untilDone(serve.url, id)
    const m = catcher.delivered[0] as DeliveredMessage
    const [r] = await verify(m.raw, keys.dnsRecord)
    assert.equal(r?.status.result, 'pass', r?.info)
    assert.equal(header(m.raw, 'List-Unsubscribe'), `<https://example.org/unsubscribe?e=ann%40example.com&job=${id}>`)
    assert.equal(header(m.raw, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click')
    assert.match(textParts(m.raw.toString('utf8')).text, /Hi Ann/)
    serve.kill('SIGTERM')
    assert.deepEqual(await serve.exited, { code: 0, signal: null })
  })
})

// ---------------------------------------------------------------------------------------------
// The suppression list, on both stores

async function suppressions (url: string, query = ''): Promise<Array<{ email: string, reason: string, createdAt: string }>> {
  const res = await request(`${url}/suppressions${query}`)
  assert.equal(res.status, 200, res.text)
  return res.json.suppressions
}

for (const kind of ['sqlite', 'redis'] as const) {
  describe(`suppression list on ${kind}`, () => {
    async function harness (t: TestContext, faults: FaultPlan = {}): Promise<{ smtp: TestSmtpServer, url: string } | undefined> {
      const smtp = await startSmtpServer({ faults })
      const receiver = await startReceiver(t, kind, smtp.url)
      t.after(() => smtp.close()) // after the receiver's own clean-up: hooks run in the order they were added
      return receiver === undefined ? undefined : { smtp, url: receiver.url }
    }

    test('added over HTTP (any case): not sent on the next job, reported "suppressed: …"; DELETE (any case) lets it through again', async (t) => {
      const h = await harness(t)
      if (h === undefined) return
      const added = await postJson(h.url, '/suppressions', { email: 'Carol@Example.org', reason: 'unsubscribed by phone' })
      assert.equal(added.status, 201, added.text)
      assert.deepEqual(added.json, { email: 'Carol@Example.org', reason: 'unsubscribed by phone', added: true })
      const again = await postJson(h.url, '/suppressions', { email: 'carol@example.ORG', reason: 'unsubscribed by phone' })
      assert.equal(again.status, 200, 'already there (case-insensitive): 200, not a second entry')
      assert.equal(again.json.added, false)
      const listed = await suppressions(h.url)
      assert.equal(listed.length, 1)
      assert.equal(listed[0]?.email.toLowerCase(), 'carol@example.org')

      const id = await sendJob(h.url, { text: 'Hi', recipients: ['dave@example.org', 'CAROL@example.org', 'erin@example.org'] })
      const view = await untilDone(h.url, id)
      assert.deepEqual([view.state, view.sent, view.failed], ['done', 2, 1], JSON.stringify(view))
      assert.deepEqual(view.errors.map((e) => [e.index, e.state]), [[1, 'failed']])
      assert.equal(view.errors[0]?.message, 'suppressed: unsubscribed by phone')
      assert.equal(h.smtp.rcptTries('carol@example.org'), 0, 'never offered to the server')
      assert.deepEqual([...h.smtp.countByAddress().keys()].sort(), ['dave@example.org', 'erin@example.org'])

      const removed = await request(`${h.url}/suppressions/${encodeURIComponent('cArOl@EXAMPLE.org')}`, { method: 'DELETE' })
      assert.equal(removed.status, 204, removed.text)
      assert.deepEqual(await suppressions(h.url), [])
      const gone = await request(`${h.url}/suppressions/${encodeURIComponent('carol@example.org')}`, { method: 'DELETE' })
      assert.equal(gone.status, 404)
      assert.equal(gone.json.error.code, 'RT_ERR_NOT_FOUND')

      const next = await sendJob(h.url, { text: 'Hi again', recipients: ['Carol@Example.org'] })
      const nextView = await untilDone(h.url, next)
      assert.deepEqual([nextView.sent, nextView.failed], [1, 0])
      assert.equal(h.smtp.countByAddress().get('carol@example.org'), 1)
    })

    test('a 550 hard bounce suppresses the address: the next job skips it; a retry too, until it is removed', async (t) => {
      const h = await harness(t, {
        rcpt: {
          'gone@example.org': { code: 550, message: '5.1.1 <gone@example.org>: no such user', times: 1 },
          'full@example.org': { code: 552, message: '5.2.2 mailbox full', times: Infinity },
          'grey@example.org': { code: 451, message: '4.7.1 try later', times: Infinity },
        },
      })
      if (h === undefined) return
      const first = await sendJob(h.url, { text: 'Hi', recipients: ['gone@example.org', 'full@example.org', 'grey@example.org', 'ok@example.org'] })
      const v1 = await untilDone(h.url, first)
      assert.deepEqual([v1.sent, v1.failed], [1, 3], JSON.stringify(v1))
      const list = await suppressions(h.url)
      assert.deepEqual(list.map((s) => s.email), ['gone@example.org'], 'only the hard bounce: not 552 (mailbox full) nor 451 (temporary)')
      assert.match(list[0]?.reason ?? '', /^hard bounce: 550 5\.1\.1/)

      const second = await sendJob(h.url, { text: 'Hi again', recipients: ['ok@example.org', 'Gone@Example.org'] })
      const v2 = await untilDone(h.url, second)
      assert.deepEqual([v2.sent, v2.failed], [1, 1])
      assert.match(v2.errors[0]?.message ?? '', /^suppressed: hard bounce: 550 5\.1\.1/)
      assert.equal(h.smtp.rcptTries('gone@example.org'), 1, 'not offered again after the bounce')

      // The server would take it now (the 550 was for the first try only), but the list wins ...
      const retried = await request(`${h.url}/jobs/${second}/retry`, { method: 'POST' })
      assert.equal(retried.status, 200, retried.text)
      const v3 = await untilDone(h.url, second)
      assert.deepEqual([v3.sent, v3.failed], [1, 1])
      assert.match(v3.errors[0]?.message ?? '', /^suppressed: /)
      assert.equal(h.smtp.rcptTries('gone@example.org'), 1)
      // ... until the address is taken off it: then the retry delivers it, once.
      assert.equal((await request(`${h.url}/suppressions/gone%40example.org`, { method: 'DELETE' })).status, 204)
      assert.equal((await request(`${h.url}/jobs/${second}/retry`, { method: 'POST' })).status, 200)
      const v4 = await untilDone(h.url, second)
      assert.deepEqual([v4.sent, v4.failed], [2, 0], JSON.stringify(v4))
      assert.equal(h.smtp.countByAddress().get('gone@example.org'), 1)
      assert.equal(h.smtp.countByAddress().get('ok@example.org'), 2, 'one per job, none from the retries')
    })

    test('GET /suppressions pages alphabetically (?limit, ?after); bad input → 400', async (t) => {
      const h = await harness(t)
      if (h === undefined) return
      for (const email of ['zed@example.org', 'Amy@example.org', 'bob@example.org', 'Carl@example.org']) {
        assert.equal((await postJson(h.url, '/suppressions', { email })).status, 201)
      }
      const all = await suppressions(h.url)
      assert.deepEqual(all.map((s) => s.email.toLowerCase()), ['amy@example.org', 'bob@example.org', 'carl@example.org', 'zed@example.org'])
      for (const s of all) {
        assert.equal(s.reason, 'added by hand')
        assert.ok(!Number.isNaN(Date.parse(s.createdAt)), s.createdAt)
      }
      const page1 = await suppressions(h.url, '?limit=2')
      assert.deepEqual(page1.map((s) => s.email.toLowerCase()), ['amy@example.org', 'bob@example.org'])
      const page2 = await suppressions(h.url, `?limit=2&after=${encodeURIComponent(page1[1]?.email ?? '')}`)
      assert.deepEqual(page2.map((s) => s.email.toLowerCase()), ['carl@example.org', 'zed@example.org'])
      assert.deepEqual(await suppressions(h.url, '?after=zed%40example.org'), [])

      const bad: Array<[string, string, string]> = [
        ['{"email":"not an address"}', 'RT_ERR_VALIDATION', 'email'],
        ['{"email":"a@example.org","reason":7}', 'RT_ERR_VALIDATION', 'reason'],
        ['{"email":', 'RT_ERR_BAD_JSON', ''],
        ['["a@example.org"]', 'RT_ERR_BAD_JSON', ''],
      ]
      for (const [body, code, field] of bad) {
        const res = await postJson(h.url, '/suppressions', body)
        assert.equal(res.status, 400, `${body}: ${res.text}`)
        assert.equal(res.json.error.code, code, body)
        if (field !== '') assert.equal(res.json.error.field, field)
      }
      assert.equal((await request(`${h.url}/suppressions?limit=0`)).status, 400)
      assert.equal((await request(`${h.url}/suppressions`, { method: 'PUT', body: '{}' })).status, 405)
      assert.equal((await suppressions(h.url)).length, 4, 'nothing added by the refused requests')
    })

    test('suppressing an address again (other case, new reason) keeps one entry, its first spelling and date, with the new reason', async (t) => {
      const h = await harness(t)
      if (h === undefined) return
      assert.equal((await postJson(h.url, '/suppressions', { email: 'Fay@Example.org', reason: 'first' })).status, 201)
      const [before] = await suppressions(h.url)
      await sleep(20)
      assert.equal((await postJson(h.url, '/suppressions', { email: 'fay@example.org', reason: 'second' })).status, 200)
      const after = await suppressions(h.url)
      assert.equal(after.length, 1)
      assert.equal(after[0]?.reason, 'second', 'the reason is updated')
      await t.test('the spelling first given stays (as on SQLite)', () => {
        assert.equal(after[0]?.email, 'Fay@Example.org')
      })
      await t.test('the date it was first suppressed stays (as on SQLite)', () => {
        assert.equal(after[0]?.createdAt, before?.createdAt)
      })
    })
  })
}
