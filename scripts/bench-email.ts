// Benchmark of the bulk e-mail path (issue 4): from one trigger() of POST /jobs/email to the
// embedded sink's last 250 reply, for 1,000 and 10,000 recipients, beside
//   - raw nodemailer pooled sendMail (pool of 5, 100 messages per connection: rawtrigger's
//     defaults) to a startSink() in this same process — the ceiling; sender and sink share one
//     process, as they do inside `serve`;
//   - the seed app's naive loop: a new non-pooled transport per mail, one after the other, over 50
//     mails, extrapolated to 1,000 (labelled as such);
// then the peak RSS (VmHWM, Linux /proc) of a fresh `serve` child running a 100,000-recipient job.
// `serve` runs as a child from the compiled dist/ (`npm run build` first), as `npm start` runs it:
// `node dist/cli.js serve --port 0 --data-dir <tmp> --sink-port 0` (no --smtp, so it starts its
// embedded sink on a free port); `--source` runs src/cli.ts through tsx instead.
//
//   node --conditions=rawtrigger-source --import tsx scripts/bench-email.ts
//   node --conditions=rawtrigger-source --import tsx scripts/bench-email.ts --sizes 1000 --rss-recipients 0
//   node --conditions=rawtrigger-source --import tsx scripts/bench-email.ts --json > bench-email.json
//
// Progress goes to stderr, the table (or --json) to stdout.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import nodemailer, { type SendMailOptions } from 'nodemailer'
import { trigger } from 'rawtrigger'
import { startSink, type Sink } from '../src/smtp/sink.ts'
import { ROOT, startChild, type Child } from './kit/child.ts'
import { cli } from './kit/cli.ts'
import { getJson } from './kit/http.ts'
import { phase } from './kit/progress.ts'
import { sleep } from './kit/scope.ts'
import { procStatusMb } from './kit/system.ts'
import { aligned } from './kit/table.ts'

const HELP = `Usage: node --conditions=rawtrigger-source --import tsx scripts/bench-email.ts [options]

  --sizes LIST          recipients per job, comma-separated           (default 1000,10000)
  --warmup N            mails sent once on each path before measuring (default 200)
  --naive N             mails of the naive loop, then extrapolated    (default 50)
  --rss-recipients N    recipients of the peak-RSS job, 0 to skip     (default 100000)
  --rss-timeout-s S     stop waiting for that job after S seconds     (default 300)
  --source              run serve from the TypeScript source through tsx, not dist/
  --json                one JSON object instead of the table
  --help                this text`

const POOL = { maxConnections: 5, maxMessages: 100 } // createMailer's defaults
const POLL_MS = 10 // /mailbox polling while a job runs
const RSS_POLL_MS = 250
const JOB_TIMEOUT_MS = 600_000 // one measured job; a guard
const TARGET_1000_S = 0.5
const TARGET_RATIO = 0.8
const TARGET_RSS_MB = 200

const flags = cli('bench-email', HELP, {
  'sizes': { type: 'string', default: '1000,10000' },
  'warmup': { type: 'string', default: '200' },
  'naive': { type: 'string', default: '50' },
  'rss-recipients': { type: 'string', default: '100000' },
  'rss-timeout-s': { type: 'string', default: '300' },
  'json': { type: 'boolean', default: false },
  'source': { type: 'boolean', default: false },
})
const { values } = flags
const sizes = flags.ints('sizes', 1)
const warmup = flags.int('warmup', 0)
const naiveCount = flags.int('naive', 1)
const rssRecipients = flags.int('rss-recipients', 0)
const rssTimeoutMs = flags.int('rss-timeout-s', 1) * 1000
if (rssRecipients > 100_000) flags.usage('--rss-recipients is at most 100000 (the job limit)')

// ---------------------------------------------------------------- the message
const FROM = 'Shop <news@shop.example>'
const SUBJECT = 'A recommendation for {{name}}'
const TEXT = 'Hello {{name}},\n\nwe think you will like this. Sent to {{email}}.\n'
const HTML = '<p>Hello {{name}},</p><p>we think you will like this. Sent to {{email}}.</p>'

interface Person { email: string, name: string }
function people (n: number, tag: string): Person[] {
  return Array.from({ length: n }, (_, i) => ({ email: `${tag}${i}@list.example`, name: `Reader ${i}` }))
}

/** What rawtrigger sends to one recipient, built the same way, for the raw and naive runs. */
function message (p: Person, jobId: string, index: number): SendMailOptions {
  const fill = (s: string, html = false): string => s.replace(/\{\{(name|email)\}\}/g, (_, k: string) => {
    const v = k === 'name' ? p.name : p.email
    return html ? v.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`) : v
  })
  return { from: FROM, to: { name: p.name, address: p.email }, subject: fill(SUBJECT), text: fill(TEXT), html: fill(HTML, true), messageId: `<${jobId}.${index}@shop.example>` }
}

// ---------------------------------------------------------------- serve child
/** How serve starts: the compiled CLI (built once per run), or the source through tsx. */
let entry: string[] | undefined
function serveEntry (): string[] {
  if (entry !== undefined) return entry
  if (values.source) entry = ['--conditions=rawtrigger-source', '--import', 'tsx', 'src/cli.ts']
  else {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' })
    entry = ['dist/cli.js']
  }
  return entry
}

type Serve = Child & { url: string }
function startServe (dataDir: string): Promise<Serve> {
  return startChild([...serveEntry(), 'serve', '--port', '0', '--data-dir', dataDir, '--sink-port', '0', '--log-level', 'warn'], { name: 'serve' })
}

interface Mailbox { received: number, messages: Array<{ receivedAt: string }> }
interface JobView { state: string, sent: number, failed: number, total: number }

function fireJob (serve: Serve, id: string, recipients: Person[]): Promise<unknown> {
  // The job id is the trigger's webhook-id, so it is known without reading the answer.
  return trigger(`${serve.url}/jobs/email`, {
    headers: { 'webhook-id': id },
    body: { from: FROM, subject: SUBJECT, text: TEXT, html: HTML, recipients },
  })
}

/** One job through `serve`: trigger() → the sink's last 250, and the job's own account of it. */
async function measureServe (serve: Serve, n: number, tag: string): Promise<{ seconds: number, triggerMs: number, pollSeconds: number }> {
  const p = phase(`rawtrigger serve, ${n.toLocaleString('en')} mails`)
  const before = (await getJson<Mailbox>(`${serve.url}/mailbox?limit=1`)).received
  const recipients = people(n, tag)
  const id = `bench-${tag}-${Date.now()}`
  const start = Date.now()
  const t0 = performance.now()
  await fireJob(serve, id, recipients)
  const triggerMs = performance.now() - t0
  const deadline = Date.now() + JOB_TIMEOUT_MS
  let box: Mailbox
  for (;;) {
    box = await getJson<Mailbox>(`${serve.url}/mailbox?limit=1`)
    p.onProgress(box.received - before, n)
    if (box.received - before >= n) break
    if (Date.now() > deadline) throw new Error(`${box.received - before} of ${n} arrived after ${JOB_TIMEOUT_MS} ms`)
    await sleep(POLL_MS)
  }
  const pollSeconds = (Date.now() - start) / 1000
  // The sink stamps each message as its data ends, just before the 250: the newest stamp is the last 250.
  const last = Date.parse(box.messages[0]?.receivedAt ?? '')
  const seconds = (last - start) / 1000
  let job = await getJson<JobView>(`${serve.url}/jobs/${id}`)
  for (let i = 0; i < 500 && job.state !== 'done' && job.state !== 'failed'; i++) {
    await sleep(POLL_MS)
    job = await getJson<JobView>(`${serve.url}/jobs/${id}`)
  }
  if (job.state !== 'done' || job.sent !== n) throw new Error(`job ${id} ended ${job.state} with ${job.sent} of ${n} sent`)
  p.done(`${Math.round(n / seconds)} mails/s`)
  return { seconds, triggerMs, pollSeconds }
}

// ---------------------------------------------------------------- raw pool and naive loop
async function measureRaw (sink: Sink, n: number, tag: string): Promise<number> {
  const p = phase(`raw nodemailer pool, ${n.toLocaleString('en')} mails`)
  const transport = nodemailer.createTransport({ url: sink.url, pool: true, ...POOL })
  const recipients = people(n, tag)
  let done = 0
  const t0 = performance.now()
  await Promise.all(recipients.map(async (r, i) => {
    await transport.sendMail(message(r, `raw-${tag}`, i))
    if (++done % 250 === 0) p.onProgress(done, n)
  }))
  const seconds = (performance.now() - t0) / 1000
  transport.close()
  p.done(`${Math.round(n / seconds)} mails/s`)
  return seconds
}

async function measureNaive (sink: Sink, n: number): Promise<number> {
  const p = phase(`naive loop (new connection per mail, sequential), ${n} mails`)
  const recipients = people(n, 'naive')
  const t0 = performance.now()
  for (const [i, r] of recipients.entries()) {
    const transport = nodemailer.createTransport({ url: sink.url })
    await transport.sendMail(message(r, 'naive', i))
    transport.close()
    p.onProgress(i + 1, n)
  }
  const seconds = (performance.now() - t0) / 1000
  p.done(`${(n / seconds).toFixed(1)} mails/s`)
  return seconds
}

// ---------------------------------------------------------------- peak RSS
interface RssResult { recipients: number, startRssMb: number, peakRssMb: number, sent: number, seconds: number, finished: boolean }

async function measureRss (n: number): Promise<RssResult | undefined> {
  if (procStatusMb(process.pid, 'VmHWM') === undefined) {
    process.stderr.write('peak RSS skipped: no /proc/<pid>/status here\n')
    return undefined
  }
  const dataDir = mkdtempSync(join(os.tmpdir(), 'rawtrigger-bench-email-rss-'))
  const serve = await startServe(dataDir)
  try {
    const p = phase(`peak RSS, ${n.toLocaleString('en')}-recipient job in a fresh serve child`)
    const startRssMb = procStatusMb(serve.pid, 'VmRSS') ?? 0
    const id = `bench-rss-${Date.now()}`
    const t0 = Date.now()
    await fireJob(serve, id, people(n, 'rss'))
    let peak = startRssMb
    let job: JobView = { state: 'queued', sent: 0, failed: 0, total: n }
    while (Date.now() - t0 < rssTimeoutMs) {
      await sleep(RSS_POLL_MS)
      peak = Math.max(peak, procStatusMb(serve.pid, 'VmHWM') ?? 0)
      job = await getJson<JobView>(`${serve.url}/jobs/${id}`).catch(() => job)
      p.onProgress(job.sent + job.failed, n)
      if (job.state === 'done' || job.state === 'failed') break
    }
    peak = Math.max(peak, procStatusMb(serve.pid, 'VmHWM') ?? 0)
    const seconds = (Date.now() - t0) / 1000
    const finished = job.state === 'done' && job.sent === n
    p.done(`${peak.toFixed(0)} MB peak; ${job.sent.toLocaleString('en')} of ${n.toLocaleString('en')} sent${finished ? '' : ' (stopped waiting)'}`)
    return { recipients: n, startRssMb, peakRssMb: peak, sent: job.sent, seconds, finished }
  } finally {
    await serve.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------- run
interface SizeResult { mails: number, serveSeconds: number, serveRate: number, triggerMs: number, rawSeconds: number, rawRate: number, ratio: number }

const sink = await startSink({ port: 0 })
const dataDir = mkdtempSync(join(os.tmpdir(), 'rawtrigger-bench-email-'))
const serve = await startServe(dataDir)
const results: SizeResult[] = []
let naiveSeconds = 0
let rss: RssResult | undefined
try {
  if (warmup > 0) {
    const p = phase(`warm-up, ${warmup} mails on each path`)
    await measureRaw(sink, warmup, 'warm-raw')
    await measureServe(serve, warmup, 'warm-serve')
    p.done('done')
  }
  for (const n of sizes) {
    const raw = await measureRaw(sink, n, `raw${n}-`)
    const s = await measureServe(serve, n, `serve${n}-`)
    results.push({
      mails: n, serveSeconds: s.seconds, serveRate: n / s.seconds, triggerMs: s.triggerMs,
      rawSeconds: raw, rawRate: n / raw, ratio: (n / s.seconds) / (n / raw),
    })
  }
  naiveSeconds = await measureNaive(sink, naiveCount)
} finally {
  await serve.stop()
  await sink.close()
  rmSync(dataDir, { recursive: true, force: true })
}
if (rssRecipients > 0) rss = await measureRss(rssRecipients)

const naiveRate = naiveCount / naiveSeconds
const one = results.find((r) => r.mails === 1000)
const targets = [
  ...(one === undefined ? [] : [{ target: `1,000 mails ≤ ${TARGET_1000_S} s`, value: `${one.serveSeconds.toFixed(2)} s`, met: one.serveSeconds <= TARGET_1000_S }]),
  ...results.map((r) => ({ target: `≥ ${TARGET_RATIO}× raw pool rate, ${r.mails.toLocaleString('en')} mails`, value: `${r.ratio.toFixed(2)}×`, met: r.ratio >= TARGET_RATIO })),
  ...(rss === undefined ? [] : [{
    target: `peak RSS ≤ ${TARGET_RSS_MB} MB, ${rss.recipients.toLocaleString('en')}-recipient job`,
    value: `${rss.peakRssMb.toFixed(0)} MB${rss.finished ? '' : ` (job unfinished: ${rss.sent.toLocaleString('en')} sent in ${rss.seconds.toFixed(0)} s)`}`,
    met: rss.peakRssMb <= TARGET_RSS_MB && rss.finished,
  }]),
]
const machine = { node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', loadavg: os.loadavg().map((l) => Number(l.toFixed(2))) }

if (values.json) {
  process.stdout.write(`${JSON.stringify({
    machine, pool: POOL, sizes: results,
    naive: { measured: naiveCount, seconds: naiveSeconds, rate: naiveRate, extrapolated1000Seconds: 1000 / naiveRate },
    rss: rss ?? null, targets,
  }, null, 2)}\n`)
} else {
  const rows: string[][] = [['', 'mails', 'time', 'mails/s', 'vs raw pool']]
  for (const r of results) {
    rows.push([`rawtrigger: trigger → last 250`, r.mails.toLocaleString('en'), `${r.serveSeconds.toFixed(2)} s`, Math.round(r.serveRate).toLocaleString('en'), `${r.ratio.toFixed(2)}×`])
    rows.push([`raw nodemailer pool (ceiling)`, r.mails.toLocaleString('en'), `${r.rawSeconds.toFixed(2)} s`, Math.round(r.rawRate).toLocaleString('en'), '1.00×'])
  }
  const ref = results[0]
  rows.push([`naive loop, measured`, String(naiveCount), `${naiveSeconds.toFixed(2)} s`, naiveRate.toFixed(1), ref === undefined ? '' : `${(naiveRate / ref.rawRate).toFixed(3)}×`])
  rows.push([`naive loop, EXTRAPOLATED`, '1,000', `${(1000 / naiveRate).toFixed(1)} s`, naiveRate.toFixed(1), ''])
  const out = [
    `E-mail: trigger to last 250 — embedded sink (smtp-server), pool of ${POOL.maxConnections}, ${POOL.maxMessages} messages per connection`,
    `Node ${machine.node}, ${machine.cpus} × ${machine.cpu}, load ${machine.loadavg.join(' ')}`,
    'serve: a child process with its sink in-process; raw pool and naive loop: this process, sink in-process too',
    '',
    ...aligned(rows, (c) => c > 0, '   '),
    '',
    ...(results.map((r) => `trigger() blocked the caller ${r.triggerMs.toFixed(1)} ms for the ${r.mails.toLocaleString('en')}-recipient job`)),
    ...(rss === undefined ? [] : [`peak RSS of serve, ${rss.recipients.toLocaleString('en')}-recipient job: ${rss.peakRssMb.toFixed(0)} MB (${rss.startRssMb.toFixed(0)} MB at start); ` +
      `${rss.sent.toLocaleString('en')} sent in ${rss.seconds.toFixed(0)} s${rss.finished ? '' : ' — stopped waiting, job unfinished'}`]),
    '',
    'Targets',
    ...targets.map((t) => `  ${t.met ? 'met    ' : 'NOT MET'}  ${t.target}: ${t.value}`),
  ]
  process.stdout.write(`${out.join('\n')}\n`)
}
