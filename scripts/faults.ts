// Jepsen-style fault harness for rawtrigger (issue 12): clients fire triggers at `serve` and record
// every webhook-id answered 202, one fault is injected in the middle of the load, the system
// recovers, and a checker compares the acknowledgements with what the store holds and what the
// SMTP server received. One row per fault; exit status 1 when any row FAILs.
//
//   npm run faults                                   # every fault, full length (about 10 minutes)
//   npm run faults -- --quick                        # a few seconds per fault (npm test runs parts of this)
//   npm run faults -- --faults sqlite-kill9,corrupt  # rows whose name starts with one of these
//   npm run faults -- --list                         # the fault names
//   npm run faults -- --json                         # one JSON object: { ok, rows: [...] }
//
// Everything is on 127.0.0.1: serve children (`node --conditions=rawtrigger-source --import tsx
// src/cli.ts serve`, so kill -9 hits the server itself), an SMTP server of the harness, and for the
// Redis rows a redis-server of its own on a free port in a temp dir (never the shared 6379). The
// disk-full row mounts a small tmpfs (root only; skipped otherwise). Children, mounts and temp dirs
// are removed at the end, on Ctrl-C, and when --timeout passes. Progress on stderr, rows on stdout.
import { allFaults, FAULT_GROUPS } from './faults/registry.ts'
import { DEFAULTS, QUICK, type FaultOptions, type WriterMode } from './faults/options.ts'
import { formatRow, type Row } from './faults/row.ts'
import { cli } from './kit/cli.ts'
import { closeAll, closeOnSignals, Scope } from './kit/scope.ts'
import { redisServerMissing } from './faults/redis-server.ts'
import { CLIENT_MODES, type ClientMode } from './faults/flood.ts'
import { phpVersion } from './faults/php-client.ts'

const HELP = `Usage: npm run faults -- [options]

  --faults LIST        rows whose name starts with one of these (default all): ${FAULT_GROUPS.join(', ')}
  --quick              the short run: ${QUICK.floodMs / 1000} s floods, ${QUICK.concurrency} in flight, a ${QUICK.bigJob}-recipient job
  --flood-ms N         flood length, fault included          (default ${DEFAULTS.floodMs}; --quick ${QUICK.floodMs})
  --concurrency N      triggers in flight                     (default ${DEFAULTS.concurrency}; --quick ${QUICK.concurrency})
  --recipients N       recipients per flood job               (default ${DEFAULTS.recipients})
  --down-ms N          Redis stopped, the disk full (at least) (default ${DEFAULTS.downMs}; --quick ${QUICK.downMs})
  --smtp-outage-ms N   SMTP server gone this long             (default ${DEFAULTS.smtpOutageMs}; --quick ${QUICK.smtpOutageMs})
  --big-job N          recipients of the SMTP-outage job      (default ${DEFAULTS.bigJob}; --quick ${QUICK.bigJob})
  --settle-ms N        time for every stored job to finish    (default ${DEFAULTS.settleMs}; --quick ${QUICK.settleMs})
  --writers LIST       serve --sqlite-writer modes of the SQLite rows: thread,inline (default ${DEFAULTS.writers.join(',')}; --quick ${QUICK.writers.join(',')})
  --modes LIST         flood clients: ${CLIENT_MODES.join(',')} (default all, php where installed; --quick: the first two)
  --timeout S          the whole run, then everything is stopped (default 1800; --quick 300)
  --list               print the fault names and exit
  --json               one JSON object on stdout instead of the rows
  --help               this text`

const flags = cli('faults', HELP, {
  'faults': { type: 'string' }, 'quick': { type: 'boolean', default: false }, 'flood-ms': { type: 'string' },
  'concurrency': { type: 'string' }, 'recipients': { type: 'string' }, 'down-ms': { type: 'string' },
  'smtp-outage-ms': { type: 'string' }, 'big-job': { type: 'string' }, 'settle-ms': { type: 'string' },
  'writers': { type: 'string' }, 'modes': { type: 'string' }, 'timeout': { type: 'string' },
  'list': { type: 'boolean', default: false }, 'json': { type: 'boolean', default: false },
})
const { values, usage } = flags
const base = values.quick ? QUICK : DEFAULTS
const int = (flag: Parameters<typeof flags.int>[0], fallback: number, min: number): number => flags.int(flag, min, fallback)
const list = <T extends string>(flag: 'writers' | 'modes', all: readonly T[], fallback: readonly T[]): T[] => flags.pick(flag, all, fallback)

const options: FaultOptions = {
  floodMs: int('flood-ms', base.floodMs, 500),
  concurrency: int('concurrency', base.concurrency, 1),
  recipients: int('recipients', base.recipients, 1),
  downMs: int('down-ms', base.downMs, 100),
  smtpOutageMs: int('smtp-outage-ms', base.smtpOutageMs, 100),
  bigJob: int('big-job', base.bigJob, 1),
  settleMs: int('settle-ms', base.settleMs, 1_000),
  poolSize: base.poolSize,
  writers: list<WriterMode>('writers', ['thread', 'inline'], base.writers),
  modes: list<ClientMode>('modes', CLIENT_MODES, values.quick || phpVersion() === undefined ? base.modes : [...base.modes, 'php']),
}
const timeoutS = int('timeout', values.quick ? 300 : 1_800, 10)

if (options.modes.includes('php') && phpVersion() === undefined) usage('--modes php: php is not installed (apt-get install php-cli)')
const faults = allFaults(options)
if (values.list) {
  process.stdout.write(`${faults.map((f) => f.name).join('\n')}\n`)
  process.exit(0)
}
const prefixes = values.faults?.split(',').map((s) => s.trim()).filter((s) => s !== '')
const chosen = prefixes === undefined ? faults : faults.filter((f) => prefixes.some((p) => f.name.startsWith(p)))
if (chosen.length === 0) usage(`--faults ${values.faults ?? ''} matches none of: ${faults.map((f) => f.name).join(', ')}`)

closeOnSignals()
const runStarted = performance.now()
const rows: Row[] = []
const timer = setTimeout(() => {
  process.stderr.write(`faults: --timeout ${timeoutS} s passed; stopping everything\n`)
  void closeAll().finally(() => {
    finish(true)
    process.exit(1)
  })
}, timeoutS * 1000)
timer.unref()

function flagsFor (fault: string): string {
  const extra = values.quick ? ' --quick' : ''
  return `npm run faults -- --faults ${fault}${extra}`
}

function finish (timedOut: boolean): boolean {
  const ok = !timedOut && rows.every((r) => r.verdict !== 'FAIL')
  const seconds = Math.round((performance.now() - runStarted) / 100) / 10
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ok, timedOut, seconds, options, rows })}\n`)
  } else {
    const counts = { PASS: 0, FAIL: 0, SKIP: 0 }
    for (const r of rows) counts[r.verdict]++
    process.stdout.write(`\n${counts.PASS} passed, ${counts.FAIL} failed, ${counts.SKIP} skipped in ${seconds} s${timedOut ? ' (timed out)' : ''}\n`)
  }
  return ok
}

const noRedis = redisServerMissing()
for (const fault of chosen) {
  const scope = new Scope()
  const t0 = performance.now()
  const progress = (text: string): void => {
    process.stderr.write(`  … ${fault.name} ${((performance.now() - t0) / 1000).toFixed(1)} s: ${text}\n`)
  }
  process.stderr.write(`▶ ${fault.name}\n`)
  let row: Row
  try {
    if (fault.needs === 'redis' && noRedis !== undefined) {
      row = { fault: fault.name, title: '', verdict: 'SKIP', seconds: 0, extra: {}, checks: [], notes: [noRedis], command: flagsFor(fault.name) }
    } else {
      row = await fault.run({ scope, options, progress, command: flagsFor })
    }
  } finally {
    await scope.close()
  }
  rows.push(row)
  if (!values.json) process.stdout.write(`${formatRow(row)}\n`)
}
clearTimeout(timer)
process.exitCode = finish(false) ? 0 : 1
