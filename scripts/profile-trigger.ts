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
import os from 'node:os'
import path from 'node:path'
import { makeFireTrigger } from './bench/contenders.ts'
import { formatSummary, profileHere, summarise } from './bench/cpuprofile.ts'
import { loadLibrary } from './bench/library.ts'
import { cli } from './kit/cli.ts'
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

const flags = cli('profile-trigger', HELP, {
  iterations: { type: 'string', default: '20000' },
  warmup: { type: 'string', default: '1000' },
  interval: { type: 'string', default: '100' },
  dist: { type: 'boolean', default: false },
  out: { type: 'string', default: path.join(os.tmpdir(), 'rawtrigger-trigger.cpuprofile') },
  top: { type: 'string', default: '25' },
  json: { type: 'boolean', default: false },
})
const { values } = flags
const iterations = flags.int('iterations', 1)
const warmup = flags.int('warmup', 0)
const interval = flags.int('interval', 1)
const top = flags.int('top', 1)

const { lib, build } = await loadLibrary(values.dist, 'profile-trigger')
const fire = makeFireTrigger(lib.trigger)
const receiver = await startReceiver()
try {
  const warm = phase(`warm-up: ${warmup} calls`)
  await measure(() => fire(receiver.url), 0, warmup, warm.onProgress)
  warm.done('done')

  const run = phase(`profiling ${iterations} calls of trigger() from ${build}`)
  const { value: m, profile } = await profileHere(() => measure(() => fire(receiver.url), 0, iterations, run.onProgress), interval)
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
  await receiver.close()
}
