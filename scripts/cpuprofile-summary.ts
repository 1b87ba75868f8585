// Summarises a V8 .cpuprofile: where the time went, by area (idle, GC, node:net, src/net/…)
// and by function (self and inclusive time).
//
//   node --import tsx scripts/cpuprofile-summary.ts /tmp/prof              # newest profile there
//   node --import tsx scripts/cpuprofile-summary.ts FILE.cpuprofile --top 40 --calls 20000
//   node --import tsx scripts/cpuprofile-summary.ts FILE.cpuprofile --json
//
// Profiles come from `node --cpu-prof --cpu-prof-dir=DIR …` or from scripts/profile-trigger.ts.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { formatSummary, summarise, type CpuProfile } from './bench/cpuprofile.ts'

const HELP = `Usage: node --import tsx scripts/cpuprofile-summary.ts <file.cpuprofile | dir> [options]

  --top N      rows per table (default 30)
  --calls N    calls made in the profiled span: adds a µs-per-call column
  --json       one JSON object instead of the tables
  --help       this text

A directory means its newest .cpuprofile. Self time: samples in the function itself.
Inclusive: samples with the function anywhere on the stack (recursion counted once).`

function usage (message: string): never {
  process.stderr.write(`cpuprofile-summary: ${message}\n(--help for usage)\n`)
  process.exit(2)
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '30' },
    calls: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
})

if (values.help) {
  process.stdout.write(`${HELP}\n`)
  process.exit(0)
}
if (positionals.length !== 1) usage('give one .cpuprofile file or a directory')
const top = Number(values.top)
if (!Number.isInteger(top) || top < 1) usage(`--top must be a positive integer (got ${values.top})`)
const calls = values.calls === undefined ? undefined : Number(values.calls)
if (calls !== undefined && (!Number.isInteger(calls) || calls < 1)) usage(`--calls must be a positive integer (got ${values.calls})`)

function newestProfile (dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f))
  const newest = files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]
  if (newest === undefined) usage(`no .cpuprofile in ${dir}`)
  return newest
}

const given = positionals[0] as string
let file: string
try {
  file = statSync(given).isDirectory() ? newestProfile(given) : given
} catch (err) {
  usage(`cannot read ${given}: ${(err as Error).message}`)
}
const summary = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile)

if (values.json) {
  process.stdout.write(`${JSON.stringify({ file, ...summary, functions: summary.functions.slice(0, top) })}\n`)
} else {
  process.stdout.write(`${file}\n${formatSummary(summary, top, calls)}\n`)
}
