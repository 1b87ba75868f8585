// Benchmark of the bulk e-mail path (issue 4): from one trigger() of POST /jobs/email to the
// embedded sink's last 250 reply, for 1,000 and 10,000 recipients, beside
//   - raw nodemailer pooled sendMail (pool of 5, 100 messages per connection: rawtrigger's
//     defaults) to a startSink() in this same process — the ceiling; sender and sink share one
//     process, as they do inside `serve`;
//   - the seed app's naive loop: a new non-pooled transport per mail, one after the other, over 50
//     mails, extrapolated to 1,000 (labelled as such);
// then the worker's CPU per e-mail (a second serve child sending to this process's sink with
// --smtp, so its CPU is the worker's and not the sink's), then the peak RSS (VmHWM, Linux /proc)
// of a fresh `serve` child running a 100,000-recipient job. Sizes and CPU are measured --runs
// times; the tables and issue 14's targets use the medians.
// `serve` runs as a child from the compiled dist/ (`npm run build` first), as `npm start` runs it:
// `node dist/cli.js serve --port 0 --data-dir <tmp> --sink-port 0` (no --smtp, so it starts its
// embedded sink on a free port); `--source` runs src/cli.ts through tsx instead.
//
//   node --conditions=rawtrigger-source --import tsx scripts/bench-email.ts [--sizes 1000 --rss-recipients 0] [--json]
// Progress goes to stderr, the table (or --json) to stdout.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { trigger } from 'rawtrigger'
import { startSink } from '../src/smtp/sink.ts'
import { ROOT, startChild, type Child } from './kit/child.ts'
import { cli } from './kit/cli.ts'
import { getJson } from './kit/http.ts'
import { phase } from './kit/progress.ts'
import { sleep } from './kit/scope.ts'
import { median } from './kit/stats.ts'
import { processCpuUs, procStatusMb } from './kit/system.ts'
import { FROM, HTML, measureNaive, measureRaw, people, POOL, SUBJECT, TEXT, type Person } from './bench-email/nodemailer-paths.ts'
import { render, targets, type CpuResult, type RssResult, type SizeResult } from './bench-email/report.ts'

const HELP = `Usage: node --conditions=rawtrigger-source --import tsx scripts/bench-email.ts [options]

  --sizes LIST          recipients per job, comma-separated           (default 1000,10000)
  --warmup N            mails sent once on each path before measuring (default 200)
  --naive N             mails of the naive loop, then extrapolated    (default 50)
  --runs N              repeat the sizes and the CPU job; medians      (default 3)
  --cpu-mails N         recipients of the worker-CPU job, 0 to skip   (default 5000)
  --rss-recipients N    recipients of the peak-RSS job, 0 to skip     (default 100000)
  --rss-timeout-s S     stop waiting for that job after S seconds     (default 300)
  --source              run serve from the TypeScript source through tsx, not dist/
  --json                one JSON object instead of the table
  --help                this text`

const POLL_MS = 10 // /mailbox polling while a job runs
const RSS_POLL_MS = 250
const CPU_POLL_MS = 50 // the sink is counted in this process; the job is asked only once it is all in
const JOB_TIMEOUT_MS = 600_000 // one measured job; a guard

const flags = cli('bench-email', HELP, {
  'sizes': { type: 'string', default: '1000,10000' },
  'warmup': { type: 'string', default: '200' },
  'naive': { type: 'string', default: '50' },
  'runs': { type: 'string', default: '3' },
  'cpu-mails': { type: 'string', default: '5000' },
  'rss-recipients': { type: 'string', default: '100000' },
  'rss-timeout-s': { type: 'string', default: '300' },
  'json': { type: 'boolean', default: false },
  'source': { type: 'boolean', default: false },
})
const { values } = flags
const sizes = flags.ints('sizes', 1)
const warmup = flags.int('warmup', 0)
const naiveCount = flags.int('naive', 1)
const runs = flags.int('runs', 1)
const cpuMails = flags.int('cpu-mails', 0)
const rssRecipients = flags.int('rss-recipients', 0)
const rssTimeoutMs = flags.int('rss-timeout-s', 1) * 1000
if (rssRecipients > 100_000) flags.usage('--rss-recipients is at most 100000 (the job limit)')

// ---------------------------------------------------------------- serve child
/**
 * How serve starts: as `npx rawtrigger serve` does, the bin run by its shebang (with its node
 * flags) on the compiled CLI, built once per run; or the source through tsx.
 */
let entry: { program?: string, argv: string[] } | undefined
function serveEntry (): { program?: string, argv: string[] } {
  if (entry !== undefined) return entry
  if (values.source) entry = { argv: ['--conditions=rawtrigger-source', '--import', 'tsx', 'src/cli.ts'] }
  else {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' })
    entry = { program: join(ROOT, 'bin', 'rawtrigger.js'), argv: [] }
  }
  return entry
}

type Serve = Child & { url: string }
function startServe (dataDir: string, extra: readonly string[] = []): Promise<Serve> {
  const { program, argv } = serveEntry()
  return startChild([...argv, 'serve', '--port', '0', '--data-dir', dataDir, '--sink-port', '0', '--log-level', 'warn', ...extra], { name: 'serve', ...(program === undefined ? {} : { program }) })
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

// ---------------------------------------------------------------- peak RSS
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

// ---------------------------------------------------------------- worker CPU
/** serve sends to this process's sink (--smtp): its CPU over the job is the worker's, not the sink's. */
async function measureCpu (n: number): Promise<number> {
  const dir = mkdtempSync(join(os.tmpdir(), 'rawtrigger-bench-email-cpu-'))
  const child = await startServe(dir, ['--smtp', sink.url])
  try {
    const p = phase(`worker CPU, ${n.toLocaleString('en')} mails from serve to this process's sink`)
    const before = sink.received()
    const id = `bench-cpu-${Date.now()}`
    const cpu0 = processCpuUs(child.pid)
    await fireJob(child, id, people(n, 'cpu'))
    let job: JobView = { state: 'queued', sent: 0, failed: 0, total: n }
    const deadline = Date.now() + JOB_TIMEOUT_MS
    while (job.state !== 'done' && job.state !== 'failed' && Date.now() < deadline) {
      await sleep(CPU_POLL_MS)
      p.onProgress(sink.received() - before, n)
      if (sink.received() - before >= n) job = await getJson<JobView>(`${child.url}/jobs/${id}`)
    }
    const msPerMail = (processCpuUs(child.pid) - cpu0) / 1000 / n
    if (job.state !== 'done' || job.sent !== n) throw new Error(`job ${id} ended ${job.state} with ${job.sent} of ${n} sent`)
    p.done(`${msPerMail.toFixed(3)} ms CPU per mail`)
    return msPerMail
  } finally {
    await child.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------- run
const sink = await startSink({ port: 0 })
const dataDir = mkdtempSync(join(os.tmpdir(), 'rawtrigger-bench-email-'))
const serve = await startServe(dataDir)
const perSize = new Map<number, Array<{ serve: { seconds: number, triggerMs: number }, raw: number }>>()
const cpuRuns: number[] = []
let naiveSeconds = 0
let rss: RssResult | undefined
try {
  if (warmup > 0) {
    const p = phase(`warm-up, ${warmup} mails on each path`)
    await measureRaw(sink, warmup, 'warm-raw')
    await measureServe(serve, warmup, 'warm-serve')
    p.done('done')
  }
  for (let run = 0; run < runs; run++) {
    for (const n of sizes) {
      const raw = await measureRaw(sink, n, `raw${n}-${run}-`)
      const s = await measureServe(serve, n, `serve${n}-${run}-`)
      perSize.set(n, [...(perSize.get(n) ?? []), { serve: s, raw }])
    }
  }
  naiveSeconds = await measureNaive(sink, naiveCount)
  await serve.stop()
  for (let run = 0; run < runs && cpuMails > 0; run++) cpuRuns.push(await measureCpu(cpuMails))
} finally {
  await serve.stop()
  await sink.close()
  rmSync(dataDir, { recursive: true, force: true })
}
if (rssRecipients > 0) rss = await measureRss(rssRecipients)

const results: SizeResult[] = [...perSize].map(([mails, all]) => {
  const serveSeconds = median(all.map((r) => r.serve.seconds))
  const rawSeconds = median(all.map((r) => r.raw))
  return {
    mails, runs: all.length, serveSeconds, serveRate: mails / serveSeconds, triggerMs: median(all.map((r) => r.serve.triggerMs)),
    rawSeconds, rawRate: mails / rawSeconds, ratio: median(all.map((r) => r.raw / r.serve.seconds)),
  }
})
const cpu: CpuResult | undefined = cpuRuns.length === 0 ? undefined : { mails: cpuMails, runs: cpuRuns.length, msPerMail: median(cpuRuns) }
const goals = targets(results, cpu, rss)
const machine = { node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', loadavg: os.loadavg().map((l) => Number(l.toFixed(2))) }

if (values.json) {
  process.stdout.write(`${JSON.stringify({
    machine, pool: POOL, runs, sizes: results,
    naive: { measured: naiveCount, seconds: naiveSeconds, rate: naiveCount / naiveSeconds, extrapolated1000Seconds: 1000 * naiveSeconds / naiveCount },
    cpu: cpu ?? null, rss: rss ?? null, targets: goals,
  }, null, 2)}\n`)
} else {
  process.stdout.write(render({
    header: [
      `E-mail: trigger to last 250 — embedded sink (smtp-server), pool of ${POOL.maxConnections}, ${POOL.maxMessages} messages per connection; medians of ${runs} runs`,
      `Node ${machine.node}, ${machine.cpus} × ${machine.cpu}, load ${machine.loadavg.join(' ')}`,
      'serve: a child process with its sink in-process; raw pool and naive loop: this process, sink in-process too',
    ],
    sizes: results, naive: { count: naiveCount, seconds: naiveSeconds }, cpu, rss, targets: goals,
  }))
}
