// The load test's short run (scripts/load.ts --quick --json), checked for its accounting, not its
// speed: under autocannon (keep-alive and a new connection per request), fireMany, the keep-alive
// trigger pool, sequential trigger() and PHP's fsockopen loop, every request rawtrigger's receiver
// accepted is a stored job — and it cleans up after itself (children, temp dirs, Redis keys).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { redisVersion } from '../scripts/load/targets.ts'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : 'redis://127.0.0.1:6379/0'
const RUN_TIMEOUT_MS = 120_000 // a guard: the quick run takes ~15-25 s on a 2-core box

interface Row {
  target: string, mode: string, sent: number, ok?: number, stored: number, against: string, lost: number,
  errors: number, non2xx: number, rate: number, duplicates?: number
}
interface Output { rows: Row[], settings: { prefixes: string[], redisUrl: string }, targets: Array<{ target: string, met: boolean | null }>, notes: string[] }

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
    if (r.duplicates !== undefined) assert.ok(r.duplicates >= 0)
  }
  const lossCheck = out.targets.find((c) => c.target.startsWith('Always 0 lost'))
  assert.equal(lossCheck?.met, true)

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
