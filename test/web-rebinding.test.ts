// DNS rebinding and cross-origin pages against `rawtrigger serve` without a secret, in a real
// browser: playwright-core driving Debian's chromium (as test/web.test.ts). Chromium maps
// evil.example to 127.0.0.1, so http://evil.example:PORT is what a rebinding attacker's page
// becomes: same origin as its own script, the receiver behind it. The Host rule of
// src/server/access.ts must refuse it; a page on another origin must be stopped by the Origin rule.
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import type { Page } from 'playwright-core'
import { launch, skipWithoutChromium } from './helpers/browser.ts'
import { getJob, getStats, postJob, request, tempDir, waitFor, type JsonResponse } from './helpers/receiver.ts'
import { startServe, type ServeProcess } from './helpers/serve-process.ts'

/** The rebinding itself: the attacker's name now resolves to this machine. */
const REBIND_ARGS = ['--host-resolver-rules=MAP evil.example 127.0.0.1']
/** Mail of a few recipients through the embedded sink arrives in milliseconds; this is a guard. */
const MAIL_MS = 10_000
/** A `record` job of items this slow is still running when the test ends: it can be cancelled. */
const SLOW_ITEM_MS = 60_000

const skip = skipWithoutChromium

function startServer (t: TestContext, args: string[]): Promise<ServeProcess> {
  return startServe(t, tempDir(t, 'rawtrigger-rebind-'), ['--sink-port', '0', '--log-level', 'warn', ...args])
}

/** One fetch() a page script makes: a path on the page's own origin, or a full URL. */
interface Call {
  method: string
  url: string
  body?: string
  contentType?: string
  mode?: 'cors' | 'no-cors'
}

/** Runs the calls one after another inside the page, as its own script would; `METHOD url → status code`. */
async function fetchInPage (page: Page, calls: Call[]): Promise<string[]> {
  return page.evaluate(async (list) => {
    const out: string[] = []
    for (const c of list) {
      const res = await fetch(c.url, {
        method: c.method,
        mode: c.mode ?? 'cors',
        ...(c.body === undefined ? {} : { body: c.body }),
        ...(c.contentType === undefined ? {} : { headers: { 'content-type': c.contentType } }),
      })
      let code = ''
      try {
        code = String((JSON.parse(await res.text()) as { error?: { code?: unknown } }).error?.code ?? '')
      } catch {}
      out.push(`${c.method} ${c.url} → ${res.status}${code === '' ? '' : ` ${code}`}`)
    }
    return out
  }, calls)
}

const json = (value: unknown): Pick<Call, 'body' | 'contentType'> => ({ body: JSON.stringify(value), contentType: 'application/json' })
const EMAIL = { subject: 'Rebound', text: 'sent by a page that is not yours', recipients: ['a@example.org'] }

interface Mailbox { received: number, messages: Array<{ to: string[] }> }
async function mailbox (base: string): Promise<Mailbox> {
  const res = await request(`${base}/mailbox?limit=1000`)
  assert.equal(res.status, 200, `GET /mailbox: ${res.text}`)
  return res.json as Mailbox
}
const waitForMail = (base: string, received: number): Promise<Mailbox> =>
  waitFor(`${received} mails in the sink`, async () => {
    const box = await mailbox(base)
    return box.received >= received ? box : undefined
  }, MAIL_MS)

async function suppressed (base: string): Promise<string[]> {
  const res = await request(`${base}/suppressions`)
  assert.equal(res.status, 200, `GET /suppressions: ${res.text}`)
  return (res.json.suppressions as Array<{ email: string }>).map((s) => s.email)
}

async function jobCount (base: string): Promise<number> {
  const res = await request(`${base}/jobs?limit=500`)
  assert.equal(res.status, 200, `GET /jobs: ${res.text}`)
  return (res.json.jobs as unknown[]).length
}

/** Awaits a `POST /jobs/:type`, asserts 202, returns the job id. */
async function accepted (res: Promise<JsonResponse>, what: string): Promise<string> {
  const r = await res
  assert.equal(r.status, 202, `${what}: ${r.text}`)
  return r.json.id as string
}

/** Concurrency 2: the slow `record` job holds one slot, e-mail jobs go through the other. */
const SERVE_ARGS = ['--concurrency', '2']

test('a DNS-rebinding page (Host evil.example) gets 403 on every route and changes nothing', { skip, timeout: 90_000 }, async (t) => {
  const browser = await launch(t, REBIND_ARGS)
  const serve = await startServer(t, SERVE_ARGS)
  const base = serve.url
  const file = join(tempDir(t, 'rawtrigger-rebind-rec-'), 'records')

  // The victim's state: a running job, a job that sent mail, a suppressed address.
  const jobId = await accepted(postJob(base, 'record', { n: 3, ms: SLOW_ITEM_MS, file }), 'POST /jobs/record')
  await accepted(postJob(base, 'email', { subject: 'Real', text: 'real mail', recipients: ['r1@example.org', 'r2@example.org', 'r3@example.org'] }), 'POST /jobs/email')
  await waitForMail(base, 3)
  const added = await request(`${base}/suppressions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"kept@example.org"}' })
  assert.equal(added.status, 201, added.text)
  const before = { stats: await getStats(base), jobs: await jobCount(base) }

  const evil = `http://evil.example:${serve.port}`
  const page = await browser.newPage()
  const nav = await page.goto(`${evil}/`)
  assert.equal(nav?.status(), 403, 'GET / under a foreign Host must be refused')

  const calls: Call[] = [
    { method: 'POST', url: '/jobs/email', ...json(EMAIL) },
    { method: 'GET', url: `/jobs/${jobId}` },
    { method: 'GET', url: '/jobs' },
    { method: 'POST', url: `/jobs/${jobId}/retry` },
    { method: 'POST', url: `/jobs/${jobId}/cancel` },
    { method: 'GET', url: '/suppressions' },
    { method: 'POST', url: '/suppressions', ...json({ email: 'x@example.org' }) },
    { method: 'DELETE', url: '/suppressions/kept%40example.org' },
    { method: 'GET', url: '/mailbox' },
    { method: 'GET', url: '/metrics' },
    { method: 'GET', url: '/stats' },
    { method: 'POST', url: '/campaigns', ...json({ subject: 'Rebound', text: 'x', recipients: 'a@example.org' }) },
  ]
  assert.deepEqual(await fetchInPage(page, calls), calls.map((c) => `${c.method} ${c.url} → 403 RT_ERR_FORBIDDEN`))

  // Checked from this machine, over a loopback Host.
  assert.equal((await getStats(base)).accepted, before.stats.accepted, 'the attack created a job')
  assert.equal(await jobCount(base), before.jobs, 'GET /jobs lists a new job')
  assert.notEqual((await getJob(base, jobId)).state, 'cancelled')
  assert.deepEqual(await suppressed(base), ['kept@example.org'])
  // A marker mail sent after the attack: once it is in, an attacker's mail (queued earlier) would be too.
  await accepted(postJob(base, 'email', { subject: 'Marker', text: 'after the attack', recipients: ['marker@example.org'] }), 'POST /jobs/email (marker)')
  const box = await waitForMail(base, 4)
  assert.deepEqual(box.messages.flatMap((m) => m.to).sort(), ['marker@example.org', 'r1@example.org', 'r2@example.org', 'r3@example.org'])
})

test('control: the same fetches from the real page (Host 127.0.0.1) succeed', { skip, timeout: 60_000 }, async (t) => {
  const browser = await launch(t, REBIND_ARGS)
  const serve = await startServer(t, SERVE_ARGS)
  const page = await browser.newPage()
  const nav = await page.goto(`${serve.url}/`)
  assert.equal(nav?.status(), 200)
  assert.deepEqual(await fetchInPage(page, [
    { method: 'POST', url: '/jobs/email', ...json(EMAIL) },
    { method: 'GET', url: '/mailbox' },
    { method: 'GET', url: '/stats' },
    { method: 'GET', url: '/metrics' },
  ]), ['POST /jobs/email → 202', 'GET /mailbox → 200', 'GET /stats → 200', 'GET /metrics → 200'])
  assert.deepEqual((await waitForMail(serve.url, 1)).messages.flatMap((m) => m.to), ['a@example.org'])
})

/** A blank page on 127.0.0.1, port 0: the attacker's own site. */
async function startBlankSite (t: TestContext): Promise<number> {
  const server = http.createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end('<!doctype html><title>elsewhere</title>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  }))
  return (server.address() as AddressInfo).port
}

test('a page on another origin cannot cancel a job or add a suppression (Origin rule)', { skip, timeout: 60_000 }, async (t) => {
  const browser = await launch(t, REBIND_ARGS)
  // Concurrency 0: jobs stay queued, so the job is cancellable throughout.
  const serve = await startServer(t, ['--concurrency', '0'])
  const base = serve.url
  const otherPort = await startBlankSite(t)
  const jobId = await accepted(postJob(base, 'email', { subject: 'Real', text: 'real mail', recipients: ['r1@example.org', 'r2@example.org'] }), 'POST /jobs/email')
  const rejectedBefore = (await getStats(base)).rejected

  const page = await browser.newPage()
  const nav = await page.goto(`http://evil.example:${otherPort}/`)
  assert.equal(nav?.status(), 200)
  // Opaque answers (status 0): what the server did is checked from here.
  const cancel = { method: 'POST', url: `${base}/jobs/${jobId}/cancel`, mode: 'no-cors' } as const
  const suppress = { method: 'POST', url: `${base}/suppressions`, mode: 'no-cors', body: '{"email":"x@example.org"}', contentType: 'text/plain' } as const
  assert.deepEqual(await fetchInPage(page, [cancel, suppress]), [`POST ${cancel.url} → 0`, `POST ${suppress.url} → 0`])

  // Both requests reached the receiver and were refused there, not by the browser.
  assert.equal((await getStats(base)).rejected, rejectedBefore + 2)
  assert.equal((await getJob(base, jobId)).state, 'queued')
  assert.deepEqual(await suppressed(base), [])

  // The same requests from Node: the foreign Origin alone makes the difference.
  const origin = { origin: `http://evil.example:${otherPort}` }
  const text = { 'content-type': 'text/plain' }
  const refusedCancel = await request(cancel.url, { method: 'POST', headers: origin })
  assert.equal(refusedCancel.status, 403, refusedCancel.text)
  assert.equal(refusedCancel.json.error.code, 'RT_ERR_FORBIDDEN')
  const refusedAdd = await request(suppress.url, { method: 'POST', headers: { ...origin, ...text }, body: suppress.body })
  assert.equal(refusedAdd.status, 403, refusedAdd.text)
  assert.equal((await getJob(base, jobId)).state, 'queued')

  const sameOrigin = await request(suppress.url, { method: 'POST', headers: { origin: base, ...text }, body: suppress.body })
  assert.equal(sameOrigin.status, 201, `POST /suppressions with Origin ${base}: ${sameOrigin.text}`)
  const noOrigin = await request(cancel.url, { method: 'POST' })
  assert.equal(noOrigin.status, 200, `POST /jobs/${jobId}/cancel without Origin: ${noOrigin.text}`)
  assert.equal((await getJob(base, jobId)).state, 'cancelled')
  assert.deepEqual(await suppressed(base), ['x@example.org'])
})
