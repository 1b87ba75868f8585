// Summarises a V8 .cpuprofile: where the time went, by area (idle, GC, node:net, src/net/…)
// and by function (self and inclusive time).
//
//   node --import tsx scripts/cpuprofile-summary.ts /tmp/prof              # newest profile there
//   node --import tsx scripts/cpuprofile-summary.ts FILE.cpuprofile --top 40 --calls 20000
//   node --import tsx scripts/cpuprofile-summary.ts FILE.cpuprofile --json
//
// Profiles come from `node --cpu-prof --cpu-prof-dir=DIR …` or `npm run load -- --profile --profile-dir DIR`.
import { readFileSync, statSync } from 'node:fs'
import { formatSummary, newestProfile, summarise, type CpuProfile } from './bench/cpuprofile.ts'
import { cli } from './kit/cli.ts'

const HELP = `Usage: node --import tsx scripts/cpuprofile-summary.ts <file.cpuprofile | dir> [options]

  --top N      rows per table (default 30)
  --calls N    calls made in the profiled span: adds a µs-per-call column
  --json       one JSON object instead of the tables
  --help       this text

A directory means its newest .cpuprofile. Self time: samples in the function itself.
Inclusive: samples with the function anywhere on the stack (recursion counted once).`

const flags = cli('cpuprofile-summary', HELP, {
  top: { type: 'string', default: '30' },
  calls: { type: 'string' },
  json: { type: 'boolean', default: false },
}, true)
const { values, positionals, usage } = flags
if (positionals.length !== 1) usage('give one .cpuprofile file or a directory')
const top = flags.int('top', 1)
const calls = values.calls === undefined ? undefined : flags.int('calls', 1)

const given = positionals[0] as string
let file: string
try {
  file = statSync(given).isDirectory() ? newestProfile(given) ?? usage(`no .cpuprofile in ${given}`) : given
} catch (err) {
  file = usage(`cannot read ${given}: ${(err as Error).message}`)
}
const summary = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile)

if (values.json) {
  process.stdout.write(`${JSON.stringify({ file, ...summary, functions: summary.functions.slice(0, top) })}\n`)
} else {
  process.stdout.write(`${file}\n${formatSummary(summary, top, calls)}\n`)
}
