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
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { trigger } from 'rawtrigger'
import { startSink, type Sink } from '../src/smtp/sink.ts'

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

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const START_TIMEOUT_MS = 30_000 // node + tsx start of one child; a guard
const READY_TIMEOUT_MS = 10_000 // Redis connection of a child after its listening line
const STOP_TIMEOUT_MS = 15_000 // SIGTERM → exit; then SIGKILL
const POLL_MS = 5 // sink count polling while a job runs
const SCAN_COUNT = 500

const { values } = parseArgs({
  options: {
    'workers': { type: 'string', default: '1,2,4' },
    'recipients': { type: 'string', default: '10000' },
    'chunk-size': { type: 'string', default: '200' },
    'concurrency': { type: 'string', default: '1' },
    'warmup': { type: 'string', default: '1000' },
    'runs': { type: 'string', default: '1' },
    'redis': { type: 'string' },
    'timeout-s': { type: 'string', default: '600' },
    'json': { type: 'boolean', default: false },
    'help': { type: 'boolean', default: false },
  },
})
if (values.help) {
  process.stdout.write(`${HELP}\n`)
  process.exit(0)
}

function usage (message: string): never {
  process.stderr.write(`bench-scale: ${message}\n(--help for usage)\n`)
  process.exit(2)
}

function int (name: string, raw: string, min: number): number {
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer ≥ ${min} (got ${raw})`)
  return n
}

const WORKERS = values.workers.split(',').map((w) => int('workers', w.trim(), 1))
const RECIPIENTS = int('recipients', values.recipients, 1)
const CHUNK_SIZE = int('chunk-size', values['chunk-size'], 1)
const CONCURRENCY = int('concurrency', values.concurrency, 1)
const WARMUP = int('warmup', values.warmup, 0)
const RUNS = int('runs', values.runs, 1)
const TIMEOUT_MS = int('timeout-s', values['timeout-s'], 1) * 1000
const REDIS_URL = values.redis ?? (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : 'redis://127.0.0.1:6379')
if (RECIPIENTS > 100_000) usage(`--recipients must be ≤ 100000, the e-mail job's limit (got ${RECIPIENTS})`)

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** Progress on stderr: one line per phase, rewritten in place on a terminal. */
function phase (label: string): { onProgress: (done: number, total: number) => void, done: (note: string) => void } {
  const tty = process.stderr.isTTY
  const start = performance.now()
  if (!tty) process.stderr.write(`… ${label}\n`)
  return {
    onProgress (done, total) {
      if (tty) process.stderr.write(`\r\x1b[K… ${label}  ${done}/${total} (${Math.floor(done / total * 100)}%)`)
    },
    done (note) {
      process.stderr.write(`${tty ? '\r\x1b[K' : ''}✓ ${label}: ${note} (${((performance.now() - start) / 1000).toFixed(1)} s)\n`)
    },
  }
}

// ---- children ----

interface Child { url: string, proc: ChildProcess, exited: Promise<void>, stderr: () => string }
const children = new Set<Child>()

async function startServe (args: string[], dataDir: string): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn', ...args], {
    cwd: ROOT, env: { ...process.env, TRIGGER_SECRET: '', LOG_LEVEL: '' }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  let stdout = ''
  let stderr = ''
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-4_000) })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no listening line within ${START_TIMEOUT_MS} ms\n${stderr}`)), START_TIMEOUT_MS)
    proc.stdout?.setEncoding('utf8').on('data', (s: string) => {
      stdout += s
      const match = /rawtrigger listening on (http:\/\/\S+)/.exec(stdout)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1] as string)
      }
    })
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`serve exited before listening\n${stderr}`))
    })
  })
  const child: Child = { url, proc, exited, stderr: () => stderr }
  children.add(child)
  // Its Redis connection comes up after the listening line: wait until /stats answers 200.
  const deadline = Date.now() + READY_TIMEOUT_MS
  while ((await fetch(`${url}/stats`).then((r) => r.status, () => 0)) !== 200) {
    if (Date.now() > deadline) throw new Error(`${url}/stats did not answer 200 within ${READY_TIMEOUT_MS} ms\n${stderr}`)
    await sleep(50)
  }
  return child
}

async function stopChild (child: Child): Promise<void> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) {
    child.proc.kill('SIGTERM')
    const timer = setTimeout(() => child.proc.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await child.exited
    clearTimeout(timer)
  }
  children.delete(child)
}

// ---- Redis keys ----

const prefixes = new Set<string>()
/** Data dirs of the children (unused with --queue, but serve takes one). */
const dirs = new Set<string>()

async function deletePrefix (prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    let cursor = '0'
    let deleted = 0
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', SCAN_COUNT)
      if (keys.length > 0) deleted += await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
    return deleted
  } finally {
    redis.disconnect()
  }
}

async function redisInfo (): Promise<{ version: string, appendonly: string, maxmemoryPolicy: string }> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    const info = await redis.info('server')
    const config = (name: string): Promise<string> => (redis.call('CONFIG', 'GET', name) as Promise<string[]>).then((r) => r[1] ?? '?', () => '?')
    return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? '?', appendonly: await config('appendonly'), maxmemoryPolicy: await config('maxmemory-policy') }
  } finally {
    redis.disconnect()
  }
}

// ---- CPU ----

const CLOCK_TICKS = 100 // USER_HZ of /proc/<pid>/stat on Linux

/** CPU seconds (user + system) a child has used so far, or NaN where /proc is missing. */
function childCpu (pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // after "pid (comm) "
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS // utime, stime (fields 14 and 15)
  } catch {
    return Number.NaN
  }
}

/** CPU seconds the whole host has been busy so far (all processes, ours and others'), from /proc/stat. */
function hostCpu (): number {
  try {
    const [, ...ticks] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).trim().split(/\s+/)
    const n = ticks.map(Number)
    const idle = (n[3] ?? 0) + (n[4] ?? 0) // idle, iowait
    return (n.slice(0, 8).reduce((a, b) => a + b, 0) - idle) / CLOCK_TICKS
  } catch {
    return Number.NaN
  }
}

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
  const own = process.cpuUsage()
  return {
    workers: workers.reduce((sum, w) => sum + childCpu(w.proc.pid), 0),
    receiver: childCpu(receiver.proc.pid),
    sink: (own.user + own.system) / 1e6, // the sink runs in this process (its polling loop is idle time)
    redis: await redisCpu(redis).catch(() => Number.NaN),
    host: hostCpu(),
  }
}

// ---- one phase ----

interface RunResult { workers: number, seconds: number, rate: number, extra: number, cpu: CpuSnapshot, load: number }

function recipients (n: number, tag: string): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}-${i}@bench.example.org`)
}

/** Fires the job at the receiver and waits until the sink has counted `n` more messages. */
async function sendJob (sink: Sink, receiver: string, id: string, n: number, onProgress?: (done: number, total: number) => void): Promise<number> {
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
  prefixes.add(prefix)
  const dataDir = mkdtempSync(join(os.tmpdir(), 'rtbench-'))
  dirs.add(dataDir)
  const common = ['--queue', REDIS_URL, '--queue-prefix', prefix, '--chunk-size', String(CHUNK_SIZE), '--smtp', sink.url]
  const label = `${workers} worker${workers === 1 ? '' : 's'}, run ${run}/${RUNS}`
  const started: Child[] = []
  try {
    const starting = phase(`${label}: starting 1 receiver + ${workers} worker process(es)`)
    started.push(...await Promise.all([
      startServe([...common, '--concurrency', '0'], dataDir),
      ...Array.from({ length: workers }, () => startServe([...common, '--concurrency', String(CONCURRENCY)], dataDir)),
    ]))
    const receiver = (started[0] as Child).url
    starting.done('ready')
    if (WARMUP > 0) {
      const warm = phase(`${label}: warm-up job of ${WARMUP}`)
      const id = `warm-${prefix}`
      const before = sink.received()
      await sendJob(sink, receiver, id, WARMUP, warm.onProgress)
      await settle(sink, receiver, id, WARMUP, before)
      warm.done(`${WARMUP} sent`)
    }
    const measure = phase(`${label}: ${RECIPIENTS} recipients`)
    const id = `bench-${prefix}`
    const before = sink.received()
    const load = os.loadavg()[0] as number
    const cpu0 = await cpuSnapshot(started[0] as Child, started.slice(1), redis)
    const seconds = await sendJob(sink, receiver, id, RECIPIENTS, measure.onProgress)
    const cpu1 = await cpuSnapshot(started[0] as Child, started.slice(1), redis)
    const extra = await settle(sink, receiver, id, RECIPIENTS, before)
    const rate = RECIPIENTS / seconds
    const cpu: CpuSnapshot = {
      workers: cpu1.workers - cpu0.workers, receiver: cpu1.receiver - cpu0.receiver, sink: cpu1.sink - cpu0.sink, redis: cpu1.redis - cpu0.redis,
      host: cpu1.host - cpu0.host,
    }
    measure.done(`${rate.toFixed(0)} e-mails/s; CPU s: workers ${cpu.workers.toFixed(1)}, sink ${cpu.sink.toFixed(1)}, Redis ${cpu.redis.toFixed(1)}, receiver ${cpu.receiver.toFixed(1)}, whole host ${cpu.host.toFixed(1)}; load before ${load.toFixed(2)}`)
    return { workers, seconds, rate, extra, cpu, load }
  } finally {
    await Promise.all(started.map(stopChild))
    await deletePrefix(prefix)
    prefixes.delete(prefix)
    rmSync(dataDir, { recursive: true, force: true })
    dirs.delete(dataDir)
  }
}

// ---- main ----

let cleaning: Promise<void> | undefined
function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    for (const child of children) child.proc.kill('SIGKILL')
    await Promise.all([...children].map((c) => c.exited))
    for (const prefix of prefixes) await deletePrefix(prefix).catch(() => {})
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })()
  return cleaning
}
process.once('SIGINT', () => {
  process.stderr.write('\nbench-scale: interrupted, cleaning up…\n')
  void cleanup().finally(() => process.exit(130))
})

async function main (): Promise<void> {
  const redis = await redisInfo().catch((err: unknown) => {
    process.stderr.write(`bench-scale: no Redis at ${REDIS_URL}: ${(err as Error).message}\n`)
    process.exit(1)
  })
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
    await cleanup()
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
  const machine = { cpus: os.availableParallelism(), cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown', node: process.version, redis }
  const settings = { recipients: RECIPIENTS, chunkSize: CHUNK_SIZE, concurrency: CONCURRENCY, warmup: WARMUP, runs: RUNS, redis: REDIS_URL.replace(/\/\/[^@/]*@/, '//***@') }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ machine, settings, results: rows.map((r) => ({ ...r, ratio: r.rate / one })) })}\n`)
    return
  }
  const lines = [
    `${RECIPIENTS} recipients, chunks of ${CHUNK_SIZE}, ${CONCURRENCY} chunk(s) at once per worker, one receiver (--concurrency 0), one sink in this process`,
    `${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, Redis ${redis.version} (appendonly ${redis.appendonly}); ${RUNS === 1 ? '1 run' : `medians of ${RUNS} runs`}`,
    '',
    '| workers | seconds | e-mails/s | vs 1 worker | runs: e-mails/s (other load, cores) | CPU s per 1,000: workers / sink / Redis | extra messages |',
    '|--:|--:|--:|--:|:--|--:|--:|',
    ...rows.map((r) => `| ${r.workers} | ${r.seconds.toFixed(2)} | ${r.rate.toFixed(0)} | ${(r.rate / one).toFixed(2)}× | ${r.runs.map((x) => `${x.rate.toFixed(0)} (${x.otherCores.toFixed(2)})`).join(', ')} | ${[r.cpuPer1000.workers, r.cpuPer1000.sink, r.cpuPer1000.redis].map((x) => x.toFixed(2)).join(' / ')} | ${r.extra} |`),
    '',
    'other load: cores that processes outside this benchmark kept busy during the run (/proc/stat minus our',
    'processes and Redis). CPU s per 1,000 e-mails are from the median run.',
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench-scale: ${(err as Error).stack ?? String(err)}\n`)
  await cleanup()
  process.exit(1)
})
