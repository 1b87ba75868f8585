// The load test's short run (scripts/load.ts --quick --json), checked for its accounting, not its
// speed: under autocannon (keep-alive and a new connection per request), fireMany, the keep-alive
// trigger pool, sequential trigger() and PHP's fsockopen loop, every request rawtrigger's receiver
// accepted is a stored job — and it cleans up after itself (children, temp dirs, Redis keys). It
// prints issue 11's table (`targets`) with a verdict per figure, and serve's jobs per commit.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { judge, VERDICTS } from '../scripts/load/goals.ts'
import { commitsOf, redisVersion } from '../scripts/load/targets.ts'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : 'redis://127.0.0.1:6379/0'
const RUN_TIMEOUT_MS = 120_000 // a guard: the quick run takes ~15-25 s on a 2-core box

interface Row {
  target: string, mode: string, sent: number, ok?: number, stored: number, against: string, lost: number,
  errors: number, non2xx: number, rate: number, duplicates?: number,
  commits?: number, committedJobs?: number, jobsPerCommit?: number | null
}
interface Goal { name: string, measured: number | null, shown: string, bar: number, goal: number, verdict: string }
interface Output {
  rows: Row[], summary: Row[], settings: { prefixes: string[], redisUrl: string }, targets: Goal[],
  checks: Array<{ target: string, met: boolean | null }>, notes: string[]
}

const FIGURES = [
  'serve SQLite, keep-alive, × bare node:http',
  'serve SQLite, new connection per request, × bare',
  'serve SQLite, fireMany triggers, × bare',
  'serve SQLite vs fastify + BullMQ, keep-alive',
  'serve Redis vs fastify + BullMQ, keep-alive and new connection',
  'server CPU per job, SQLite keep-alive',
  'lost jobs',
]

function runLoad (args: string[]): Promise<Output> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--conditions=rawtrigger-source', '--import', 'tsx', 'scripts/load.ts', ...args], {
      cwd: ROOT, timeout: RUN_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8',
    }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`load.ts failed: ${err.message}\n${stderr}`))
      else resolve(JSON.parse(stdout) as Output)
    })
  })
}

function rtloadTempDirs (since: number): string[] {
  return readdirSync(os.tmpdir())
    .filter((name) => name.startsWith('rtload-'))
    .filter((name) => statSync(join(os.tmpdir(), name)).mtimeMs >= since)
}

test('load --quick --json: stored = 2xx (keep-alive) and = sent (the rest), no errors, nothing left behind', async () => {
  const redis = await redisVersion(REDIS_URL)
  const targets = redis === undefined ? 'bare,sqlite' : 'bare,sqlite,redis'
  const started = Date.now()
  const out = await runLoad(['--quick', '--json', '--targets', targets, '--redis', REDIS_URL, '--triggers', '1000', '--php', '200', '--sequential', '200'])

  const expectModes = ['keep-alive', 'new-connection', 'fireMany', 'pool', 'trigger', 'net']
  for (const mode of expectModes) {
    assert.ok(out.rows.some((r) => r.target === 'sqlite' && r.mode === mode), `a ${mode} phase against serve (SQLite)`)
  }
  if (redis !== undefined) assert.ok(out.rows.some((r) => r.target === 'redis' && r.mode === 'keep-alive'), 'Redis store measured')
  for (const r of out.rows) {
    const where = `${r.mode} → ${r.target}`
    assert.ok(r.sent > 0, `${where}: something was sent`)
    assert.equal(r.errors, 0, `${where}: errors`)
    assert.equal(r.non2xx, 0, `${where}: non-2xx answers`)
    if (r.mode === 'keep-alive') {
      assert.equal(r.against, '2xx')
      assert.equal(r.stored, r.ok, `${where}: stored = 2xx`)
      assert.equal(r.ok, r.sent, `${where}: every request answered (the soft stop leaves none in flight)`)
    } else {
      assert.equal(r.against, 'sent')
      assert.equal(r.stored, r.sent, `${where}: stored = sent`)
    }
    assert.equal(r.lost, 0, `${where}: lost`)
    // Every trigger of the load is its own job: a webhook-id repeat would be a request counted twice.
    if (r.target !== 'bare') assert.equal(r.duplicates, 0, `${where}: webhook-id repeats (${String(r.duplicates)})`)
  }

  assert.deepEqual(out.targets.map((g) => g.name), FIGURES, 'issue 11\'s figures, in its order')
  for (const g of out.targets) assert.ok((VERDICTS as readonly string[]).includes(g.verdict), `${g.name}: verdict ${g.verdict}`)
  const byName = (name: string): Goal => out.targets.find((g) => g.name === name) as Goal
  assert.equal(byName('lost jobs').verdict, 'goal met')
  assert.equal(byName('lost jobs').measured, 0)
  for (const name of FIGURES.slice(0, 3).concat('server CPU per job, SQLite keep-alive')) {
    const g = byName(name)
    assert.ok(typeof g.measured === 'number' && g.measured > 0, `${name}: measured (${g.measured})`)
    assert.notEqual(g.verdict, 'not measured', name)
  }
  assert.equal(byName('serve SQLite vs fastify + BullMQ, keep-alive').verdict, 'not measured', 'fastify was not among the targets')

  // serve on SQLite counts its commits (GET /metrics): every phase wrote its jobs in ≥ 1 commit.
  for (const r of out.rows.filter((row) => row.target === 'sqlite')) {
    const where = `${r.mode} → sqlite`
    assert.ok(typeof r.commits === 'number' && r.commits > 0, `${where}: commits (${r.commits})`)
    assert.ok(typeof r.committedJobs === 'number' && r.committedJobs >= r.stored, `${where}: committed jobs ${r.committedJobs} ≥ stored ${r.stored}`)
    assert.ok(typeof r.jobsPerCommit === 'number' && r.jobsPerCommit >= 1, `${where}: jobs/commit (${r.jobsPerCommit})`)
  }
  for (const r of out.rows.filter((row) => row.target === 'bare')) assert.equal(r.jobsPerCommit, undefined, `${r.mode} → bare: no jobs/commit`)
  const sqliteKa = out.summary.find((r) => r.target === 'sqlite' && r.mode === 'keep-alive')
  assert.ok(typeof sqliteKa?.jobsPerCommit === 'number' && sqliteKa.jobsPerCommit >= 1, 'summary: jobs/commit of serve (SQLite), keep-alive')

  assert.deepEqual(rtloadTempDirs(started), [], 'temp data dirs removed')
  if (redis !== undefined) {
    const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
    try {
      for (const prefix of out.settings.prefixes) {
        const left: string[] = []
        let cursor = '0'
        do {
          const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}-*`, 'COUNT', 1_000)
          left.push(...keys)
          cursor = next
        } while (cursor !== '0')
        assert.deepEqual(left, [], `Redis keys under ${prefix}- deleted`)
      }
    } finally {
      client.disconnect()
    }
  }
})

test('load targets: a verdict per figure, the goal above the bar, lower-is-better for CPU and lost jobs', () => {
  assert.equal(judge(0.8, 'higher', 0.5, 0.8), 'goal met')
  assert.equal(judge(0.79, 'higher', 0.5, 0.8), 'bar met, goal not')
  assert.equal(judge(0.5, 'higher', 0.5, 0.8), 'bar met, goal not')
  assert.equal(judge(0.49, 'higher', 0.5, 0.8), 'NOT met')
  assert.equal(judge(16, 'lower', 25, 16), 'goal met')
  assert.equal(judge(20, 'lower', 25, 16), 'bar met, goal not')
  assert.equal(judge(59, 'lower', 25, 16), 'NOT met')
  assert.equal(judge(0, 'lower', 0, 0), 'goal met')
  assert.equal(judge(1, 'lower', 0, 0), 'NOT met')
  assert.equal(judge(null, 'higher', 0.5, 0.8), 'not measured')
  assert.equal(judge(NaN, 'lower', 25, 16), 'not measured')
})

test('load /metrics: the commit counters are read from Prometheus text, and absent when a store has none', () => {
  const text = [
    '# HELP rawtrigger_store_commits_total Writes of new jobs (SQLite commits); jobs per commit is the group-commit size.',
    '# TYPE rawtrigger_store_commits_total counter',
    'rawtrigger_store_commits_total 120',
    '# HELP rawtrigger_store_committed_jobs_total Jobs those writes held (duplicates included).',
    '# TYPE rawtrigger_store_committed_jobs_total counter',
    'rawtrigger_store_committed_jobs_total 4800',
    'rawtrigger_store_commits_total_other 7',
  ].join('\n')
  assert.deepEqual(commitsOf(text), { commits: 120, jobs: 4800 })
  assert.equal(commitsOf('rawtrigger_triggers_accepted_total 5\n'), undefined)
  assert.equal(commitsOf('rawtrigger_store_commits_total 3\n'), undefined, 'one of the two is not enough')
})
