// Benchmark of the trigger client: how long trigger() blocks its caller, next to Node's
// http.request and fetch, a detached spawn (the popen("… &") analogue) and PHP's fsockopen, all in
// one run against one receiver (a bare node:http server in a child process); then fireMany
// throughput with the receiver's own count proving nothing was lost.
//
//   npm run bench                                    # the table and the issue's targets
//   npm run bench -- --runs 3                        # medians of 3 runs (BENCHMARKS.md)
//   npm run -s bench -- --json > bench.json          # one JSON object for machines (-s: no npm banner)
//   npm run build && npm run bench -- --dist         # the compiled dist/ that users install
//   npm run bench -- --only trigger,php --fire-many 0   # a subset
//
// Where trigger()'s microseconds go: `npm run load -- --profile --runs 0` (CPU profiles of the same loop, "client: trigger() one after another").
//
// PHP is measured when `php` is on PATH (Debian: apt-get install php-cli), else skipped.
import type { FireManySummary } from 'rawtrigger'
import {
  awaitChild, CONTENDERS, fetchPost, httpClose, JOB, LABELS, makeFireTrigger, makeHttpKeepAlive, makeSpawn, PHP_CONTENDERS, type ContenderName,
} from './bench/contenders.ts'
import { measure, medianStats, type Measurement, type Stats } from './bench/measure.ts'
import { loadLibrary } from './bench/library.ts'
import { measurePhp, measurePhpClient } from './bench/php.ts'
import { cli } from './kit/cli.ts'
import { phase, type OnProgress } from './kit/progress.ts'
import { addError, errorCode, median, repeat } from './kit/stats.ts'
import { startReceiver, type Receiver } from './bench/receiver-client.ts'
import {
  checkTargets, formatText, type BenchResult, type ContenderResult, type FireManyResult, type FireManyRun, type PhaseRun,
} from './bench/report.ts'
import { loadAverage, machine, phpVersion, timeWaitSockets } from './kit/system.ts'

const HELP = `Usage: npm run bench -- [options]

Caller-blocking time (call → promise resolved) of sequential calls against one local receiver:
rawtrigger trigger() over TCP and a Unix socket, http.request (new connection, and keep-alive),
fetch, a detached spawn, and, when php is installed, PHP fsockopen+fwrite+fclose over TCP and
unix:// and the PHP client RawTrigger::fire. Then fireMany throughput.

Options:
  --iterations N        measured calls per contender and run           (default 3000)
  --warmup N            unmeasured calls before them                   (default 500)
  --spawn-iterations N  measured spawns (slow: each child is awaited)  (default 300)
  --spawn-warmup N      unmeasured spawns                              (default 20)
  --runs N              repeat everything; the table shows medians     (default 1)
  --pause-ms N          untimed pause before each call, so the receiver
                        is idle between calls (a trigger per page view) (default 0)
  --fire-many N         triggers in the fireMany run, 0 to skip        (default 20000)
  --concurrency N       fireMany concurrency                           (default 64)
  --only LIST           comma-separated subset of: ${CONTENDERS.join(', ')}, fire-many
  --dist                measure the compiled dist/ (npm run build first) instead of src/ via tsx
  --json                print one JSON object instead of the table
  --help                this text
Progress goes to stderr.`

const SETTLE_MS = 5_000 // longest wait for the receiver to count what was sent
const FIRE_MANY_SETTLE_MS = 10_000

const flags = cli('bench-trigger', HELP, {
  'iterations': { type: 'string', default: '3000' },
  'warmup': { type: 'string', default: '500' },
  'spawn-iterations': { type: 'string', default: '300' },
  'spawn-warmup': { type: 'string', default: '20' },
  'runs': { type: 'string', default: '1' },
  'pause-ms': { type: 'string', default: '0' },
  'fire-many': { type: 'string', default: '20000' },
  'concurrency': { type: 'string', default: '64' },
  'only': { type: 'string' },
  'dist': { type: 'boolean', default: false },
  'json': { type: 'boolean', default: false },
})
const { values } = flags
const iterations = flags.int('iterations', 1)
const warmup = flags.int('warmup', 0)
const spawnIterations = flags.int('spawn-iterations', 1)
const spawnWarmup = flags.int('spawn-warmup', 0)
const runs = flags.int('runs', 1)
const pauseMs = flags.int('pause-ms', 0)
const fireManyCount = flags.int('fire-many', 0)
const concurrency = flags.int('concurrency', 1)
const only = values.only === undefined ? undefined : flags.pick('only', [...CONTENDERS, 'fire-many'])
const selected = CONTENDERS.filter((c) => only === undefined || only.includes(c))
const runFireMany = fireManyCount > 0 && (only === undefined || only.includes('fire-many'))

const loadAtStart = loadAverage()
const php = phpVersion()
const notes: string[] = []
const contenders = selected.filter((c) => {
  if (!PHP_CONTENDERS.has(c) || php !== undefined) return true
  process.stderr.write(`php not installed: ${c} skipped\n`)
  notes.push(`php not installed: ${c} skipped`)
  return false
})

const { lib, native, build: library } = await loadLibrary(values.dist, 'bench-trigger')
const build = `${library}; trigger() ${native.available ? 'on its native fast path (trigger-net: node:net)' : 'on node:net (the native fast path is not built, or RAWTRIGGER_NATIVE=0)'}`
const fireTrigger = makeFireTrigger(lib.trigger)
const receiver = await startReceiver()
const fireTriggerUnix = makeFireTrigger(lib.trigger, receiver.socketPath)
const request = lib.buildRequest(receiver.url, { body: JOB }) // the exact bytes trigger() sends; PHP and spawn send them too
const keepAlive = makeHttpKeepAlive()
const spawnOne = makeSpawn(receiver.port, request)

function runContender (name: ContenderName, onProgress: OnProgress): Promise<Measurement> {
  const url = receiver.url
  switch (name) {
    case 'trigger': return measure(() => fireTrigger(url), warmup, iterations, onProgress, { pauseMs })
    case 'trigger-unix': return measure(() => fireTriggerUnix(url), warmup, iterations, onProgress, { pauseMs })
    case 'trigger-net': return withoutNative(() => measure(() => fireTrigger(url), warmup, iterations, onProgress, { pauseMs }))
    case 'http-close': return measure(() => httpClose(url), warmup, iterations, onProgress, { pauseMs })
    case 'http-keepalive': return measure(() => keepAlive.call(url), warmup, iterations, onProgress, { pauseMs })
    case 'fetch': return measure(() => fetchPost(url), warmup, iterations, onProgress, { pauseMs })
    case 'spawn': return measure(spawnOne, spawnWarmup, spawnIterations, onProgress, { after: awaitChild, pauseMs })
    case 'php': return measurePhp({ port: receiver.port }, request, warmup, iterations, pauseMs)
    case 'php-unix': return measurePhp({ socketPath: receiver.socketPath }, request, warmup, iterations, pauseMs)
    case 'php-client': return measurePhpClient(url, JOB, warmup, iterations, pauseMs)
  }
}

/** The same trigger() with its native fast path off: what it costs through node:net. */
async function withoutNative<T> (run: () => Promise<T>): Promise<T> {
  native.use(false)
  try {
    return await run()
  } finally {
    native.use(true)
  }
}

const measured = new Map<ContenderName, PhaseRun[]>()
const perRequest = (cpuUs: number, requests: number): number => (requests > 0 ? cpuUs / requests : NaN)

async function fireManyRun (r: Receiver, label: string): Promise<FireManyRun> {
  const p = phase(label)
  const before = await r.count()
  const cpuStart = process.cpuUsage()
  const summary: FireManySummary = await lib.fireMany(r.url, repeat(JOB, fireManyCount, p.onProgress), { concurrency })
  const cpu = process.cpuUsage(cpuStart)
  const after = await r.settle(before.requests + summary.sent, FIRE_MANY_SETTLE_MS)
  const received = after.requests - before.requests
  const errors: Record<string, number> = {}
  for (const e of summary.errors) addError(errors, errorCode(e.error))
  p.done(`${Math.round(summary.perSecond)} triggers/s, ${received} of ${summary.sent} counted`)
  return {
    sent: summary.sent,
    failed: summary.failed,
    errors,
    totalMs: summary.totalMs,
    perSecond: summary.perSecond,
    received,
    lost: summary.sent - received,
    timeWait: timeWaitSockets(r.port),
    cpuUsPerTrigger: perRequest(cpu.user + cpu.system, fireManyCount),
    receiverCpuUsPerRequest: perRequest(after.cpuUs - before.cpuUs, received),
  }
}

const fireRuns: FireManyRun[] = []
try {
  for (let run = 1; run <= runs; run++) {
    const tag = runs > 1 ? `run ${run}/${runs}: ` : ''
    for (const name of contenders) {
      const p = phase(`${tag}${LABELS[name]}`)
      const before = await receiver.count()
      const m = await runContender(name, p.onProgress)
      const failed = Object.values(m.errors).reduce((a, b) => a + b, 0)
      const after = await receiver.settle(before.requests + m.calls - failed, SETTLE_MS)
      const list = measured.get(name) ?? []
      const received = after.requests - before.requests
      list.push({ ...m, received, receiverCpuUsPerRequest: perRequest(after.cpuUs - before.cpuUs, received) })
      measured.set(name, list)
      p.done(`p50 ${m.stats.p50.toFixed(1)} µs, ${m.calls} calls${failed > 0 ? `, ${failed} failed` : ''}`)
    }
    if (runFireMany) fireRuns.push(await fireManyRun(receiver, `${tag}fireMany ${fireManyCount} at concurrency ${concurrency}`))
  }
} finally {
  keepAlive.close()
  await receiver.close()
}

const results: ContenderResult[] = contenders.map((name) => {
  const list = measured.get(name) ?? []
  const errors: Record<string, number> = {}
  let sent = 0
  for (const m of list) {
    let failed = 0
    for (const [code, n] of Object.entries(m.errors)) {
      addError(errors, code, n)
      failed += n
    }
    sent += m.calls - failed
  }
  return {
    name,
    label: LABELS[name],
    stats: medianStats(list.map((m) => m.stats)),
    errors,
    sent,
    received: list.reduce((a, m) => a + m.received, 0),
    cpuUsPerCall: median(list.map((m) => m.cpuUsPerCall)),
    receiverCpuUsPerRequest: median(list.map((m) => m.receiverCpuUsPerRequest)),
    ...(list.every((m) => m.baseline !== undefined) && list.length > 0 ? { baseline: medianStats(list.map((m) => m.baseline as Stats)) } : {}),
    runs: list,
  }
})

let fire: FireManyResult | null = null
if (fireRuns.length > 0) {
  fire = {
    count: fireManyCount,
    concurrency,
    perSecond: median(fireRuns.map((f) => f.perSecond)),
    sent: fireRuns.reduce((a, f) => a + f.sent, 0),
    failed: fireRuns.reduce((a, f) => a + f.failed, 0),
    lost: fireRuns.reduce((a, f) => a + f.lost, 0),
    runs: fireRuns,
  }
}

const allCodes = [...results.flatMap((c) => Object.keys(c.errors)), ...fireRuns.flatMap((f) => Object.keys(f.errors))]
if (allCodes.some((code) => code.includes('EADDRNOTAVAIL'))) {
  notes.push('EADDRNOTAVAIL: no free local port. Every Connection: close request leaves a client port in TIME_WAIT ' +
    'for 60 s; with tcp_tw_reuse=2 Linux reuses them on loopback only, and the local port range bounds the rest.')
}
const tw = timeWaitSockets(receiver.port)
if (tw !== null) {
  notes.push(`TIME_WAIT at the end: ${tw.total} sockets on the host; of connections to the receiver ${tw.clientSide} ` +
    `client-side, ${tw.serverSide} receiver-side. Every trigger, PHP fsockopen and agent:false request is a new ` +
    'connection; the side that closes first keeps it in TIME_WAIT for 60 s, unless it ends with an RST (a 202 that ' +
    'reaches a client socket already closed), which leaves none. tcp_tw_reuse=2 lets loopback connects reuse them.')
}

const result: BenchResult = {
  machine: machine(php, loadAtStart),
  settings: { build, iterations, warmup, spawnIterations, spawnWarmup, runs, pauseMs, fireMany: fireManyCount, concurrency, receiver: receiver.url },
  contenders: results,
  fireMany: fire,
  targets: checkTargets(results, fire),
  notes,
}

process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : `\n${formatText(result)}\n`)
