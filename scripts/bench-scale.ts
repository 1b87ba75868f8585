// Scale-out benchmark (issue 6): e-mails per second with 1, 2 and 4 `serve` worker processes that
// share one Redis through BullMQ, all sending to one SMTP sink. One more `serve --concurrency 0`
// only receives the trigger and stores the job; the workers split it in chunks. Measured from the
// trigger (fire-and-forget, `webhook-id` = job id) to the sink counting the job's last message.
//
//   node --conditions=rawtrigger-source --import tsx scripts/bench-scale.ts
//   node --conditions=rawtrigger-source --import tsx scripts/bench-scale.ts --runs 3          # medians (BENCHMARKS.md)
//   node --conditions=rawtrigger-source --import tsx scripts/bench-scale.ts --workers 1,2 --recipients 2000 --json
//
// Needs Redis (REDIS_URL or --redis, default redis://127.0.0.1:6379). Every key lives under a fresh
// prefix `rtbench-<hex>`, deleted at the end (SCAN + DEL), also after Ctrl-C. The sink is
// startSink() in this process; the children are `node --import tsx src/cli.ts serve …`.
// Progress goes to stderr, the table (or --json) to stdout.
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { Redis } from 'ioredis'
import { trigger } from 'rawtrigger'
import { startSink, type Sink } from '../src/smtp/sink.ts'
import { serveArgv, startChild, type Child } from './kit/child.ts'
import { cli } from './kit/cli.ts'
import { waitUp } from './kit/http.ts'
import { phase, type OnProgress } from './kit/progress.ts'
import { deleteKeys, redisInfo, redisUrl, shownUrl } from './kit/redis.ts'
import { closeAll, closeOnSignals, Scope, sleep } from './kit/scope.ts'
import { median } from './kit/stats.ts'
import { cpus, hostCpuUs, ownCpuUs, processCpuUs } from './kit/system.ts'
import { markdown } from './kit/table.ts'

const HELP = `Usage: node --conditions=rawtrigger-source --import tsx scripts/bench-scale.ts [options]

E-mails/s of one bulk e-mail job with N worker processes sharing one Redis (BullMQ), one sink.

  --workers LIST        worker process counts, comma-separated            (default 1,2,4)
  --recipients N        recipients of the measured job                    (default 10000)
  --chunk-size N        recipients per BullMQ job (serve --chunk-size)    (default 200)
  --concurrency N       chunks each worker runs at once (serve --concurrency) (default 1)
  --warmup N            recipients of an unmeasured job first, per phase  (default 1000)
  --runs N              repeat every phase; the table shows medians       (default 1)
  --redis URL           Redis to use                  (default $REDIS_URL or redis://127.0.0.1:6379)
  --timeout-s S         give up on one job after S seconds                (default 600)
  --json                one JSON object instead of the table
  --help                this text`

const POLL_MS = 5 // sink count polling while a job runs

const flags = cli('bench-scale', HELP, {
  'workers': { type: 'string', default: '1,2,4' },
  'recipients': { type: 'string', default: '10000' },
  'chunk-size': { type: 'string', default: '200' },
  'concurrency': { type: 'string', default: '1' },
  'warmup': { type: 'string', default: '1000' },
  'runs': { type: 'string', default: '1' },
  'redis': { type: 'string' },
  'timeout-s': { type: 'string', default: '600' },
  'json': { type: 'boolean', default: false },
})
const WORKERS = flags.ints('workers', 1)
const RECIPIENTS = flags.int('recipients', 1)
const CHUNK_SIZE = flags.int('chunk-size', 1)
const CONCURRENCY = flags.int('concurrency', 1)
const WARMUP = flags.int('warmup', 0)
const RUNS = flags.int('runs', 1)
const TIMEOUT_MS = flags.int('timeout-s', 1) * 1000
const REDIS_URL = redisUrl(flags.values.redis, 'redis://127.0.0.1:6379')
if (RECIPIENTS > 100_000) flags.usage(`--recipients must be ≤ 100000, the e-mail job's limit (got ${RECIPIENTS})`)

/** A serve child on the run's Redis prefix; once its /stats answers, its Redis connection is up. */
async function startServe (scope: Scope, started: Child[], args: string[]): Promise<Child & { url: string }> {
  const child = await startChild(serveArgv(['--port', '0', '--data-dir', scope.tempDir(), '--log-level', 'warn', ...args]), { name: 'serve', scope })
  started.push(child)
  await waitUp(`${child.url}/stats`, child.stderr())
  return child
}

// ---- CPU ----

/** CPU seconds Redis has used so far (INFO cpu). */
async function redisCpu (redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  return Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1])
}

/** CPU seconds per role, as a snapshot to subtract from a later one. */
interface CpuSnapshot { workers: number, receiver: number, sink: number, redis: number, host: number }

/** CPU seconds of everything this benchmark runs (Redis included). */
function ours (c: CpuSnapshot): number {
  return c.workers + c.receiver + c.sink + (Number.isNaN(c.redis) ? 0 : c.redis)
}

async function cpuSnapshot (receiver: Child, workers: readonly Child[], redis: Redis): Promise<CpuSnapshot> {
  return {
    workers: workers.reduce((sum, w) => sum + processCpuUs(w.pid), 0) / 1e6,
    receiver: processCpuUs(receiver.pid) / 1e6,
    sink: ownCpuUs() / 1e6, // the sink runs in this process (its polling loop is idle time)
    redis: await redisCpu(redis).catch(() => Number.NaN),
    host: hostCpuUs() / 1e6,
  }
}

// ---- one phase ----

interface RunResult { workers: number, seconds: number, rate: number, extra: number, cpu: CpuSnapshot, load: number }

function recipients (n: number, tag: string): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}-${i}@bench.example.org`)
}

/** Fires the job at the receiver and waits until the sink has counted `n` more messages. */
async function sendJob (sink: Sink, receiver: string, id: string, n: number, onProgress?: OnProgress): Promise<number> {
  const base = sink.received()
  const t0 = performance.now()
  await trigger(`${receiver}/jobs/email`, {
    headers: { 'webhook-id': id },
    body: { subject: 'Bench', text: 'Hello {{email}}', recipients: recipients(n, id) },
  })
  let lastReport = 0
  while (sink.received() - base < n) {
    if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`job ${id}: ${sink.received() - base} of ${n} messages after ${TIMEOUT_MS / 1000} s`)
    await sleep(POLL_MS)
    if (onProgress !== undefined && performance.now() - lastReport > 200) {
      lastReport = performance.now()
      onProgress(sink.received() - base, n)
    }
  }
  return (performance.now() - t0) / 1000
}

/** Waits until GET /jobs/:id says done; returns the messages the sink counted beyond `n`. */
async function settle (sink: Sink, receiver: string, id: string, n: number, before: number): Promise<number> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const view: { state?: string, sent?: number } = await fetch(`${receiver}/jobs/${id}`).then((r) => r.json() as Promise<{ state?: string, sent?: number }>, () => ({}))
    if (view.state === 'done') {
      if (view.sent !== n) throw new Error(`job ${id} done with ${String(view.sent)} of ${n} sent`)
      return sink.received() - before - n
    }
    if (Date.now() > deadline) throw new Error(`job ${id} not done 30 s after its last message (${JSON.stringify(view)})`)
    await sleep(50)
  }
}

async function runPhase (sink: Sink, redis: Redis, workers: number, run: number): Promise<RunResult> {
  const prefix = `rtbench-${randomBytes(6).toString('hex')}`
  const scope = new Scope('rtbench')
  scope.defer(() => deleteKeys(REDIS_URL, `${prefix}:*`))
  const common = ['--queue', REDIS_URL, '--queue-prefix', prefix, '--chunk-size', String(CHUNK_SIZE), '--smtp', sink.url]
  const label = `${workers} worker${workers === 1 ? '' : 's'}, run ${run}/${RUNS}`
  const started: Child[] = []
  try {
    const starting = phase(`${label}: starting 1 receiver + ${workers} worker process(es)`)
    const [receiver, ...rest] = await Promise.all([
      startServe(scope, started, [...common, '--concurrency', '0']),
      ...Array.from({ length: workers }, () => startServe(scope, started, [...common, '--concurrency', String(CONCURRENCY)])),
    ]) as [Child & { url: string }, ...Child[]]
    starting.done('ready')
    if (WARMUP > 0) {
      const warm = phase(`${label}: warm-up job of ${WARMUP}`)
      const id = `warm-${prefix}`
      const before = sink.received()
      await sendJob(sink, receiver.url, id, WARMUP, warm.onProgress)
      await settle(sink, receiver.url, id, WARMUP, before)
      warm.done(`${WARMUP} sent`)
    }
    const measure = phase(`${label}: ${RECIPIENTS} recipients`)
    const id = `bench-${prefix}`
    const before = sink.received()
    const load = os.loadavg()[0] as number
    const cpu0 = await cpuSnapshot(receiver, rest, redis)
    const seconds = await sendJob(sink, receiver.url, id, RECIPIENTS, measure.onProgress)
    const cpu1 = await cpuSnapshot(receiver, rest, redis)
    const extra = await settle(sink, receiver.url, id, RECIPIENTS, before)
    const rate = RECIPIENTS / seconds
    const cpu: CpuSnapshot = {
      workers: cpu1.workers - cpu0.workers, receiver: cpu1.receiver - cpu0.receiver, sink: cpu1.sink - cpu0.sink, redis: cpu1.redis - cpu0.redis,
      host: cpu1.host - cpu0.host,
    }
    measure.done(`${rate.toFixed(0)} e-mails/s; CPU s: workers ${cpu.workers.toFixed(1)}, sink ${cpu.sink.toFixed(1)}, Redis ${cpu.redis.toFixed(1)}, receiver ${cpu.receiver.toFixed(1)}, whole host ${cpu.host.toFixed(1)}; load before ${load.toFixed(2)}`)
    return { workers, seconds, rate, extra, cpu, load }
  } finally {
    await Promise.all(started.map((c) => c.stop())) // graceful first: the kill -9 of close() is for Ctrl-C
    await scope.close()
  }
}

// ---- main ----

closeOnSignals('bench-scale')

async function main (): Promise<void> {
  const redis = await redisInfo(REDIS_URL)
  if (redis === undefined) {
    process.stderr.write(`bench-scale: no Redis at ${REDIS_URL}\n`)
    process.exit(1)
  }
  const sink = await startSink({ port: 0, keep: 0 })
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  const runs: RunResult[] = []
  try {
    for (let run = 1; run <= RUNS; run++) {
      for (const workers of WORKERS) runs.push(await runPhase(sink, client, workers, run))
    }
  } finally {
    client.disconnect()
    await sink.close()
  }
  /** Cores other processes on the host kept busy while a run's job ran: its figure is only as good as this is small. */
  const other = (r: RunResult): number => (r.cpu.host - ours(r.cpu)) / r.seconds
  const rows = WORKERS.map((workers) => {
    const mine = runs.filter((r) => r.workers === workers)
    const rates = mine.map((r) => r.rate)
    const mid = mine.find((r) => r.rate === median(rates)) ?? mine[0] as RunResult
    return {
      workers, seconds: median(mine.map((r) => r.seconds)), rate: median(rates), extra: Math.max(...mine.map((r) => r.extra)),
      // CPU of the median run, per 1,000 e-mails, by role.
      cpuPer1000: { workers: mid.cpu.workers / RECIPIENTS * 1000, sink: mid.cpu.sink / RECIPIENTS * 1000, redis: mid.cpu.redis / RECIPIENTS * 1000, receiver: mid.cpu.receiver / RECIPIENTS * 1000 },
      runs: mine.map((r) => ({ rate: r.rate, seconds: r.seconds, otherCores: other(r), loadBefore: r.load, extra: r.extra })),
    }
  })
  const one = rows.find((r) => r.workers === 1)?.rate ?? rows[0]?.rate ?? 1
  const machine = { ...cpus(), node: process.version, redis }
  const settings = { recipients: RECIPIENTS, chunkSize: CHUNK_SIZE, concurrency: CONCURRENCY, warmup: WARMUP, runs: RUNS, redis: shownUrl(REDIS_URL) }
  if (flags.values.json) {
    process.stdout.write(`${JSON.stringify({ machine, settings, results: rows.map((r) => ({ ...r, ratio: r.rate / one })) })}\n`)
    return
  }
  const lines = [
    `${RECIPIENTS} recipients, chunks of ${CHUNK_SIZE}, ${CONCURRENCY} chunk(s) at once per worker, one receiver (--concurrency 0), one sink in this process`,
    `${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, Redis ${redis.version} (appendonly ${redis.appendonly}); ${RUNS === 1 ? '1 run' : `medians of ${RUNS} runs`}`,
    '',
    ...markdown(['workers', 'seconds', 'e-mails/s', 'vs 1 worker', 'runs: e-mails/s (other load, cores)', 'CPU s per 1,000: workers / sink / Redis', 'extra messages'],
      '|--:|--:|--:|--:|:--|--:|--:|', rows.map((r) => [r.workers, r.seconds.toFixed(2), r.rate.toFixed(0), `${(r.rate / one).toFixed(2)}×`,
        r.runs.map((x) => `${x.rate.toFixed(0)} (${x.otherCores.toFixed(2)})`).join(', '),
        [r.cpuPer1000.workers, r.cpuPer1000.sink, r.cpuPer1000.redis].map((x) => x.toFixed(2)).join(' / '), r.extra])),
    '',
    'other load: cores that processes outside this benchmark kept busy during the run (/proc/stat minus our',
    'processes and Redis). CPU s per 1,000 e-mails are from the median run.',
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench-scale: ${(err as Error).stack ?? String(err)}\n`)
  await closeAll()
  process.exit(1)
})
