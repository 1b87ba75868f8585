// Load test of rawtrigger's receiver, with the loss accounting: does every accepted request
// become a stored job, under autocannon load and under floods of raw triggers? Side by side with a
// bare node:http server (the ceiling), fastify/express + BullMQ on the same Redis (what a Node
// user would pick instead), and PHP's fsockopen loop (the pattern rawtrigger replaces).
//
//   npm run load                                   # every target, 50 connections × 10 s per phase
//   npm run load -- --runs 3                       # medians of 3 runs (BENCHMARKS.md)
//   npm run load -- --quick --json                 # ~1 s per phase, one JSON object (npm test runs this)
//   npm run load -- --targets bare,sqlite --modes keep-alive,fireMany
//   npm run load -- --profile --profile-dir /tmp/prof   # + CPU profiles of serve and the trigger loops
//
// Every server is a child process on 127.0.0.1 (port 0): `rawtrigger serve --concurrency 0` (store
// only) on SQLite in a temp dir, and on Redis with `--queue <redis> --queue-prefix rtload-<hex>-redis`;
// scripts/load/bare.mjs; scripts/load/peer-bullmq.ts. Redis targets are skipped when Redis does not
// answer; PHP when php is not installed. Everything stops by itself; children, temp dirs and the
// run's Redis keys (rtload-<hex>-*) are removed at the end, also after Ctrl-C.
// serve's figures from GET /metrics too: the store's commits and committed jobs before and after
// every phase, printed as jobs/commit (the group-commit size; '–' where a store does not count them).
//
// The summary ends with issue 11's table (scripts/load/goals.ts): each figure measured (medians
// over --runs), its bar and goal, and a verdict — goal met, bar met, goal not, NOT met, or not
// measured (a target or mode left out, Redis not answering). Then the trigger side's checks.
// Progress goes to stderr, the summary (or --json: `targets` is that table, `checks` the rest) to stdout.
import os from 'node:os'
import { cli } from './kit/cli.ts'
import { phase } from './kit/progress.ts'
import { redisUrl as redisUrlFrom, shownUrl } from './kit/redis.ts'
import { cpus, phpVersion, readProc } from './kit/system.ts'
import { MODES, runOnce, runProfiles, type LoadOptions, type Mode, type Row } from './load/run.ts'
import { formatGoals, goals } from './load/goals.ts'
import { checkTriggers, formatChecks, formatTables, summarise } from './load/report.ts'
import { cleanUpAll, ON_REDIS, redisVersion, TARGETS, type TargetName } from './load/targets.ts'

const HELP = `Usage: npm run load -- [options]

  --connections N      autocannon connections                         (default 50; --quick 8)
  --duration S         seconds per autocannon phase                   (default 10; --quick 1)
  --warmup S           unmeasured keep-alive seconds per target first (default 1; --quick 0)
  --triggers N         triggers per fireMany and pool phase           (default 20000; --quick 2000)
  --concurrency N      fireMany concurrency                           (default 64)
  --pool-connections N keep-alive connections of the trigger pool     (default 4)
  --php N              PHP fsockopen calls at serve (SQLite), 0 skips (default 5000; --quick 300)
  --sequential N       trigger() and bare net.connect() calls in a row (default 5000; --quick 300)
  --runs N             repeat everything; tables show medians; 0 with --profile: profiles only (default 1)
  --targets LIST       of ${TARGETS.join(', ')}                     (default all)
  --modes LIST         of ${MODES.join(', ')}  (default all)
  --redis URL          Redis on loopback        (default $REDIS_URL or redis://127.0.0.1:6379/0)
  --profile            CPU profiles of serve (node --cpu-prof) and of the client's trigger loops
  --profile-dir DIR    keep the .cpuprofile files there
  --quick              the short run of npm test (~1 s per phase)
  --json               one JSON object instead of the tables
  --help               this text`

const flags = cli('load', HELP, {
  'connections': { type: 'string' }, 'duration': { type: 'string' }, 'warmup': { type: 'string' },
  'triggers': { type: 'string' }, 'concurrency': { type: 'string' }, 'pool-connections': { type: 'string' },
  'php': { type: 'string' }, 'sequential': { type: 'string' }, 'runs': { type: 'string' },
  'targets': { type: 'string' }, 'modes': { type: 'string' }, 'redis': { type: 'string' },
  'profile': { type: 'boolean', default: false }, 'profile-dir': { type: 'string' },
  'quick': { type: 'boolean', default: false }, 'json': { type: 'boolean', default: false },
})
const { values, usage } = flags
const quick = values.quick
const int = (name: Parameters<typeof flags.int>[0], normal: number, short: number, min: number): number => flags.int(name, min, quick ? short : normal)

const redisUrl = redisUrlFrom(values.redis, 'redis://127.0.0.1:6379/0')
const redisHost = URL.canParse(redisUrl) ? new URL(redisUrl).hostname : usage(`--redis is not a URL: ${redisUrl}`)
if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(redisHost)) usage(`--redis must be on loopback (got ${redisHost}): this test sends load to this machine only`)

const notes: string[] = []
let targets = flags.pick<TargetName>('targets', TARGETS)
const modes = flags.pick<Mode>('modes', MODES)
const redis = targets.some((t) => ON_REDIS.has(t)) ? await redisVersion(redisUrl) : undefined
if (redis === undefined && targets.some((t) => ON_REDIS.has(t))) {
  const skipped = targets.filter((t) => ON_REDIS.has(t))
  notes.push(`Redis does not answer at ${redisUrl}: skipped ${skipped.join(', ')}`)
  targets = targets.filter((t) => !ON_REDIS.has(t))
}
const php = phpVersion()
if (php === undefined) notes.push('php is not installed: the PHP fsockopen loop is skipped')

const options: LoadOptions = {
  connections: int('connections', 50, 8, 1),
  durationS: int('duration', 10, 1, 1),
  warmupS: int('warmup', 1, 0, 0),
  triggers: int('triggers', 20_000, 2_000, 0),
  concurrency: int('concurrency', 64, 64, 1),
  poolConnections: int('pool-connections', 4, 4, 1),
  php: php === undefined ? 0 : int('php', 5_000, 300, 0),
  sequential: int('sequential', 5_000, 300, 0),
  runs: int('runs', 1, 1, 0),
  targets,
  redisUrl,
  profile: values.profile || values['profile-dir'] !== undefined,
  ...(values['profile-dir'] === undefined ? {} : { profileDir: values['profile-dir'] }),
  progress: phase,
}

if (options.runs === 0 && !options.profile) usage('--runs 0 only makes sense with --profile')

process.once('SIGINT', () => {
  process.stderr.write('\nload: interrupted, cleaning up…\n')
  void cleanUpAll(redisUrl).finally(() => process.exit(130))
})
// A throw outside the awaited chain (in a socket callback, say) must not leave servers running.
process.once('uncaughtException', (err) => {
  process.stderr.write(`load: ${err.stack ?? String(err)}\ncleaning up…\n`)
  void cleanUpAll(redisUrl).finally(() => process.exit(1))
})

const loadStart = os.loadavg()[0] ?? NaN
const rows: Row[] = []
const prefixes: string[] = []
let profiles: Awaited<ReturnType<typeof runProfiles>> = []
try {
  for (let run = 1; run <= options.runs; run++) {
    const once = await runOnce(options, run, modes)
    rows.push(...once.rows)
    prefixes.push(once.prefix)
  }
  if (options.profile) profiles = await runProfiles(options)
} catch (err) {
  await cleanUpAll(redisUrl)
  process.stderr.write(`load: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
}

const summary = summarise(rows)
const targetTable = goals(rows, summary)
const checks = checkTriggers(summary)
const machine = {
  ...cpus(),
  node: process.version,
  php: php ?? null,
  redis: redis ?? null,
  loadAverage: { start: loadStart, end: os.loadavg()[0] ?? NaN },
  tcpTwReuse: readProc('/proc/sys/net/ipv4/tcp_tw_reuse', ' '),
  somaxconn: readProc('/proc/sys/net/core/somaxconn', ' '),
}
const settings = { ...options, progress: undefined, modes, redisUrl: shownUrl(redisUrl), prefixes }

if (values.json) {
  process.stdout.write(`${JSON.stringify({ machine, settings, summary, targets: targetTable, checks, rows, profiles, notes })}\n`)
} else {
  const o = options
  const lines = [
    `${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, PHP ${machine.php ?? '–'}, Redis ${machine.redis ?? '–'}; ` +
      `1-min load average ${machine.loadAverage.start.toFixed(2)} at the start, ${machine.loadAverage.end.toFixed(2)} at the end`,
    `${o.connections} connections × ${o.durationS} s per autocannon phase; ${o.triggers} triggers per fireMany (concurrency ${o.concurrency}) ` +
      `and pool (${o.poolConnections} connections) phase; ${o.sequential} sequential trigger() and ${o.php} PHP calls; ` +
      `${o.runs === 1 ? '1 run' : `medians of ${o.runs} runs (counts summed)`}`,
    '',
    formatTables(summary),
    '',
    'Loss accounting: stored = jobs the target\'s store gained during the phase (rawtrigger: GET /stats job counts; bare: bodies read; ' +
      'peers: BullMQ job count), against 2xx answers (keep-alive) or requests sent (the rest). lost = that minus stored. ' +
      'jobs/commit = committed jobs ÷ commits of serve\'s store over the phase (GET /metrics), the group-commit size.',
    '',
    `Targets (issue 11)${o.runs > 1 ? `: medians of ${o.runs} runs` : ''}`,
    '',
    formatGoals(targetTable),
    '',
    'Trigger side',
    formatChecks(checks),
    ...(notes.length > 0 ? ['', ...notes.map((n) => `Note: ${n}`)] : []),
    ...profiles.flatMap((p) => ['', `Profile: ${p.what} — ${p.usPerCall.toFixed(1)} µs sampled per call, ${p.busyUsPerCall.toFixed(1)} µs busy`, p.text]),
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
}
