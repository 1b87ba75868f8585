// The access table (src/server/access.ts): without a secret every route refuses a non-loopback
// Host (DNS rebinding) and state-changing requests refuse a foreign Origin; with a secret,
// signatures decide for /jobs* and /suppressions*, /stats and /mailbox are loopback or signed,
// /metrics loopback or --metrics-token. Also: store failures of /suppressions answer 503, and
// refusals reach the default log, rate-limited.
import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Writable } from 'node:stream'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { generateSecret, sign } from 'rawtrigger'
import { EMAIL_ACCESS } from '../src/email/plugin.ts'
import { ACCESS_TABLE, accessTable, ruleFor } from '../src/server/access.ts'
import type { ReceiverOptions } from '../src/server/receiver.ts'
import { sendJson } from '../src/server/respond.ts'
import { getStats, postJob, request, startReceiver, tempDir, type TestReceiver } from './helpers/receiver.ts'

const SECRET = generateSecret()
const RECORD = (t: TestContext): { n: number, file: string } => ({ n: 1, file: join(tempDir(t), 'records') })

/** An embedder's routes: /mailbox (in the table) and /custom (in no row: the default rule). */
const extraRoutes = (req: IncomingMessage, res: ServerResponse): boolean => {
  const path = (req.url ?? '').split('?')[0]
  if (path !== '/mailbox' && path !== '/custom') return false
  sendJson(res, 200, { ok: true })
  return true
}

function start (t: TestContext, options: ReceiverOptions = {}): Promise<TestReceiver> {
  return startReceiver(t, { concurrency: 0, routes: extraRoutes, ...options })
}

/** Every route a client can reach, with a method and body that would succeed. */
function routes (t: TestContext, jobId: string): Array<{ method: string, path: string, body?: unknown }> {
  return [
    { method: 'POST', path: '/jobs/record', body: RECORD(t) },
    { method: 'GET', path: `/jobs/${jobId}` },
    { method: 'GET', path: '/jobs' },
    { method: 'POST', path: `/jobs/${jobId}/cancel`, body: {} },
    { method: 'POST', path: `/jobs/${jobId}/retry`, body: {} },
    { method: 'GET', path: '/suppressions' },
    { method: 'POST', path: '/suppressions', body: { email: 'blocked@example.org' } },
    { method: 'DELETE', path: '/suppressions/blocked%40example.org' },
    { method: 'POST', path: '/bounces', body: { RecordType: 'Bounce', Type: 'HardBounce', Email: 'bounced@example.org' } },
    { method: 'GET', path: '/mailbox' },
    { method: 'GET', path: '/metrics' },
    { method: 'GET', path: '/stats' },
    { method: 'GET', path: '/healthz' },
    { method: 'GET', path: '/custom' },
  ]
}

function send (r: TestReceiver, route: { method: string, path: string, body?: unknown }, headers: Record<string, string>): ReturnType<typeof request> {
  const body = route.body === undefined ? undefined : JSON.stringify(route.body)
  return request(`${r.url}${route.path}`, {
    method: route.method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body }),
  })
}

test('every path of serve has a row in the access table (the receiver\'s and the e-mail plugin\'s); a path in none gets the strict default', () => {
  const rows = [...ACCESS_TABLE, ...EMAIL_ACCESS]
  for (const path of ['/healthz', '/metrics', '/stats', '/mailbox', '/jobs', '/jobs/email', '/jobs/x/retry', '/suppressions', '/suppressions/a%40b.c', '/bounces', '/', '/static/app.js', '/campaigns', '/campaigns/preview']) {
    assert.ok(rows.some((row) => (typeof row.path === 'string' ? row.path === path : row.path.test(path))), `${path} has no row`)
  }
  const rule = accessTable(rows)
  assert.equal(rule('/healthz'), 'open')
  assert.equal(rule('/jobs/email'), 'signed')
  assert.equal(rule('/suppressions/a%40b.c'), 'signed')
  assert.equal(rule('/somewhere-new'), 'local-or-signed')
  assert.equal(ruleFor('/suppressions'), 'local-or-signed', 'the receiver alone knows no e-mail route')
  // A plugin's row cannot loosen one of the receiver's: the first row of a path wins.
  assert.equal(accessTable([...ACCESS_TABLE, { path: '/jobs', rule: 'open' }, { path: /^\/jobs\//, rule: 'open' }])('/jobs/x'), 'signed')
  assert.equal(accessTable([...ACCESS_TABLE, { path: '/jobs', rule: 'open' }])('/jobs'), 'signed')
})

test('no secret: a non-loopback Host is refused with 403 on every route, and nothing is stored or changed', async (t) => {
  const r = await start(t)
  const job = await postJob(r.url, 'record', RECORD(t))
  assert.equal(job.status, 202, job.text)
  for (const host of [`evil.example:${r.port}`, 'evil.example', `10.0.0.1:${r.port}`, `localhost.evil.example:${r.port}`, `[::2]:${r.port}`]) {
    for (const route of routes(t, job.json.id)) {
      const res = await send(r, route, { host })
      assert.equal(res.status, 403, `${route.method} ${route.path} with Host ${host}: ${res.text}`)
      assert.equal(res.json.error.code, 'RT_ERR_FORBIDDEN')
      assert.match(res.json.error.message, /not a loopback name/)
    }
  }
  const stats = await getStats(r.url)
  assert.equal(stats.accepted, 1, 'only the job posted with a loopback Host')
  assert.equal((await request(`${r.url}/jobs/${String(job.json.id)}`)).json.state, 'queued', 'the cancel did not go through')
  assert.deepEqual((await request(`${r.url}/suppressions`)).json.suppressions, [])
})

test('no secret: loopback names and addresses in Host are served', async (t) => {
  const r = await start(t)
  for (const host of [`127.0.0.1:${r.port}`, `localhost:${r.port}`, `LOCALHOST:${r.port}`, `127.1.2.3:${r.port}`, `[::1]:${r.port}`, 'localhost']) {
    const res = await postJob(r.url, 'record', RECORD(t), { host })
    assert.equal(res.status, 202, `Host ${host}: ${res.text}`)
    assert.equal((await request(`${r.url}/mailbox`, { headers: { host } })).status, 200)
  }
})

test('no secret: a state-changing request with a foreign Origin is refused; reads and same-origin writes are not', async (t) => {
  const r = await start(t)
  const job = await postJob(r.url, 'record', RECORD(t))
  const host = `127.0.0.1:${r.port}`
  for (const origin of ['http://evil.example', `http://localhost:${r.port + 1}`, 'null', `https://${host}`]) {
    for (const route of routes(t, job.json.id).filter((x) => x.method !== 'GET')) {
      const res = await send(r, route, { host, origin })
      assert.equal(res.status, 403, `${route.method} ${route.path} from ${origin}: ${res.text}`)
      assert.match(res.json.error.message, /cross-origin/)
    }
  }
  assert.equal((await getStats(r.url)).accepted, 1)
  assert.equal((await send(r, { method: 'GET', path: '/stats' }, { host, origin: 'http://evil.example' })).status, 200, 'a read: the browser keeps the answer from the page')
  const same = await send(r, { method: 'POST', path: `/jobs/${String(job.json.id)}/cancel`, body: {} }, { host, origin: `http://${host}` })
  assert.equal(same.status, 200, same.text)
})

test('with a secret: /stats and /mailbox answer loopback, or a signed GET from a foreign Host; unsigned foreign → 403', async (t) => {
  const r = await start(t, { secret: SECRET })
  for (const path of ['/stats', '/mailbox']) {
    assert.equal((await request(`${r.url}${path}`)).status, 200, `${path} from loopback`)
    const foreign = await request(`${r.url}${path}`, { headers: { host: 'rawtrigger.example.org' } })
    assert.equal(foreign.status, 403, `${path} unsigned with a public Host`)
    const signed = await request(`${r.url}${path}`, { headers: { host: 'rawtrigger.example.org', ...sign(SECRET, '') } })
    assert.equal(signed.status, 200, `${path} signed: ${signed.text}`)
    const forged = await request(`${r.url}${path}`, { headers: { host: 'rawtrigger.example.org', ...sign(generateSecret(), '') } })
    assert.equal(forged.status, 401, `${path} signed with another key`)
  }
})

test('with a secret: signatures decide /jobs and /suppressions whatever the Host; unsigned → 401', async (t) => {
  const r = await start(t, { secret: SECRET })
  const body = JSON.stringify(RECORD(t))
  const headers = { host: 'rawtrigger.example.org', 'content-type': 'application/json' }
  assert.equal((await request(`${r.url}/jobs/record`, { method: 'POST', headers, body })).status, 401)
  const ok = await request(`${r.url}/jobs/record`, { method: 'POST', headers: { ...headers, ...sign(SECRET, body) }, body })
  assert.equal(ok.status, 202, ok.text)
  assert.equal((await request(`${r.url}/suppressions`, { headers: { host: 'rawtrigger.example.org' } })).status, 401)
  assert.equal((await request(`${r.url}/suppressions`, { headers: { host: 'rawtrigger.example.org', ...sign(SECRET, '') } })).status, 200)
  assert.equal((await request(`${r.url}/healthz`, { headers: { host: 'rawtrigger.example.org' } })).status, 200, '/healthz is open')
})

test('/metrics: loopback only without a token; with --metrics-token a Bearer token from any Host, and nothing else', async (t) => {
  const open = await start(t, { secret: SECRET })
  assert.equal((await request(`${open.url}/metrics`)).status, 200)
  assert.equal((await request(`${open.url}/metrics`, { headers: { host: 'metrics.example.org' } })).status, 403)
  const token = 'scrape-me-0123456789'
  const guarded = await start(t, { secret: SECRET, metricsToken: token })
  assert.equal((await request(`${guarded.url}/metrics`)).status, 401, 'a token is set: loopback alone is not enough')
  assert.equal((await request(`${guarded.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456' } })).status, 401)
  const scraped = await request(`${guarded.url}/metrics`, { headers: { host: 'metrics.example.org', authorization: `Bearer ${token}` } })
  assert.equal(scraped.status, 200, scraped.text)
  assert.match(scraped.text, /rawtrigger_triggers_accepted_total/)
})

test('a /suppressions store failure answers 503 RT_ERR_STORE, not 500', async (t) => {
  const r = await start(t)
  const other = new Database(join(r.dataDir, 'rawtrigger.db'))
  t.after(() => { if (other.open) other.close() })
  other.exec('BEGIN IMMEDIATE') // holds the write lock: the insert waits its busy timeout, then fails
  const added = await request(`${r.url}/suppressions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"a@example.org"}' })
  assert.equal(added.status, 503, added.text)
  assert.equal(added.json.error.code, 'RT_ERR_STORE')
  other.exec('ROLLBACK')
  other.exec('DROP TABLE lists') // a damaged file: every read of the list fails
  const listed = await request(`${r.url}/suppressions`)
  assert.equal(listed.status, 503, listed.text)
  assert.equal(listed.json.error.code, 'RT_ERR_STORE')
})

test('refusals reach the log at info, one line per reason per second with a count', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const r = await start(t, { logger: pino({ level: 'info' }, sink) })
  for (let i = 0; i < 5; i++) await request(`${r.url}/stats`, { headers: { host: 'evil.example' } })
  await postJob(r.url, 'record', 'not json')
  const refused = (): Array<Record<string, unknown>> => lines.filter((l) => l.msg !== undefined && String(l.msg).startsWith('request refused'))
  assert.equal(refused().filter((l) => l.code === 'RT_ERR_FORBIDDEN').length, 1, 'the first refusal is logged at once, the next four are folded')
  assert.equal(refused().filter((l) => l.code === 'RT_ERR_BAD_JSON').length, 1, 'another reason has its own line')
  await new Promise((resolve) => setTimeout(resolve, 1_300))
  const forbidden = refused().filter((l) => l.code === 'RT_ERR_FORBIDDEN')
  assert.equal(forbidden.length, 2, 'the folded ones are reported after the interval')
  assert.equal(forbidden[1]?.refused, 4)
  assert.match(String(forbidden[0]?.msg), /evil\.example/)
})
