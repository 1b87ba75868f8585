// A 100,000-recipient job (issue 4, RELIABILITY 25).
//
// 1. In a `rawtrigger serve` child against a real SMTP server in this process: the child's peak RSS
//    (VmHWM from /proc, Linux) stays bounded — no 100k promises or rendered messages at once. The
//    200 MB target is measured by scripts/bench-email.ts; this only guards against an unbounded
//    design, with 300 MB. Sending 100,000 messages takes longer than a test may (the raw nodemailer
//    pool does about 1,000/s on a 2-CPU machine), so by default the job runs for WINDOW_MS — a
//    design that holds everything at once shows at the start — and is then stopped with SIGTERM
//    (a clean exit mid-job). RAWTRIGGER_EMAIL_MEMORY_FULL=1 waits until every message is delivered.
// 2. The per-recipient bookkeeping of a 100,000-recipient job costs about what a 1,000-recipient
//    job's does: recording one recipient's outcome must not grow with the job's size.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { SqliteStore } from 'rawtrigger'
import { startServe } from './helpers/serve-process.ts'
import { startSmtpServer } from './helpers/smtp-server.ts'

const RECIPIENTS = 100_000
const PEAK_RSS_GUARD_MB = 300
const FULL = process.env.RAWTRIGGER_EMAIL_MEMORY_FULL === '1'
const WINDOW_MS = 20_000 // how long the job runs in the default mode
const FULL_TIMEOUT_MS = 600_000 // the full mode's guard
const POLL_MS = 250

/** Peak resident set size of a live process in MiB (VmHWM), or undefined off Linux. */
function peakRssMb (pid: number): number | undefined {
  const file = `/proc/${pid}/status`
  if (!existsSync(file)) return undefined
  const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(file, 'utf8'))?.[1]
  return kb === undefined ? undefined : Number(kb) / 1024
}

function tempDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rawtrigger-email-memory-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function recipients (n: number): Array<{ email: string, name: string }> {
  return Array.from({ length: n }, (_, i) => ({ email: `member${i}@big-list.example`, name: `Member Number ${i}` }))
}

test(`100,000 recipients through a serve child: peak RSS ≤ ${PEAK_RSS_GUARD_MB} MB${FULL ? ', all delivered' : ' while it runs'}`, { skip: process.platform !== 'linux' && 'needs /proc' }, async (t) => {
  const smtp = await startSmtpServer({ light: true }) // envelope and Message-ID only: 100k bodies are not kept
  t.after(() => smtp.close())
  const serve = await startServe(t, tempDir(t), ['--smtp', smtp.url, '--retry-base-ms', '50'])

  const started = Date.now()
  const res = await fetch(`${serve.url}/jobs/email`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      subject: 'News for {{name}}',
      text: 'Hello {{name}}, here is the news. '.repeat(20),
      html: '<p>Hello {{name}}, here is the news.</p>'.repeat(20),
      recipients: recipients(RECIPIENTS),
    }),
  })
  const accepted = await res.json() as { id: string, recipients: number }
  assert.equal(res.status, 202, JSON.stringify(accepted))
  assert.equal(accepted.recipients, RECIPIENTS)

  let peak = 0
  let state = ''
  const deadline = started + (FULL ? FULL_TIMEOUT_MS : WINDOW_MS)
  while (state !== 'done' && state !== 'failed' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    peak = Math.max(peak, peakRssMb(serve.pid) ?? 0)
    state = (await (await fetch(`${serve.url}/jobs/${accepted.id}`)).json() as { state: string }).state
  }
  peak = Math.max(peak, peakRssMb(serve.pid) ?? 0)
  const seconds = (Date.now() - started) / 1000
  const sent = smtp.delivered.length
  t.diagnostic(`${sent.toLocaleString('en')} of 100,000 delivered in ${seconds.toFixed(1)} s (${Math.round(sent / seconds)}/s); serve peak RSS ${peak.toFixed(0)} MB`)

  assert.ok(peak > 0, 'VmHWM was read')
  assert.ok(peak <= PEAK_RSS_GUARD_MB, `peak RSS ${peak.toFixed(0)} MB > ${PEAK_RSS_GUARD_MB} MB`)
  assert.equal(smtp.duplicates(), 0)
  if (FULL) {
    assert.equal(state, 'done')
    assert.equal(smtp.countByAddress().size, RECIPIENTS)
  } else {
    assert.ok(sent >= 100, `the job is under way: ${sent} delivered`)
    // Stopped mid-job: running work is handed back, and the process exits cleanly.
    serve.kill('SIGTERM')
    assert.equal((await serve.exited).code, 0)
  }
})

test('recording one recipient of a 100,000-recipient job costs about what it costs in a 1,000-recipient job', async (t) => {
  // Each sent message records its outcome (markItem). That must not grow with the size of the
  // job's payload: a cost per recipient that grows with the recipient count makes a 100,000-
  // recipient job quadratic. Same store, same number of marks, only the job's size differs.
  const MARKS = 1_000 // every recipient of the small job
  const timeMarks = async (n: number): Promise<number> => {
    const store = new SqliteStore(tempDir(t))
    try {
      const payload = { subject: 's', text: 't', from: 'a@x.org', recipients: recipients(n) }
      const { id } = await store.add({ type: 'email', payload, items: n })
      const job = await store.claim(['email'], 60_000)
      assert.equal(job?.id, id)
      const t0 = performance.now()
      for (let i = 0; i < MARKS; i++) await store.markItem(id, i, { state: 'done' })
      const ms = performance.now() - t0
      assert.equal((await store.get(id))?.sent, MARKS)
      return ms
    } finally {
      await store.close()
    }
  }
  await timeMarks(1_000) // warm-up: JIT, SQLite's first statements
  const small = Math.min(await timeMarks(1_000), await timeMarks(1_000))
  const large = Math.min(await timeMarks(RECIPIENTS), await timeMarks(RECIPIENTS))
  const ratio = large / small
  t.diagnostic(`markItem: ${(small / MARKS * 1000).toFixed(0)} µs per recipient with 1,000 recipients, ${(large / MARKS * 1000).toFixed(0)} µs with 100,000 (${ratio.toFixed(1)}×)`)
  assert.ok(ratio <= 3, `recording one outcome costs ${ratio.toFixed(1)}× more in a 100,000-recipient job (${(large / MARKS * 1000).toFixed(0)} µs vs ${(small / MARKS * 1000).toFixed(0)} µs)`)
})
