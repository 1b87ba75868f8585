// Profiles the trigger() loop of the benchmark and says where each call's microseconds go.
// The V8 CPU profiler (the one behind `node --cpu-prof`) runs only around the measured calls,
// through node:inspector, so start-up, warm-up and the receiver's set-up stay out of the profile.
//
//   node --conditions=rawtrigger-source --import tsx scripts/profile-trigger.ts          # src via tsx
//   npm run build && node --conditions=rawtrigger-source --import tsx scripts/profile-trigger.ts --dist
//   … --iterations 50000 --interval 50 --out /tmp/trigger.cpuprofile --top 40 --json
//
// The whole-process alternative: node --cpu-prof --cpu-prof-dir=/tmp/prof --conditions=rawtrigger-source
//   --import tsx scripts/bench-trigger.ts --only trigger --iterations 20000 --fire-many 0
// then: node --import tsx scripts/cpuprofile-summary.ts /tmp/prof
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { makeFireTrigger } from './bench/contenders.ts'
import { formatSummary, summarise } from './bench/cpuprofile.ts'
import { loadLibrary, type LoadedLibrary } from './bench/library.ts'
import { measure } from './bench/measure.ts'
import { phase } from './kit/progress.ts'
import { startReceiver } from './bench/receiver-client.ts'

const HELP = `Usage: node --conditions=rawtrigger-source --import tsx scripts/profile-trigger.ts [options]

Runs trigger() against the benchmark's receiver under the V8 CPU profiler and prints the time
by area and by function, in µs per call.

Options:
  --iterations N   profiled calls                                  (default 20000)
  --warmup N       calls before the profiler starts                (default 1000)
  --interval N     sampling interval, µs                           (default 100)
  --dist           profile the compiled dist/ (npm run build first) instead of src/ via tsx
  --out FILE       where the .cpuprofile goes        (default: $TMPDIR/rawtrigger-trigger.cpuprofile)
  --top N          rows per table                                  (default 25)
  --json           one JSON object instead of the tables
  --help           this text`

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '20000' },
    warmup: { type: 'string', default: '1000' },
    interval: { type: 'string', default: '100' },
    dist: { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(os.tmpdir(), 'rawtrigger-trigger.cpuprofile') },
    top: { type: 'string', default: '25' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
})

if (values.help) {
  process.stdout.write(`${HELP}\n`)
  process.exit(0)
}

function count (name: 'iterations' | 'warmup' | 'interval' | 'top', min: number): number {
  const n = Number(values[name])
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`profile-trigger: --${name} must be an integer ≥ ${min} (got ${values[name]})\n`)
    process.exit(2)
  }
  return n
}
const iterations = count('iterations', 1)
const warmup = count('warmup', 0)
const interval = count('interval', 1)
const top = count('top', 1)

let loaded: LoadedLibrary
try {
  loaded = await loadLibrary(values.dist)
} catch (err) {
  process.stderr.write(`profile-trigger: ${(err as Error).message}\n`)
  process.exit(1)
}
const { lib, build } = loaded
const fire = makeFireTrigger(lib.trigger)
const receiver = await startReceiver()
const session = new Session()
try {
  const warm = phase(`warm-up: ${warmup} calls`)
  await measure(() => fire(receiver.url), 0, warmup, warm.onProgress)
  warm.done('done')

  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval })
  const run = phase(`profiling ${iterations} calls of trigger() from ${build}`)
  await session.post('Profiler.start')
  const m = await measure(() => fire(receiver.url), 0, iterations, run.onProgress)
  const { profile } = await session.post('Profiler.stop')
  run.done(`p50 ${m.stats.p50.toFixed(1)} µs, CPU ${m.cpuUsPerCall.toFixed(1)} µs/call`)
  writeFileSync(values.out, JSON.stringify(profile))

  const summary = summarise(profile)
  if (values.json) {
    const result = { build, iterations, intervalUs: interval, file: values.out, stats: m.stats, cpuUsPerCall: m.cpuUsPerCall, errors: m.errors }
    process.stdout.write(`${JSON.stringify({ ...result, ...summary, functions: summary.functions.slice(0, top) })}\n`)
  } else {
    process.stdout.write(`trigger() from ${build}: ${iterations} calls, p50 ${m.stats.p50.toFixed(1)} µs, ` +
      `p99 ${m.stats.p99.toFixed(1)} µs, CPU ${m.cpuUsPerCall.toFixed(1)} µs/call (profiler on, sampling every ${interval} µs)\n`)
    process.stdout.write(`profile: ${values.out}\n${formatSummary(summary, top, iterations)}\n`)
  }
} finally {
  session.disconnect()
  await receiver.close()
}
