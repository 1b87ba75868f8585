// kill -9 of a `rawtrigger serve` child in the middle of an e-mail job, then a restart on the same
// data directory (issue 4, RELIABILITY 16 and 23): every recipient gets the message, at most one
// duplicate per message in flight (≤ pool size), the duplicates carry the same Message-ID, the job
// ends "done". The child is `node --import tsx src/cli.ts serve` (test/helpers/serve-process.ts),
// so SIGKILL hits the server itself; the SMTP server is a real smtp-server in this process.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { startServe, type ServeProcess } from './helpers/serve-process.ts'
import { startSmtpServer } from './helpers/smtp-server.ts'

const RECIPIENTS = 2_000
const POOL_SIZE = 5 // --smtp-max-connections, the default: also the messages in flight
const KILL_AFTER = 400 // deliveries before the kill: well inside the job
const JOB_TIMEOUT_MS = 60_000 // 2,000 local messages take a few seconds; a guard only
const POLL_MS = 50

interface JobView { state: string, total: number, sent: number, failed: number, pending: number, attempts: number, errors: unknown[] }

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function jobView (serve: ServeProcess, id: string): Promise<JobView> {
  const res = await fetch(`${serve.url}/jobs/${id}`)
  assert.equal(res.status, 200)
  return await res.json() as JobView
}

function tempDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rawtrigger-email-process-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('kill -9 mid-job, restart: all delivered, duplicates ≤ pool size with the same Message-ID, job done', async (t) => {
  // 2 ms before each 250: the job takes long enough for the kill to land in its middle.
  const smtp = await startSmtpServer({ faults: { dataDelayMs: 2 } })
  t.after(() => smtp.close())
  const dataDir = tempDir(t)
  const args = ['--smtp', smtp.url, '--retry-base-ms', '50', '--smtp-max-connections', String(POOL_SIZE)]
  const first = await startServe(t, dataDir, args)

  const recipients = Array.from({ length: RECIPIENTS }, (_, i) => ({ email: `reader${i}@list.example`, name: `Reader ${i}` }))
  const res = await fetch(`${first.url}/jobs/email`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ from: 'News <news@news.example>', subject: 'Hi {{name}}', text: 'Dear {{name}}', recipients }),
  })
  const accepted = await res.json() as { id: string, recipients: number }
  assert.equal(res.status, 202, JSON.stringify(accepted))
  assert.equal(accepted.recipients, RECIPIENTS)

  await smtp.waitForDelivered(KILL_AFTER, JOB_TIMEOUT_MS)
  first.kill('SIGKILL')
  const exit = await first.exited
  assert.equal(exit.signal, 'SIGKILL')
  const atKill = smtp.delivered.length
  assert.ok(atKill < RECIPIENTS, `the kill came too late: ${atKill} of ${RECIPIENTS} already delivered`)

  const second = await startServe(t, dataDir, args)
  const deadline = Date.now() + JOB_TIMEOUT_MS
  let job = await jobView(second, accepted.id)
  while (job.state !== 'done' && job.state !== 'failed') {
    if (Date.now() > deadline) assert.fail(`job not finished after restart: ${JSON.stringify(job)}`)
    await sleep(POLL_MS)
    job = await jobView(second, accepted.id)
  }
  assert.equal(job.state, 'done', JSON.stringify(job))
  assert.deepEqual([job.total, job.sent, job.failed, job.pending], [RECIPIENTS, RECIPIENTS, 0, 0])
  assert.ok(job.attempts >= 2, 'the job ran again after the restart')

  const counts = smtp.countByAddress()
  const missing = recipients.filter((r) => !counts.has(r.email)).map((r) => r.email)
  assert.deepEqual(missing, [], 'every recipient got the message')
  const duplicates = smtp.duplicates()
  assert.ok(duplicates <= POOL_SIZE, `duplicates: ${duplicates} (pool size ${POOL_SIZE})`)
  // A resend after the crash carries the same Message-ID, so a receiver can spot it.
  const ids = new Map<string, Set<string>>()
  for (const m of smtp.delivered) {
    const address = m.rcpt[0] as string
    const set = ids.get(address) ?? new Set<string>()
    set.add(m.messageId)
    ids.set(address, set)
  }
  recipients.forEach((r, index) => {
    assert.deepEqual([...(ids.get(r.email) ?? [])], [`<${accepted.id}.${index}@news.example>`], r.email)
  })
  t.diagnostic(`delivered before the kill: ${atKill}; duplicates after restart: ${duplicates}; runs: ${job.attempts}`)

  second.kill('SIGTERM')
  const stopped = await second.exited
  assert.equal(stopped.code, 0, 'SIGTERM: a clean exit')
})
