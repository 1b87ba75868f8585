// What `import 'rawtrigger'` costs: the time of the import() and the resident memory after it, in
// fresh node processes, next to a bare `node -e ''` (its RSS) and the import of an empty ES module
// (what any first import() costs). Medians of --runs children per entry, from dist/ (what users
// install; npm run build first) or from src/ through tsx with --source.
//
//   npm run build && npm run bench:import             # the table (the children run plain node)
//   npm run bench:import -- --runs 21
//   npm run -s bench:import -- --json > import.json
//   npm run bench:import -- --source                  # src/ through tsx (adds tsx's own cost)
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cli } from './kit/cli.ts'
import { phase } from './kit/progress.ts'
import { median } from './kit/stats.ts'
import { aligned } from './kit/table.ts'

const HELP = `Usage: npm run bench:import --  [--runs N] [--source] [--json]

  --runs N    children per entry, the median is reported (default 11)
  --source    import src/ through tsx (--conditions=rawtrigger-source) instead of dist/
  --json      one JSON object on stdout instead of the table`

const { values, int } = cli('bench-import', HELP, {
  runs: { type: 'string', default: '11' },
  source: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
})
const runs = int('runs', 1)
const REPO = fileURLToPath(new URL('..', import.meta.url))
const EMPTY = join(tmpdir(), 'rawtrigger-bench-import-empty.mjs')
writeFileSync(EMPTY, 'export {}\n')

const ENTRIES = ["import('rawtrigger')", "import('rawtrigger/client')", `import(${JSON.stringify(EMPTY)})`] as const
const LABELS = ['rawtrigger', 'rawtrigger/client', '(an empty ES module)']
const flags = values.source ? ['--conditions=rawtrigger-source', '--import', 'tsx'] : []

interface Sample { ms: number, rssMb: number }

function child (code: string, nodeFlags: readonly string[]): Sample {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  const out = execFileSync(process.execPath, [...nodeFlags, '-e', code], { cwd: REPO, env, encoding: 'utf8' })
  return JSON.parse(out) as Sample
}

const measureImport = (entry: string): string =>
  `const t = performance.now(); ${entry}.then(() => console.log(JSON.stringify({ ms: performance.now() - t, rssMb: process.memoryUsage().rss / 1e6 })))`

const bare = phase(`bare node -e '' ×${runs}`)
const bareRss: number[] = []
for (let i = 0; i < runs; i++) {
  bareRss.push(child('console.log(JSON.stringify({ ms: 0, rssMb: process.memoryUsage().rss / 1e6 }))', flags).rssMb)
  bare.onProgress(i + 1, runs)
}
const bareMb = median(bareRss)
bare.done(`${bareMb.toFixed(1)} MB RSS`)

const results = ENTRIES.map((entry, e) => {
  const p = phase(`${LABELS[e] ?? entry} ×${runs}`)
  const samples: Sample[] = []
  for (let i = 0; i < runs; i++) {
    samples.push(child(measureImport(entry), flags))
    p.onProgress(i + 1, runs)
  }
  const ms = median(samples.map((s) => s.ms))
  const overMb = median(samples.map((s) => s.rssMb)) - bareMb
  p.done(`${ms.toFixed(1)} ms, +${overMb.toFixed(1)} MB`)
  return { entry: LABELS[e] ?? entry, importMs: ms, rssOverBareMb: overMb }
})

if (values.json) {
  console.log(JSON.stringify({ from: values.source ? 'src (tsx)' : 'dist', runs, node: process.version, bareRssMb: bareMb, results }))
} else {
  const rows = [['entry', 'import ms', 'RSS over bare node'], ...results.map((r) => [r.entry, r.importMs.toFixed(1), `+${r.rssOverBareMb.toFixed(1)} MB`])]
  console.log(`import cost from ${values.source ? 'src/ through tsx' : 'dist/'}, median of ${runs} fresh processes (node ${process.version}; bare node ${bareMb.toFixed(1)} MB RSS)`)
  for (const line of aligned(rows, (i) => i > 0)) console.log(line)
}
