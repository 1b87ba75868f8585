// The fault harness (scripts/faults.ts, issue 12) in short: each test runs one row — a flood of
// triggers that records every 202, one fault in its middle, the checker against the store and the
// SMTP server — with 1.5 s floods. `npm run faults` runs them all at full length.
// Redis rows use a redis-server of their own (never the shared one); they run when a Redis
// answers (the machine has one) or REQUIRE_REDIS=1, as test/helpers/redis.ts decides elsewhere.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { redisServerMissing } from '../scripts/faults/redis-server.ts'
import { assertAllChecksBut, assertChecks, runFault } from './helpers/faults.ts'
import { REDIS_URL, redisUnavailable } from './helpers/redis.ts'

/** The check the damaged-store rows failed before the message was fixed: serve's error names the file, not the data dir. */
const NAMES_THE_FILE = 'the error names the file'
/** Checks that every stored job ran to the end (on Redis, swept when its receiver died between its record and its chunks). */
const RUNS_TO_THE_END = ['every stored job done', 'every recipient of a stored job mailed', 'no recipient failed']

test('kill -9 of serve (SQLite, writer thread) mid keep-alive flood, restart on the same data dir: lost 0, every stored job done and mailed', async (t) => {
  const row = await runFault(t, 'sqlite-kill9-keep-alive-thread')
  assertAllChecksBut(row)
  assert.equal(row.store?.lost, 0)
  assert.ok((row.client?.acked ?? 0) > 0)
})

test('kill -9 of serve (SQLite, writer inline) mid new-connection flood, restart on the same data dir: lost 0, every stored job done and mailed', async (t) => {
  const row = await runFault(t, 'sqlite-kill9-new-connection-inline')
  assertAllChecksBut(row)
  assert.equal(row.store?.lost, 0)
})

test('disk full under the SQLite data dir mid-flood: 503 RT_ERR_STORE, no 202 lost, serve stays up and takes jobs again', async (t) => {
  const row = await runFault(t, 'disk-full-thread')
  if (row.verdict === 'SKIP') {
    t.skip(row.notes.join('; '))
    return
  }
  assertAllChecksBut(row)
  assert.equal(row.store?.lost, 0)
  assert.equal(row.extra['503 codes'], 'RT_ERR_STORE')
})

test('-wal left by a kill -9: the restart replays it, every acknowledged job is there', async (t) => {
  const row = await runFault(t, 'corrupt-crashed-wal')
  assertAllChecksBut(row)
})

for (const damage of ['truncated', 'garbage-header', 'read-only-dir']) {
  test(`damaged store (${damage}): serve refuses to start with exit status 1 and one line, never an emptier queue`, async (t) => {
    const row = await runFault(t, `corrupt-${damage}`)
    await t.test('refused, non-zero exit, one line', () => assertAllChecksBut(row, [NAMES_THE_FILE]))
    await t.test('the line names rawtrigger.db', () => {
      assertChecks(row, [NAMES_THE_FILE])
    })
  })
}

/** Runs Redis rows when a Redis answers or REQUIRE_REDIS=1; their redis-server binary must then exist. */
async function redisGate (t: TestContext): Promise<boolean> {
  const required = process.env.REQUIRE_REDIS === '1'
  const reason = await redisUnavailable()
  if (!required && reason !== undefined) {
    t.skip(`no Redis answers at ${REDIS_URL} (${reason}); REQUIRE_REDIS=1 runs the Redis fault rows`)
    return false
  }
  const missing = redisServerMissing()
  assert.equal(missing, undefined, `the Redis fault rows start a redis-server of their own: ${missing ?? ''}`)
  return true
}

test('kill -9 of one of two serve on Redis mid-flood: the other keeps taking triggers, lost 0, every stored job runs to the end', async (t) => {
  if (!await redisGate(t)) return
  const row = await runFault(t, 'redis-kill9-one-of-two-keep-alive')
  // A record whose chunks the killed receiver never queued is swept by the survivor (src/queue/redis-sweep.ts).
  assertAllChecksBut(row)
  assertChecks(row, RUNS_TO_THE_END)
  assert.equal(row.store?.lost, 0)
})

test('Redis killed -9 for 3 s and restarted mid-flood: 503 with a code while it is gone, lost 0, the workers finish', async (t) => {
  if (!await redisGate(t)) return
  const row = await runFault(t, 'redis-restart-keep-alive')
  // 3 s is longer than the 2 s a request waits for Redis (CONNECT_WAIT_MS): the 503 check is made.
  assertAllChecksBut(row)
  assertChecks(row, ['intake answered 503 while Redis was gone', 'only 202 or 503 answers', ...RUNS_TO_THE_END])
  assert.equal(row.store?.lost, 0)
})

test('SIGTERM to serve (SQLite) mid-flood: exit 0, every request read answered 202 or 503, nothing cut off or half-stored, all done after the restart', async (t) => {
  const row = await runFault(t, 'sigterm-sqlite-keep-alive-thread')
  assertAllChecksBut(row)
  assertChecks(row, ['serve exited 0', 'every stored job was answered 202', 'every stored job whole', ...RUNS_TO_THE_END])
})

test('SIGTERM to serve (Redis) mid-flood: exit 0, nothing cut off or half-stored, all done after the restart', async (t) => {
  if (!await redisGate(t)) return
  const row = await runFault(t, 'sigterm-redis-keep-alive')
  assertAllChecksBut(row)
  assertChecks(row, ['serve exited 0', 'every stored job was answered 202', 'every stored job whole', ...RUNS_TO_THE_END])
})

test('the receiver\'s signature clock jumps ±10 min mid-flood: 401 naming the 300 s tolerance, never a crash; +4 min still taken', async (t) => {
  const row = await runFault(t, 'clock-jump-keep-alive')
  assertAllChecksBut(row)
  assertChecks(row, ['clock ahead 10 min: 401', 'clock back 10 min: 401', 'clock ahead 4 min (within', 'the receiver stayed up', 'lost = acknowledged'])
})
