// The seed's scenario end to end: a web app starts a 1,000-recipient campaign without making
// anyone wait. This script plays the app; `rawtrigger serve` runs as a child process (receiver,
// SQLite queue, worker, embedded SMTP sink), so the worker is visibly another process.
//
//   npm run demo                           # 1,000 recipients, a progress bar, a summary
//   npm run demo -- --recipients 5000      # more
//   npm run demo -- --json                 # one JSON object on stdout, nothing else
//   npm run demo -- --keep                 # leave the server up and open its web page; Ctrl-C stops it
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MAX_RECIPIENTS, trigger, type JobView } from 'rawtrigger'
import { createProgress } from './demo/progress.ts'
import { cli } from './kit/cli.ts'
import { startServeChild, type ServeChild } from './demo/serve-child.ts'
import { sleep } from './kit/scope.ts'
import { measureSyncLoop } from './demo/sync-loop.ts'

const HELP = `Usage: npm run demo -- [options]

Starts \`rawtrigger serve\` as a child process with its embedded SMTP sink, fires ONE trigger over a
raw socket for a campaign, shows the worker's progress, and counts what the sink received.

  --recipients <n>  recipients of the campaign (default 1000, at most ${MAX_RECIPIENTS})
  --json            print one JSON summary on stdout instead of the report
  --keep            leave the server running afterwards and print its web page's URL;
                    Ctrl-C stops it
  -h, --help        this text
`
/** The whole run, start to summary, must end within this (the issue: never over 60 s). */
const DEADLINE_MS = 55_000
/** GET /jobs/:id while the campaign runs. */
const POLL_MS = 100
/** Triggers with the campaign's body to /healthz before the measured one: a running app is warm. */
const WARMUP_TRIGGERS = 3
/** E-mails of the synchronous-loop sample; the rest is extrapolated. */
const SYNC_SAMPLE = 20

const flags = cli('demo', HELP, {
  recipients: { type: 'string', default: '1000' },
  json: { type: 'boolean', default: false },
  keep: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
})
const { values } = flags
const total = flags.int('recipients', 1, undefined, MAX_RECIPIENTS)
const json = values.json
const say = (line = ''): void => { if (!json) process.stdout.write(line + '\n') }
const n = (x: number): string => x.toLocaleString('en-US')
const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
async function getJson<T> (url: string): Promise<{ status: number, body: T }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
  return { status: res.status, body: await res.json() as T }
}

/** Polls GET /jobs/:id until the job ended; 404 at first is normal: the trigger's job is not stored yet. */
async function follow (serve: ServeChild, id: string, deadline: number): Promise<JobView> {
  const progress = createProgress(json ? 'none' : process.stdout.isTTY ? 'bar' : 'lines', total)
  try {
    for (;;) {
      const { status, body } = await getJson<JobView>(`${serve.url}/jobs/${id}`)
      if (status === 200) {
        progress.update(body)
        if (body.state === 'done' || body.state === 'failed' || body.state === 'cancelled') return body
      } else if (status === 404) {
        progress.update({ state: 'queued', sent: 0, failed: 0, total })
      } else {
        throw new Error(`GET /jobs/${id}: HTTP ${status} ${JSON.stringify(body)}`)
      }
      if (Date.now() > deadline) throw new Error(`the campaign did not finish within ${DEADLINE_MS / 1000} s`)
      await sleep(POLL_MS)
    }
  } finally {
    progress.stop()
  }
}

async function run (serve: ServeChild, deadline: number): Promise<Record<string, unknown>> {
  say(`rawtrigger demo: a campaign to ${n(total)} recipients, everything on this machine\n`)
  say(`  app      this script, pid ${process.pid}`)
  say(`  worker   rawtrigger serve, pid ${serve.pid}: ${serve.url} (SQLite queue, SMTP sink ${serve.smtpUrl})\n`)

  const sample = Math.min(SYNC_SAMPLE, total)
  say('1. The synchronous way: the request handler sends every e-mail before it answers')
  const sync = await measureSyncLoop(serve.smtpUrl, sample)
  const syncMs = sync.perEmailMs * total
  say(`     ${sample} e-mails, a new SMTP connection each, one after the other: ${sync.sampleMs.toFixed(0)} ms, ${sync.perEmailMs.toFixed(1)} ms per e-mail`)
  say(`     (${sync.greetingMs.toFixed(0)} ms of each is the wait for the server's greeting: smtp-server holds it 100 ms to catch`)
  say('     clients that talk too early; a remote server costs network round trips and TLS instead)')
  say(`     for ${n(total)} recipients the user would wait ≈ ${seconds(syncMs)} (extrapolated from ${sample})\n`)

  const before = (await getJson<{ received: number }>(`${serve.url}/mailbox?limit=1`)).body.received
  const id = `demo_${randomUUID().replaceAll('-', '')}`
  const recipients = Array.from({ length: total }, (_, i) => ({ email: `person${i + 1}@example.org`, name: `Person ${i + 1}` }))
  const body = { subject: 'Hello {{name}}', text: 'Hi {{name}},\n\nthe spring newsletter is out.\n\nThe rawtrigger demo\n', recipients }
  say('2. The rawtrigger way: one fire-and-forget trigger, its answer never read')
  // A fresh process compiles the trigger's code path (connect, JSON, write) on its first calls; an
  // app that has been running did so long ago. Warm it up with the same body sent to /healthz
  // (which stores nothing), and show the cold number too.
  const warmups: number[] = []
  for (let i = 0; i < WARMUP_TRIGGERS; i++) warmups.push((await trigger(`${serve.url}/healthz`, { body })).totalMs)
  const coldUs = Math.round((warmups[0] ?? 0) * 1000)
  const startedAt = Date.now()
  // The receiver uses the trigger's webhook-id as the job id: how the app knows it without reading.
  const fired = await trigger(`${serve.url}/jobs/email`, { body, headers: { 'webhook-id': id } })
  const blockedUs = fired.totalMs * 1000
  say(`     POST /jobs/email, ${(fired.bytes / 1024).toFixed(1)} KiB over a raw socket: the caller was blocked for ${n(Math.round(blockedUs))} µs`)
  say(`     (connect ${n(Math.round(fired.connectMs * 1000))} µs), then free; job id ${id}`)
  say(`     (measured after ${WARMUP_TRIGGERS} warm-up triggers to /healthz; the process's first, cold one took ${n(coldUs)} µs)\n`)

  say(`3. The worker (pid ${serve.pid}) sends, after the socket has closed`)
  const job = await follow(serve, id, deadline)
  // Counted where the mail arrived, not by the sender.
  let received = before
  for (let i = 0; i < 50 && received - before < job.sent; i++) {
    received = (await getJson<{ received: number }>(`${serve.url}/mailbox?limit=1`)).body.received
    if (received - before < job.sent) await sleep(20)
  }
  const delivered = received - before
  const finishedAt = job.finishedAt === undefined ? Date.now() : Date.parse(job.finishedAt)
  const elapsedMs = Math.max(finishedAt - startedAt, 1)
  const perSecond = Math.round(delivered / (elapsedMs / 1000))
  const errors = job.errors.slice(0, 5).map((e) => `${e.index === undefined ? 'job' : `#${e.index}`}: ${e.message}`)

  say('\nSummary')
  say(`  delivered   ${n(delivered)}/${n(total)}, counted by the SMTP sink (GET /mailbox), not by the sender`)
  say(`  failed      ${n(job.failed)}${errors.length > 0 ? `: ${errors.join('; ')}` : ''}`)
  say(`  elapsed     ${seconds(elapsedMs)} from the trigger to the last e-mail, ${n(perSecond)} e-mails/s`)
  say(`  the caller  blocked ${n(Math.round(blockedUs))} µs, against ≈ ${seconds(syncMs)} for the synchronous loop (extrapolated)`)
  say(`  look at     ${serve.url}/mailbox (the caught e-mails) and ${serve.url}/jobs/${id}`)
  if (!values.keep) say('              (the server stops when the demo ends: add --keep to browse them and the web page)')
  return {
    ok: delivered === total && job.state === 'done',
    recipients: total,
    delivered,
    countedBy: 'sink',
    failed: job.failed,
    state: job.state,
    jobId: id,
    demoPid: process.pid,
    servePid: serve.pid,
    trigger: { blockedUs: Math.round(blockedUs), connectUs: Math.round(fired.connectMs * 1000), bytes: fired.bytes, warmups: WARMUP_TRIGGERS, coldUs },
    syncLoop: {
      sample, sampleMs: Math.round(sync.sampleMs), perEmailMs: Number(sync.perEmailMs.toFixed(3)), greetingMs: Number(sync.greetingMs.toFixed(1)),
      extrapolatedMs: Math.round(syncMs), extrapolated: true,
    },
    elapsedMs,
    perSecond,
    mailboxUrl: `${serve.url}/mailbox`,
    webUrl: `${serve.url}/`,
    kept: values.keep,
  }
}

const dataDir = mkdtempSync(join(tmpdir(), 'rawtrigger-demo-'))
let serve: ServeChild | undefined
let signalled = false
let cleaned: Promise<void> | undefined
const cleanup = (): Promise<void> => (cleaned ??= (async () => {
  await serve?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})())

// The child runs in its own process group, so a terminal's Ctrl-C reaches only this process:
// the child gets exactly one SIGTERM from cleanup() and stops gracefully.
function onSignal (signal: NodeJS.Signals): void {
  if (signalled) return
  signalled = true
  say(`\n${signal}: stopping the server (pid ${serve?.pid ?? '-'})`)
  void cleanup().then(() => process.exit(values.keep ? 0 : 130))
}

async function main (): Promise<number> {
  const guard = setTimeout(() => {
    process.stderr.write(`demo: over ${DEADLINE_MS / 1000} s, giving up\n`)
    void cleanup().then(() => process.exit(1))
  }, DEADLINE_MS)
  try {
    serve = await startServeChild(dataDir)
    const summary = await run(serve, Date.now() + DEADLINE_MS - 5_000)
    clearTimeout(guard)
    if (json) process.stdout.write(JSON.stringify(summary) + '\n')
    if (values.keep) {
      say(`\nThe server keeps running (pid ${serve.pid}). The web page: ${serve.url}/`)
      say('Press Ctrl-C to stop it.')
      const how = await serve.exited // until Ctrl-C, or the server ends on its own
      if (signalled) return new Promise<number>(() => {}) // onSignal exits once the cleanup is done
      process.stderr.write(`demo: the server ended on its own (${how})\n`)
      await cleanup()
      return 1
    }
    await cleanup()
    say(`\nStopped the server (pid ${serve.pid}) and removed ${dataDir}.`)
    return summary.ok === true ? 0 : 1
  } catch (err) {
    clearTimeout(guard)
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`)
    if (serve !== undefined) process.stderr.write(`serve's log (end):\n${serve.stderr()}\n`)
    await cleanup()
    return 1
  }
}

process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)
process.exitCode = await main()
