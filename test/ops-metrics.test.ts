// GET /metrics (issue 8), read the way Prometheus reads it: a small strict parser of the text
// exposition format 0.0.4 (HELP and TYPE once per family and before its samples, samples grouped
// by family, `name{labels} value`, histogram buckets cumulative and ending in +Inf = _count).
// A receiver on each store runs e-mail jobs against a real SMTP server that answers 451 once and
// 550 always for some recipients, with one address on the suppression list, plus refused requests
// of every kind; the counters, gauges and the histogram must say exactly what happened.
import assert from 'node:assert/strict'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { createMailer, emailHandler, type Receiver } from 'rawtrigger'
import type { JobView } from '../src/queue/types.ts'
import testHandlers from './helpers/handlers.ts'
import { request, type JsonResponse } from './helpers/receiver.ts'
import { startSmtpServer, type FaultPlan, type TestSmtpServer } from './helpers/smtp-server.ts'
import { startOnStore, type StoreKind } from './helpers/store-receiver.ts'
import { waitFor } from './helpers/wait.ts'

const WAIT_MS = 20_000

// ---------------------------------------------------------------------------------------------
// The parser

/** One sample line. */
interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** One metric family: its HELP, TYPE and samples. */
interface Family {
  name: string
  help?: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  samples: Sample[]
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

/** As Prometheus reads values (Go's ParseFloat): Inf, +Inf, -Inf and NaN in any case (prom-client writes "Nan"). */
function parseValue (raw: string, line: number): number {
  if (/^\+?inf(inity)?$/i.test(raw)) return Infinity
  if (/^-inf(inity)?$/i.test(raw)) return -Infinity
  if (/^nan$/i.test(raw)) return NaN
  assert.match(raw, /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/, `line ${line}: value ${JSON.stringify(raw)} is not a number`)
  return Number(raw)
}

/** Parses `{a="x",b="y\"z"}` (the braces excluded); label values may hold escaped \\, \" and \n. */
function parseLabels (text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('=', i)
    assert.ok(eq > i, `line ${line}: label without a name in {${text}}`)
    const name = text.slice(i, eq).trim()
    assert.match(name, LABEL_NAME_RE, `line ${line}: label name ${JSON.stringify(name)}`)
    assert.equal(text[eq + 1], '"', `line ${line}: label ${name} value must be quoted`)
    let value = ''
    let j = eq + 2
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[++j]
        assert.ok(next === '\\' || next === '"' || next === 'n', `line ${line}: bad escape \\${String(next)}`)
        value += next === 'n' ? '\n' : next
      } else {
        value += text[j]
      }
    }
    assert.equal(text[j], '"', `line ${line}: unterminated label value`)
    assert.ok(!(name in labels), `line ${line}: label ${name} twice`)
    labels[name] = value
    i = j + 1
    if (text[i] === ',') i++
    else assert.equal(i, text.length, `line ${line}: expected , or } after label ${name}`)
  }
  return labels
}

/** The family a sample name belongs to: itself, or a histogram/summary's _bucket/_sum/_count. */
function familyOf (families: Map<string, Family>, name: string): Family | undefined {
  const own = families.get(name)
  if (own !== undefined) return own
  const m = /^(.*)_(bucket|sum|count)$/.exec(name)
  if (m === null) return undefined
  const base = families.get(m[1] as string)
  if (base === undefined) return undefined
  if (base.type === 'histogram' || (base.type === 'summary' && m[2] !== 'bucket')) return base
  return undefined
}

/** Parses the Prometheus text format 0.0.4 strictly; every rule broken fails an assertion. */
function parsePrometheus (text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const helps = new Map<string, string>()
  const seen = new Set<string>()
  const closed = new Set<string>() // families whose samples ended: another sample of them is out of order
  let current: Family | undefined
  assert.ok(text.endsWith('\n'), 'the exposition ends with a line feed')
  const lines = text.split('\n')
  lines.pop()
  lines.forEach((raw, index) => {
    const n = index + 1
    assert.ok(!raw.includes('\r'), `line ${n}: CR`)
    if (raw.trim() === '') return
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw)
      if (m === null) return // another comment
      const [, kind, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string | undefined]
      assert.match(name, NAME_RE, `line ${n}: metric name ${name}`)
      if (kind === 'HELP') {
        assert.ok(!helps.has(name), `line ${n}: second HELP for ${name}`)
        helps.set(name, rest ?? '')
        const fam = families.get(name)
        if (fam !== undefined) {
          assert.equal(fam.samples.length, 0, `line ${n}: HELP for ${name} after its samples`)
          fam.help = rest ?? ''
        }
        return
      }
      assert.ok(rest !== undefined && TYPES.has(rest), `line ${n}: TYPE ${name} ${String(rest)}`)
      assert.ok(!families.has(name), `line ${n}: second TYPE for ${name}`)
      const fam: Family = { name, type: rest as Family['type'], samples: [] }
      const help = helps.get(name)
      if (help !== undefined) fam.help = help
      families.set(name, fam)
      if (current !== undefined) closed.add(current.name)
      current = fam
      return
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$/.exec(raw)
    assert.ok(m !== null, `line ${n}: not a sample: ${JSON.stringify(raw)}`)
    const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string]
    const fam = familyOf(families, name)
    assert.ok(fam !== undefined, `line ${n}: sample ${name} without a TYPE line before it`)
    assert.ok(!closed.has(fam.name), `line ${n}: sample of ${fam.name} after another family began`)
    if (current !== fam) {
      if (current !== undefined) closed.add(current.name)
      current = fam
    }
    const labels = labelText === undefined || labelText === '' ? {} : parseLabels(labelText, n)
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    assert.ok(!seen.has(key), `line ${n}: duplicate sample ${key}`)
    seen.add(key)
    fam.samples.push({ name, labels, value: parseValue(valueText, n) })
  })
  for (const fam of families.values()) if (fam.type === 'histogram') checkHistogram(fam)
  return families
}

/** Per label set: buckets sorted by le, cumulative, ending in +Inf equal to _count; _sum present. */
function checkHistogram (fam: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>, sum?: number, count?: number }>()
  for (const s of fam.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    const g = groups.get(key) ?? { buckets: [] }
    groups.set(key, g)
    if (s.name === `${fam.name}_bucket`) {
      assert.ok(le !== undefined, `${fam.name}_bucket without le`)
      g.buckets.push([parseValue(le, 0), s.value])
    } else if (s.name === `${fam.name}_sum`) {
      g.sum = s.value
    } else if (s.name === `${fam.name}_count`) {
      g.count = s.value
    } else {
      assert.fail(`histogram ${fam.name} has a sample ${s.name}`)
    }
  }
  for (const [key, g] of groups) {
    assert.ok(g.buckets.length > 0 && g.sum !== undefined && g.count !== undefined, `${fam.name}${key}: buckets, _sum and _count`)
    for (let i = 1; i < g.buckets.length; i++) {
      const [prevLe, prevN] = g.buckets[i - 1] as [number, number]
      const [le, n] = g.buckets[i] as [number, number]
      assert.ok(le > prevLe, `${fam.name}: le ${le} after ${prevLe}`)
      assert.ok(n >= prevN, `${fam.name}: bucket le=${le} holds ${n} < ${prevN} of le=${prevLe} (not cumulative)`)
    }
    const last = g.buckets[g.buckets.length - 1] as [number, number]
    assert.equal(last[0], Infinity, `${fam.name}: the last bucket is le="+Inf"`)
    assert.equal(last[1], g.count, `${fam.name}: le="+Inf" equals _count`)
  }
}

/** The value of the one sample `name` with exactly `labels`; undefined when absent. */
function value (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const fam = familyOf(families, name)
  const want = JSON.stringify(Object.entries(labels).sort())
  return fam?.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value
}

// ---------------------------------------------------------------------------------------------
// The receivers

type Kind = StoreKind

interface Harness { url: string, receiver: Receiver, smtp: TestSmtpServer }

async function start (t: TestContext, kind: Kind, faults: FaultPlan = {}, concurrency = 1): Promise<Harness | undefined> {
  const smtp = await startSmtpServer({ faults })
  const mailer = createMailer({ url: smtp.url })
  const receiver = await startOnStore(t, kind, {
    concurrency,
    handlers: { ...testHandlers, email: emailHandler({ mailer, retryBaseMs: 50, maxAttempts: 3 }) },
    closeAfter: [() => mailer.close(), () => smtp.close()],
  })
  return receiver === undefined ? undefined : { url: receiver.url, receiver, smtp }
}

function until<T> (what: string, check: () => Promise<T | undefined>, timeoutMs = WAIT_MS): Promise<T> {
  return waitFor(what, check, timeoutMs)
}

function postJson (h: Harness, path: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return request(`${h.url}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } })
}

async function scrape (h: Harness): Promise<Map<string, Family>> {
  const res = await request(`${h.url}/metrics`)
  assert.equal(res.status, 200)
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  return parsePrometheus(res.text)
}

async function untilFinal (h: Harness, id: string): Promise<JobView> {
  return until(`job ${id} to finish`, async () => {
    const v = (await request(`${h.url}/jobs/${id}`)).json as JobView
    return ['done', 'failed', 'cancelled'].includes(v.state) ? v : undefined
  })
}

describe('the parser', () => {
  test('accepts well-formed text and refuses what Prometheus refuses', () => {
    const good = '# HELP a_total Things.\n# TYPE a_total counter\na_total{x="1",y="q\\"\\\\\\n"} 3\n' +
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1.5\nh_count 2\n'
    const fams = parsePrometheus(good)
    assert.equal(value(fams, 'a_total', { x: '1', y: 'q"\\\n' }), 3)
    assert.equal(value(fams, 'h_count'), 2)
    const bad: Array<[string, string]> = [
      ['a 1\n', 'no TYPE'],
      ['# TYPE a gauge\na{x=1} 1\n', 'unquoted label'],
      ['# TYPE a gauge\na one\n', 'value not a number'],
      ['# TYPE a gauge\na 1\na 2\n', 'duplicate sample'],
      ['# TYPE a gauge\n# TYPE a gauge\n', 'second TYPE'],
      ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', 'not cumulative'],
      ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', 'no +Inf bucket'],
      ['# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n', 'samples out of their family'],
      ['# TYPE a gauge\na 1', 'no final line feed'],
    ]
    for (const [text, why] of bad) assert.throws(() => parsePrometheus(text), { name: 'AssertionError' }, why)
  })
})

for (const kind of ['sqlite', 'redis'] as const) {
  describe(`GET /metrics on ${kind}`, () => {
    test('counts accepted and refused triggers, jobs by state, e-mail outcomes, SMTP replies, accept latency, queue depth, loop lag', async (t) => {
      const h = await start(t, kind, {
        rcpt: {
          'grey@example.org': { code: 451, message: '4.7.1 Greylisted, come back later', times: 1 },
          'gone@example.org': { code: 550, message: '5.1.1 No such user', times: Infinity },
        },
      })
      if (h === undefined) return
      const empty = await scrape(h)
      assert.equal(value(empty, 'rawtrigger_triggers_accepted_total'), 0)
      assert.equal(value(empty, 'rawtrigger_queue_depth'), 0)
      for (const state of ['queued', 'running', 'done', 'failed', 'cancelled']) assert.equal(value(empty, 'rawtrigger_jobs', { state }), 0, state)

      assert.equal((await postJson(h, '/suppressions', { email: 'Blocked@Example.org', reason: 'unsubscribed' })).status, 201)
      const email = await postJson(h, '/jobs/email', {
        from: 'news@example.org', subject: 'Hi', text: 'Hello',
        recipients: ['ok1@example.org', 'ok2@example.org', 'grey@example.org', 'gone@example.org', 'blocked@example.org'],
      })
      assert.equal(email.status, 202, email.text)
      const noops: string[] = []
      for (let i = 0; i < 3; i++) {
        const res = await postJson(h, '/jobs/noop', { i }, { 'webhook-id': `noop-${kind}-${i}` })
        assert.equal(res.status, 202, res.text)
        noops.push(res.json.id as string)
      }
      const dup = await postJson(h, '/jobs/noop', { i: 0 }, { 'webhook-id': `noop-${kind}-0` })
      assert.deepEqual([dup.status, dup.json.duplicate], [202, true])

      const refused: Array<[Promise<JsonResponse>, number, string]> = [
        [postJson(h, '/jobs/unknown-type', {}), 404, 'RT_ERR_NOT_FOUND'],
        [request(`${h.url}/jobs/noop`, { method: 'POST', body: '{}', headers: { 'content-type': 'text/plain' } }), 415, 'RT_ERR_UNSUPPORTED_MEDIA_TYPE'],
        [postJson(h, '/jobs/noop', '{"not json'), 400, 'RT_ERR_BAD_JSON'],
        [postJson(h, '/jobs/email', { subject: 'no recipients', text: 'x', recipients: [] }), 400, 'RT_ERR_VALIDATION'],
        [postJson(h, '/jobs/email', { subject: 'bad address', text: 'x', recipients: ['not an address'] }), 400, 'RT_ERR_VALIDATION'],
      ]
      for (const [res, status, code] of refused) {
        const r = await res
        assert.equal(r.status, status, r.text)
        assert.equal(r.json.error.code, code)
      }

      const view = await untilFinal(h, email.json.id as string)
      for (const id of noops) await untilFinal(h, id)
      assert.deepEqual([view.state, view.sent, view.failed], ['done', 3, 2], JSON.stringify(view))
      const m = await scrape(h)

      assert.equal(value(m, 'rawtrigger_triggers_accepted_total'), 4, 'four jobs stored; the duplicate is not counted')
      assert.equal(value(m, 'rawtrigger_triggers_rejected_total', { reason: 'RT_ERR_NOT_FOUND' }), 1)
      assert.equal(value(m, 'rawtrigger_triggers_rejected_total', { reason: 'RT_ERR_UNSUPPORTED_MEDIA_TYPE' }), 1)
      assert.equal(value(m, 'rawtrigger_triggers_rejected_total', { reason: 'RT_ERR_BAD_JSON' }), 1)
      assert.equal(value(m, 'rawtrigger_triggers_rejected_total', { reason: 'RT_ERR_VALIDATION' }), 2)
      const rejected = (m.get('rawtrigger_triggers_rejected_total')?.samples ?? []).reduce((a, s) => a + s.value, 0)
      assert.equal(rejected, 5)

      assert.deepEqual(['queued', 'running', 'done', 'failed', 'cancelled'].map((state) => value(m, 'rawtrigger_jobs', { state })), [0, 0, 4, 0, 0])
      assert.equal(value(m, 'rawtrigger_emails_total', { outcome: 'sent' }), 3)
      assert.equal(value(m, 'rawtrigger_emails_total', { outcome: 'retry' }), 1, 'grey: 451 once')
      assert.equal(value(m, 'rawtrigger_emails_total', { outcome: 'failed' }), 1, 'gone: 550')
      assert.equal(value(m, 'rawtrigger_emails_total', { outcome: 'suppressed' }), 1, 'blocked: on the list')
      assert.equal(h.smtp.delivered.length, 3)
      assert.equal(value(m, 'rawtrigger_smtp_replies_total', { code: '451' }), 1)
      assert.equal(value(m, 'rawtrigger_smtp_replies_total', { code: '550' }), 1)
      assert.equal(m.get('rawtrigger_smtp_replies_total')?.samples.length, 2, 'only codes that happened')

      const hist = m.get('rawtrigger_accept_seconds')
      assert.equal(hist?.type, 'histogram')
      // Every 202 is timed: the four stored jobs and the duplicate's answer.
      assert.equal(value(m, 'rawtrigger_accept_seconds_count'), 5)
      assert.ok((value(m, 'rawtrigger_accept_seconds_sum') ?? 0) > 0)
      assert.equal(value(m, 'rawtrigger_accept_seconds_bucket', { le: '+Inf' }), 5)
      assert.equal(value(m, 'rawtrigger_queue_depth'), 0)

      const lag = value(m, 'rawtrigger_nodejs_eventloop_lag_seconds')
      assert.equal(m.get('rawtrigger_nodejs_eventloop_lag_seconds')?.type, 'gauge')
      assert.ok(lag !== undefined && Number.isFinite(lag) && lag >= 0 && lag < 5, `event-loop lag ${String(lag)}`)
      for (const name of ['rawtrigger_triggers_accepted_total', 'rawtrigger_triggers_rejected_total', 'rawtrigger_emails_total', 'rawtrigger_smtp_replies_total']) {
        assert.equal(m.get(name)?.type, 'counter', name)
        assert.ok((m.get(name)?.help ?? '') !== '', `${name} has a HELP text`)
      }
      for (const name of ['rawtrigger_jobs', 'rawtrigger_queue_depth']) assert.equal(m.get(name)?.type, 'gauge', name)
      for (const name of m.keys()) assert.ok(name.startsWith('rawtrigger_'), `${name}: every metric carries the prefix`)
    })

    test('queue depth counts the items still to send, and nothing once the job is cancelled', async (t) => {
      const h = await start(t, kind, {}, 0) // stores only: the jobs stay queued
      if (h === undefined) return
      for (const [id, n] of [[`a-${kind}`, 5], [`b-${kind}`, 7]] as const) {
        const res = await postJson(h, '/jobs/record', { n, file: join(tmpdir(), `rttest-never-${id}`) }, { 'webhook-id': id })
        assert.equal(res.status, 202, res.text)
      }
      let m = await scrape(h)
      assert.equal(value(m, 'rawtrigger_queue_depth'), 12)
      assert.equal(value(m, 'rawtrigger_jobs', { state: 'queued' }), 2)
      assert.equal((await request(`${h.url}/jobs/a-${kind}/cancel`, { method: 'POST' })).status, 200)
      m = await scrape(h)
      assert.equal(value(m, 'rawtrigger_jobs', { state: 'queued' }), 1)
      assert.equal(value(m, 'rawtrigger_jobs', { state: 'cancelled' }), 1)
      assert.equal(value(m, 'rawtrigger_queue_depth'), 7, 'the cancelled job\'s five items are no longer waiting')
      const stats = (await request(`${h.url}/stats`)).json as { emails: { pending: number } }
      assert.equal(stats.emails.pending, 7, '/stats agrees')
    })
  })
}
