// Intake on the Redis store (issue 11): the adds of one event-loop turn (and of the turns while a
// write is in flight) go to Redis together, one script call for every record and dedup check, then
// one addBulk for the chunks, and each add resolves only once its record and its chunks are in
// Redis. The real Redis at REDIS_URL with a key prefix per test (test/helpers/redis.ts); a closed
// port for "Redis is not there".
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect } from 'node:net'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { createLogger } from '../src/log.ts'
import { BullmqQueue } from '../src/queue/bullmq-queue.ts'
import { CREATE_JOBS } from '../src/queue/redis-scripts.ts'
import type { ChunkData } from '../src/queue/redis-intake.ts'
import type { AddResult, NewJob } from '../src/queue/types.ts'
import { rejectsWith, within } from './helpers/assert-error.ts'
import { countingHandler } from './helpers/handlers.ts'
import { crashedIntake, keysUnder, openBullmq, useRedis, withChunkQueue, type RedisFixture } from './helpers/redis.ts'
import { waitFor } from './helpers/wait.ts'

/** Items per BullMQ job here: a 25-item job is three chunks. */
const CHUNK_SIZE = 10
/** Guard on every wait: a hang fails the test instead of stalling the run. */
const WAIT_MS = 20_000
/** BullmqQueue waits this long for a connection before an add fails (its CONNECT_WAIT_MS). */
const CONNECT_WAIT_MS = 2_000
const log = createLogger('silent')

function until<T> (what: string, check: () => Promise<T | undefined>, timeoutMs = WAIT_MS): Promise<T> {
  return waitFor(what, check, timeoutMs, 20)
}

/** A BullmqQueue on the test's prefix with its connection up, stopped and closed when the test ends. */
function openQueue (redis: RedisFixture): Promise<BullmqQueue> {
  return openBullmq(redis, { chunkSize: CHUNK_SIZE })
}

/** A client of the test's own, closed when the test ends. */
function client (redis: RedisFixture): Redis {
  const c = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  c.on('error', () => {})
  redis.defer(() => c.disconnect())
  return c
}

/** BullMQ's count of chunks of `type` in `state` (waiting, by default). */
function chunkCount (redis: RedisFixture, type: string, state: 'wait' | 'active' = 'wait'): Promise<number> {
  return withChunkQueue(redis, type, async (queue) => (await queue.getJobCounts(state))[state] ?? NaN)
}

/** The waiting BullMQ jobs of `type`: for each rawtrigger job, the ids of the BullMQ jobs that hold its chunks, and each BullMQ job's items. */
function holders (redis: RedisFixture, type: string): Promise<{ of: Map<string, string[]>, items: Map<string, number> }> {
  return withChunkQueue(redis, type, async (queue) => {
    const of = new Map<string, string[]>()
    const items = new Map<string, number>()
    for (const job of await queue.getJobs(['wait'], 0, -1)) {
      const data = job.data as ChunkData
      const parts = data.bundle ?? [{ id: data.id, end: data.end - data.start }]
      items.set(job.id as string, parts.reduce((n, p) => n + p.end, 0))
      for (const p of parts) of.set(p.id, [...of.get(p.id) ?? [], `${job.id}#${data.bundle === undefined ? data.chunk : 0}`])
    }
    return { of, items }
  })
}

/** A line of CREATE_JOBS that MONITOR shows as it is (no quote, no newline). */
const INTAKE_MARK = 'local type = ARGV[2]'

/**
 * Counts the intake script calls (EVALSHA of CREATE_JOBS, or EVAL where a connection sends the
 * script itself) on the test's prefix, as MONITOR shows them, read off a plain
 * socket. `calls()` sends an ECHO and answers once MONITOR has shown it: every command Redis ran
 * before it has been counted.
 */
async function countIntakeCalls (redis: RedisFixture): Promise<{ calls: () => Promise<number> }> {
  const sha = createHash('sha1').update(CREATE_JOBS).digest('hex')
  const url = new URL(redis.url)
  const socket = connect(Number(url.port || 6379), url.hostname)
  redis.defer(() => socket.destroy())
  await once(socket, 'connect')
  let oks = url.password === '' ? 1 : 2 // +OK to AUTH, then to MONITOR
  if (url.password !== '') socket.write(`AUTH ${decodeURIComponent(url.username || 'default')} ${decodeURIComponent(url.password)}\r\n`)
  socket.write('MONITOR\r\n')
  const marker = `${redis.prefix}:counted`
  const intake = `"evalsha" "${sha}" `
  let calls = 0
  let seenMarker = false
  let rest = ''
  socket.setEncoding('utf8')
  socket.on('data', (data: string) => {
    const lines = (rest + data).split('\r\n')
    rest = lines.pop() ?? ''
    for (const line of lines) {
      if (line === '+OK') oks--
      if (line.includes(`"echo" "${marker}"`)) seenMarker = true
      const at = line.indexOf(intake)
      if (at !== -1 && line.startsWith(`"${redis.prefix}:`, line.indexOf('" ', at + intake.length) + 2)) calls++
      // The first call on a connection that has not run the script sends the script itself.
      else if (line.includes('"eval" "') && line.includes(INTAKE_MARK) && line.includes(` "${redis.prefix}:rt:stats" `)) calls++
    }
  })
  await until('MONITOR on', async () => oks <= 0 || undefined, 5_000)
  const echo = client(redis)
  return {
    async calls () {
      await echo.echo(marker)
      await until('MONITOR showing the ECHO', async () => seenMarker || undefined, 5_000)
      socket.destroy()
      return calls
    },
  }
}

test('500 adds in one turn: at most two script calls; each add resolves with its record and chunks in Redis; small jobs share bundles; every job runs once', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openQueue(redis)
  await q.add({ type: 'warm-up', payload: {}, items: 1 }) // loads the script: from now on EVALSHA
  const checker = client(redis)
  const monitor = await countIntakeCalls(redis)
  const N = 500
  const jobs: NewJob[] = Array.from({ length: N }, (_, i) => ({ type: 'items', payload: { i }, items: i % 5 === 0 ? 25 : 1 }))
  const chunksOf = (job: NewJob): number => Math.max(1, Math.ceil(job.items / CHUNK_SIZE))

  // Checked the moment each add resolves, before any other add's code runs: on a connection of its
  // own, sent after the add's writes were answered, so it sees them if (and only if) they were.
  const seen: Array<Promise<[number, string[]]>> = []
  const added = await Promise.all(jobs.map((job) => q.add(job).then((r) => {
    seen.push(Promise.all([checker.exists(`${redis.prefix}:rt:job:${r.id}`), checker.lrange(`${redis.prefix}:jobs-items:wait`, 0, -1)]))
    return r
  })))
  const calls = await monitor.calls()

  assert.equal(new Set(added.map((r) => r.id)).size, N, 'one id per add')
  assert.deepEqual(added.filter((r) => r.duplicate), [], 'no add is a duplicate')
  const held = await holders(redis, 'items')
  const snapshots = await Promise.all(seen)
  const missing = added.map((r, i) => {
    const [record, waiting] = snapshots[i] as [number, string[]]
    const chunks = (held.of.get(r.id) ?? []).map((h) => h.split('#')[0] as string)
    return { i, record, chunks: chunks.filter((c) => waiting.includes(c)).length }
  }).filter((s, i) => s.record !== 1 || s.chunks !== chunksOf(jobs[i]!))
  assert.deepEqual(missing, [], 'record and every chunk in Redis when the add resolved')
  assert.ok(calls >= 1 && calls <= 2, `${N} adds of one turn in at most 2 intake script calls (batches of at most 256); MONITOR saw ${calls}`)
  const wrongChunks = added.map((r, i) => ({ i, chunks: (held.of.get(r.id) ?? []).map((h) => Number(h.split('#')[1])).sort((a, b) => a - b) }))
    .filter((h, i) => h.chunks.join() !== Array.from({ length: chunksOf(jobs[i]!) }, (_, n) => n).join())
  assert.deepEqual(wrongChunks, [], 'every chunk of every job waits in BullMQ, once')
  const bundled = 4 * N / 5 // the one-item jobs, in bundles of up to a chunk's worth of items
  const waiting = await chunkCount(redis, 'items')
  // A bundle does not span two batches: one more bundle per batch past the first at most.
  const fewest = (N / 5) * 3 + Math.ceil(bundled / CHUNK_SIZE)
  assert.ok(waiting >= fewest && waiting <= fewest + 2, `multi-chunk jobs one BullMQ job per chunk, the others bundled: ${waiting} BullMQ jobs, expected ${fewest} to ${fewest + 2}`)
  assert.ok([...held.items.values()].every((n) => n <= 25 && n >= 1), 'no BullMQ job holds more items than a chunk (a 25-item job: its chunks)')
  const items = jobs.reduce((n, job) => n + job.items, 0)
  assert.deepEqual(await q.stats(), { jobs: { queued: N + 1, running: 0, done: 0, failed: 0, cancelled: 0 }, items: { done: 0, failed: 0, pending: items + 1 } })
  assert.deepEqual(q.commitStats, { commits: 1 + calls, jobs: 1 + N }, 'commitStats counts the batches and the adds they held')

  const { handler, ran } = countingHandler()
  q.start({ handlers: new Map([['items', handler]]), concurrency: 8, log })
  await until(`${N} jobs done`, async () => (await q.stats()).jobs.done === N ? true : undefined)
  const wrong = added.map((r, i) => ({ id: r.id, counts: ran.get(r.id) })).filter((r, i) => r.counts?.length !== jobs[i]!.items || r.counts.some((c) => c !== 1))
  assert.deepEqual(wrong, [], 'every item of every job ran exactly once')
})

test('adds of the turns while a batch is being written share the next write; one that fills up is written too', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openQueue(redis)
  await q.add({ type: 'warm-up', payload: {}, items: 1 })
  const before = q.commitStats
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
  const job = (i: number, filler = ''): NewJob => ({ type: 'items', payload: { i, filler }, items: 1 })
  // A first batch of 250 (of 1 kB each) takes milliseconds to write; meanwhile three turns add 100
  // each: 300 adds that wait for it, more than one batch holds (256).
  const adds = Array.from({ length: 250 }, (_, i) => q.add(job(i, 'x'.repeat(1_000))))
  for (let k = 0; k < 3; k++) {
    await turn()
    adds.push(...Array.from({ length: 100 }, (_, i) => q.add(job(250 + 100 * k + i))))
  }
  const added = await within(20_000, Promise.all(adds), 'all 550 adds')
  assert.equal(new Set(added.map((r) => r.id)).size, 550)
  assert.equal((await q.stats()).jobs.queued, 551)
  const after = q.commitStats
  const writes = after.commits - before.commits
  t.diagnostic(`550 adds over 4 turns in ${writes} writes`)
  assert.equal(writes, 3, 'the 250, then the 300 of the next three turns in two writes of at most 256 (one write per turn would be four)')
})

test('large payloads of one turn are split: a batch stops taking adds past 1 MiB of JSON', { timeout: 30_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openQueue(redis)
  const before = q.commitStats.commits
  const big = 'x'.repeat(600 * 1024)
  const added = await Promise.all([0, 1, 2, 3].map((i) => q.add({ type: 'items', payload: { i, big }, items: 1 })))
  assert.equal(new Set(added.map((r) => r.id)).size, 4)
  assert.equal(q.commitStats.commits - before, 2, 'two of 600 kB fill a batch (1.2 MB), the next two go in a second')
})

test('duplicates inside one batch: one job per dedup key, of the first add\'s size; the second add gets its id and duplicate: true', { timeout: 30_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openQueue(redis)
  const safe = `hook_${redis.prefix}` // a path segment: the job id
  const opaque = `evt.${redis.prefix}:1` // not one: the job gets a random id
  const [a1, a2, b1, b2, c] = await Promise.all([
    q.add({ type: 'items', payload: { n: 'a1' }, items: 3, dedupKey: safe }),
    q.add({ type: 'items', payload: { n: 'a2' }, items: 30, dedupKey: safe }),
    q.add({ type: 'items', payload: { n: 'b1' }, items: 2, dedupKey: opaque }),
    q.add({ type: 'items', payload: { n: 'b2' }, items: 2, dedupKey: opaque }),
    q.add({ type: 'items', payload: { n: 'c' }, items: 1 }),
  ]) as [AddResult, AddResult, AddResult, AddResult, AddResult]
  assert.deepEqual([a1, a2], [{ id: safe, duplicate: false }, { id: safe, duplicate: true }])
  assert.notEqual(b1.id, opaque)
  assert.deepEqual([b1.duplicate, b2], [false, { id: b1.id, duplicate: true }])
  assert.equal(c.duplicate, false)

  assert.deepEqual((await q.stats()).jobs.queued, 3, 'three jobs: a, b and c')
  assert.equal((await q.get(safe))?.total, 3, 'the first add\'s size, not the duplicate\'s 30')
  assert.equal(await chunkCount(redis, 'items'), 3, 'one chunk each; none of the 30-item duplicate')
  // And against a job of an earlier batch.
  assert.deepEqual(await q.add({ type: 'items', payload: {}, items: 1, dedupKey: safe }), { id: safe, duplicate: true })

  const { handler, ran } = countingHandler()
  q.start({ handlers: new Map([['items', handler]]), concurrency: 2, log })
  await until('3 jobs done', async () => (await q.stats()).jobs.done === 3 ? true : undefined)
  assert.deepEqual(Object.fromEntries(ran), { [safe]: [1, 1, 1], [b1.id]: [1, 1], [c.id]: [1] })
})

test('two queues (two processes) add one webhook-id in the same turn: one job, the other add is its duplicate', { timeout: 30_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const [q1, q2] = await Promise.all([openQueue(redis), openQueue(redis)])
  const key = `evt.${redis.prefix}:both`
  const results = await Promise.all([
    q1.add({ type: 'items', payload: {}, items: 1, dedupKey: key }),
    q2.add({ type: 'items', payload: {}, items: 1, dedupKey: key }),
  ])
  assert.equal(results[0].id, results[1].id, 'both answer the one job')
  assert.deepEqual(results.map((r) => r.duplicate).sort(), [false, true])
  assert.equal((await q1.stats()).jobs.queued, 1)
  assert.equal(await chunkCount(redis, 'items'), 1)
})

test('a record whose chunks were never queued (a crash between the two writes) runs once the webhook-id is resent', { timeout: 30_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openQueue(redis)
  const key = `crash_${redis.prefix}`
  // What a process that died after the intake script and before its addBulk leaves behind.
  await crashedIntake(redis, { id: key, items: 12, chunks: 2, dedup: key })
  assert.equal(await chunkCount(redis, 'items'), 0, 'the record has no chunk')

  // The sender got no 202 and resends, with a different body even: the first job's two chunks are queued.
  assert.deepEqual(await q.add({ type: 'items', payload: {}, items: 1, dedupKey: key }), { id: key, duplicate: true })
  assert.equal(await chunkCount(redis, 'items'), 2)
  const { handler, ran } = countingHandler()
  q.start({ handlers: new Map([['items', handler]]), concurrency: 2, log })
  await until('the job done', async () => (await q.get(key))?.state === 'done' ? true : undefined)
  assert.deepEqual(ran.get(key), Array.from({ length: 12 }, () => 1))
})

test('Redis refuses the batch: every add of it rejects with RT_ERR_STORE and nothing is stored', { timeout: 30_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openQueue(redis)
  const raw = client(redis)
  // A job counter of the wrong type: the script fails at its first new job, before any write.
  const seq = `${redis.prefix}:rt:seq`
  await raw.hset(seq, 'not', 'a counter')
  const adds = Array.from({ length: 20 }, (_, i) => q.add({ type: 'items', payload: { i }, items: 1, ...(i % 2 === 0 ? { dedupKey: `k${i}_${redis.prefix}` } : {}) }))
  const errors = await Promise.all(adds.map((add) => rejectsWith(add, 'RT_ERR_STORE')))
  assert.match(String((errors[0]?.cause as Error | undefined)?.message), /WRONGTYPE/, 'the reply of Redis is the cause')
  const left = (await keysUnder(redis.url, redis.prefix)).filter((k) => k !== seq && !k.endsWith(':rt:stats') && !k.includes(':jobs-'))
  assert.deepEqual(left, [], 'no record, no dedup key, no index entry')
  // The chunks of adds without a dedup key were sent behind the script; without records they run nothing.
  const { handler, ran } = countingHandler()
  q.start({ handlers: new Map([['items', handler]]), concurrency: 2, log })
  await until('BullMQ done with what it was sent', async () => await chunkCount(redis, 'items') === 0 || undefined)
  await until('nothing active', async () => (await chunkCount(redis, 'items', 'active')) === 0 || undefined)
  assert.equal(ran.size, 0, 'no handler ran')
  assert.deepEqual((await q.stats()).jobs, { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 }, 'no job')

  // The next batch, once Redis accepts it again, is stored as usual.
  await raw.del(seq)
  assert.equal((await q.add({ type: 'items', payload: {}, items: 1, dedupKey: `k0_${redis.prefix}` })).duplicate, false, 'the refused dedup key was not kept')
})

test('Redis unreachable (a closed port): every add of a batch rejects with RT_ERR_STORE, ECONNREFUSED on the cause', { timeout: 30_000 }, async (t) => {
  const q = new BullmqQueue({ url: 'redis://127.0.0.1:1', prefix: 'rttest-unreachable' })
  t.after(() => q.close())
  const started = Date.now()
  const adds = Array.from({ length: 50 }, (_, i) => q.add({ type: 'items', payload: { i }, items: 1 }))
  const errors = await within(CONNECT_WAIT_MS + 5_000, Promise.all(adds.map((add) => rejectsWith(add, 'RT_ERR_STORE'))), 'the adds')
  assert.equal(errors.length, 50)
  let cause: unknown = errors[0]
  while (cause instanceof Error && (cause as NodeJS.ErrnoException).code !== 'ECONNREFUSED') cause = cause.cause
  assert.equal((cause as NodeJS.ErrnoException | undefined)?.code, 'ECONNREFUSED', `the OS error stays readable on the cause chain: ${String(errors[0]?.message)}`)
  assert.ok(Date.now() - started < CONNECT_WAIT_MS + 2_000, 'failed within the connection wait')
  assert.deepEqual(q.commitStats, { commits: 0, jobs: 0 }, 'no batch was written')
})
