// Per receiving domain limits (issue 14, src/smtp/domain-limits.ts, send-loop.ts): messages in
// flight to one domain, messages per second to one domain with overrides by domain, and a domain
// that answers 421 "too many" paused and slowed alone while the job goes on with the others.
// A real smtp-server in this process counts the messages in flight per domain (from an accepted
// RCPT TO to the 250 after DATA); the job runs in a real receiver on SQLite.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import type { AddressInfo, Socket } from 'node:net'
import { describe, test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { SMTPServer } from 'smtp-server'
import { DomainLimiter, isTooMany, parseDomainFlags, type DomainLimitOptions } from '../src/smtp/domain-limits.ts'
import { emailHandler } from '../src/smtp/email-job.ts'
import { createMailer } from '../src/smtp/mailer.ts'
import { getJob, postJob, startReceiver, waitFor } from './helpers/receiver.ts'

const JOB_TIMEOUT_MS = 30_000

interface Event { domain: string, at: number, kind: 'rcpt' | 'refused' | 'delivered' }
interface CountingSink { url: string, events: Event[], maxInFlight: Map<string, number>, maxTotal: () => number }

/** An SMTP server that counts messages in flight per recipient domain; `refuse` answers RCPT TO. */
async function countingSink (t: TestContext, options: { delayMs: number, refuse?: (domain: string, n: number) => string | undefined }): Promise<CountingSink> {
  const events: Event[] = []
  const inFlight = new Map<string, number>()
  const maxInFlight = new Map<string, number>()
  const tries = new Map<string, number>()
  let total = 0
  let maxTotal = 0
  const sockets = new Set<Socket>()
  const server = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS'], disableReverseLookup: true, logger: false,
    onRcptTo (address, session, callback) {
      const domain = address.address.split('@')[1] as string
      const n = (tries.get(domain) ?? 0) + 1
      tries.set(domain, n)
      const refusal = options.refuse?.(domain, n)
      if (refusal !== undefined) {
        events.push({ domain, at: Date.now(), kind: 'refused' })
        callback(Object.assign(new Error(refusal.slice(4)), { responseCode: Number(refusal.slice(0, 3)) }))
        return
      }
      events.push({ domain, at: Date.now(), kind: 'rcpt' })
      inFlight.set(domain, (inFlight.get(domain) ?? 0) + 1)
      maxInFlight.set(domain, Math.max(maxInFlight.get(domain) ?? 0, inFlight.get(domain) as number))
      maxTotal = Math.max(maxTotal, ++total)
      ;(session as unknown as { domain: string }).domain = domain
      callback()
    },
    onData (stream, session, callback) {
      stream.resume()
      stream.on('end', () => setTimeout(() => {
        const domain = (session as unknown as { domain: string }).domain
        inFlight.set(domain, (inFlight.get(domain) ?? 1) - 1)
        total--
        events.push({ domain, at: Date.now(), kind: 'delivered' })
        callback()
      }, options.delayMs))
    },
  })
  server.on('error', () => {}) // a 421 closes the session; pooled clients closing idle ones
  server.server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => { server.close(() => resolve()); for (const s of sockets) s.destroy() }))
  return { url: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}`, events, maxInFlight, maxTotal: () => maxTotal }
}

/** Recipients spread round-robin over `domains`. */
function recipients (n: number, domains: readonly string[]): string[] {
  return Array.from({ length: n }, (_, i) => `r${i}@${domains[i % domains.length] as string}`)
}

async function runJob (t: TestContext, sink: CountingSink, to: string[], limits: DomainLimitOptions, maxConnections = 8): Promise<void> {
  const mailer = createMailer({ url: sink.url, maxConnections, domainLimits: limits })
  t.after(() => mailer.close())
  const receiver = await startReceiver(t, { handlers: { email: emailHandler({ mailer, retryBaseMs: 100, maxAttempts: 6 }) } })
  const sent = await postJob(receiver.url, 'email', { subject: 'Hi {{name}}', text: 'Hello {{email}}', recipients: to })
  assert.equal(sent.status, 202, sent.text)
  const job = await waitFor('the job to end', async () => {
    const view = await getJob(receiver.url, sent.json.id)
    return view.state === 'done' || view.state === 'failed' ? view : undefined
  }, JOB_TIMEOUT_MS)
  assert.deepEqual([job.state, job.sent, job.failed], ['done', to.length, 0], JSON.stringify(job.errors))
}

describe('per-domain limits in a real job', () => {
  test('--domain-concurrency 2: never more than 2 in flight to one domain, the pool still busy across domains', async (t) => {
    const sink = await countingSink(t, { delayMs: 40 })
    await runJob(t, sink, recipients(60, ['a.example', 'b.example', 'c.example']), { concurrency: 2 })
    assert.deepEqual([...sink.maxInFlight.values()], [2, 2, 2], JSON.stringify([...sink.maxInFlight]))
    assert.ok(sink.maxTotal() >= 5, `at most ${sink.maxTotal()} in flight over all domains`)
  })

  test('an override (slow.example=1) beside the default (3); a domain that fills the list does not block the others', async (t) => {
    const sink = await countingSink(t, { delayMs: 40 })
    // Mostly slow.example first: the other domains behind it must not wait for it.
    const to = [...recipients(30, ['slow.example']), ...recipients(30, ['x.example', 'y.example'])].map((a, i) => a.replace(/^r\d+/, `r${i}`))
    await runJob(t, sink, to, { concurrency: 3, domains: { 'slow.example': { concurrency: 1 } } })
    assert.equal(sink.maxInFlight.get('slow.example'), 1)
    assert.equal(sink.maxInFlight.get('x.example'), 3)
    const delivered = sink.events.filter((e) => e.kind === 'delivered')
    const lastFast = Math.max(...delivered.filter((e) => e.domain !== 'slow.example').map((e) => e.at))
    const lastSlow = Math.max(...delivered.filter((e) => e.domain === 'slow.example').map((e) => e.at))
    assert.ok(lastFast < lastSlow - 400, `the other domains finished ${lastSlow - lastFast} ms before slow.example`)
  })

  test('--domain-rate slow.example=10/s: its messages are spaced 100 ms apart, the rest go at full speed', async (t) => {
    const sink = await countingSink(t, { delayMs: 5 })
    const to = recipients(60, ['slow.example', 'fast.example', 'quick.example'])
    const started = Date.now()
    await runJob(t, sink, to, { domains: { 'slow.example': { rate: 10 } } })
    const slow = sink.events.filter((e) => e.kind === 'rcpt' && e.domain === 'slow.example').map((e) => e.at)
    assert.equal(slow.length, 20)
    // Spaced when handed to the pool; the first waits for its connection, so its gap is not counted.
    const gaps = slow.slice(2).map((at, i) => at - (slow[i + 1] as number))
    assert.ok(Math.min(...gaps) >= 60, `gaps between slow.example messages: ${gaps.join(', ')} ms`)
    assert.ok((slow.at(-1) as number) - (slow[1] as number) >= 18 * 100 * 0.9, 'about 10 per second')
    const fastDone = Math.max(...sink.events.filter((e) => e.kind === 'delivered' && e.domain !== 'slow.example').map((e) => e.at)) - started
    assert.ok(fastDone < 1_500, `the other domains took ${fastDone} ms`)
  })

  test('450 "too many" from one domain pauses and slows that domain; the others go on; everything arrives', async (t) => {
    const PAUSE_MS = 1_000
    // RCPT TO 5 and 6 to busy.example are deferred like a provider that counts messages. (A 421
    // closes the connection, and nodemailer's pool resends the message over another one by itself
    // when the connection had been used before: the job may never see it. isTooMany covers 421.)
    const sink = await countingSink(t, { delayMs: 30, refuse: (d, n) => d === 'busy.example' && (n === 5 || n === 6) ? '450 4.7.0 Too many messages from your IP, slow down' : undefined })
    await runJob(t, sink, recipients(120, ['busy.example', 'calm.example', 'other.example']), { concurrency: 4, pauseMs: PAUSE_MS })
    const refused = sink.events.find((e) => e.kind === 'refused')
    assert.ok(refused !== undefined)
    const during = sink.events.filter((e) => e.kind === 'rcpt' && e.at > refused.at + 100 && e.at < refused.at + PAUSE_MS - 100)
    assert.deepEqual(during.filter((e) => e.domain === 'busy.example'), [], 'nothing new to busy.example while it is paused')
    assert.ok(during.length > 10, `${during.length} messages to the other domains during the pause`)
    // After the pause busy.example comes back at half its concurrency, then opens up again.
    const afterPause = sink.events.filter((e) => e.domain === 'busy.example' && e.kind === 'rcpt' && e.at > refused.at + PAUSE_MS)
    assert.ok(afterPause.length >= 30, `${afterPause.length} to busy.example after the pause`)
  })
})

describe('DomainLimiter', () => {
  test('concurrency and rate per domain; a "too many" halves, pauses, stretches; accepted rounds restore', () => {
    const l = new DomainLimiter({ concurrency: 4, rate: 10, domains: { 'g.example': { concurrency: 2, rate: 1 } }, pauseMs: 1000 })
    const now = 1_000_000
    assert.equal(l.waitMs('a.example', now), 0)
    l.start('a.example', now)
    assert.equal(l.waitMs('a.example', now), 100) // 10/s
    assert.equal(l.waitMs('a.example', now + 100), 0)
    l.start('g.example', now)
    l.start('g.example', now + 1000)
    assert.equal(l.waitMs('g.example', now + 2000), Infinity) // 2 in flight: only an end opens a slot
    l.finish('g.example', 'throttled', now + 2000)
    assert.ok(l.paused('g.example', now + 2500))
    assert.equal(l.waitMs('g.example', now + 2000), 1000)
    l.finish('g.example', 'sent', now + 2000) // started before the "too many": no step back up
    assert.equal(l.waitMs('g.example', now + 3000), 0)
    l.start('g.example', now + 3000)
    assert.equal(l.waitMs('g.example', now + 3500), 1500, 'concurrency 2 → 1, and the 1 s interval doubled')
    l.finish('g.example', 'sent', now + 4000)
    assert.equal(l.inFlight('g.example'), 0)
    assert.equal(l.waitMs('g.example', now + 4000), 1000, 'the interval of the last start still holds')
    assert.equal(l.waitMs('g.example', now + 5000, 1), 1000, 'one round accepted after the pause: back to 2 and 1/s')
  })

  test('a domain at rest is forgotten', () => {
    const l = new DomainLimiter()
    l.start('a.example', 0)
    l.finish('a.example', 'sent', 1)
    assert.equal(l.inFlight('a.example'), 0)
    assert.equal(l.waitMs('a.example', 1), 0)
    assert.equal(l.waitMs('a.example', 1, 5), Infinity, 'five ahead fill the default concurrency')
  })

  test('isTooMany: 421, and 450/451/452 naming a limit; greylisting and mailbox errors are not', () => {
    for (const [code, reply] of [[421, '421 4.3.2 Service not available'], [451, '451 4.7.28 Our system has detected an unusual rate'], [450, '450 Too many connections from your IP'], [452, '452 4.3.1 Throttled: excessive volume']] as const) {
      assert.ok(isTooMany(code, reply), reply)
    }
    for (const [code, reply] of [[451, '451 4.7.1 Greylisted, please try again later'], [450, '450 4.2.0 Mailbox busy'], [550, '550 too many recipients'], [undefined, 'ECONNECTION: too many']] as const) {
      assert.ok(!isTooMany(code, reply), reply)
    }
  })
})

describe('--domain-concurrency and --domain-rate', () => {
  test('a default and overrides by domain, repeated or comma-separated, /s /m /h', () => {
    assert.deepEqual(parseDomainFlags(['3', 'gmail.com=2'], ['50/s,gmail.com=20', 'Yahoo.COM=600/m', 'slow.example=3600/h']), {
      concurrency: 3, rate: 50, domains: { 'gmail.com': { concurrency: 2, rate: 20 }, 'yahoo.com': { rate: 10 }, 'slow.example': { rate: 1 } },
    })
    assert.deepEqual(parseDomainFlags([], []), {})
  })

  test('invalid values name the flag and the rule', () => {
    assert.throws(() => parseDomainFlags(['0'], []), { code: 'RT_ERR_INVALID_OPTION', message: /--domain-concurrency must be a positive integer/ })
    assert.throws(() => parseDomainFlags([], ['fast']), { code: 'RT_ERR_INVALID_OPTION', message: /--domain-rate must be a positive rate like 20, 20\/s/ })
    assert.throws(() => parseDomainFlags([], ['not a domain=5']), { code: 'RT_ERR_INVALID_OPTION', message: /is not a domain name/ })
  })

  test('serve refuses a bad --domain-rate before it starts, exit 2', () => {
    const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url))
    const run = spawnSync(process.execPath, ['--import', 'tsx', cli, 'serve', '--port', '0', '--domain-rate', 'gmail.com=fast'], { encoding: 'utf8', timeout: 20_000 })
    assert.equal(run.status, 2, run.stderr)
    assert.match(run.stderr, /RT_ERR_INVALID_OPTION: --domain-rate must be a positive rate/)
  })
})
