// The sweep of the Redis store (issue 12): a job record whose chunks never reached BullMQ (its
// receiver killed between the intake script and the addBulk, or Redis gone between them) gets them
// a few seconds later, from any process, once: chunk ids are fixed and BullMQ adds an id once.
// The chunkless record is made the way a crash leaves it: the intake script alone, no addBulk.
// The real Redis at REDIS_URL with a key prefix per test (test/helpers/redis.ts).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { createLogger } from '../src/log.ts'
import type { BullmqQueue } from '../src/queue/bullmq-queue.ts'
import { SWEEP_AFTER_MS } from '../src/queue/redis-sweep.ts'
import { countingHandler } from './helpers/handlers.ts'
import { crashedIntake, openBullmq, useRedis, withChunkQueue, type RedisFixture } from './helpers/redis.ts'
import { sleep, waitFor } from './helpers/wait.ts'

/** Items per BullMQ job here: a 25-item job is three chunks. */
const CHUNK_SIZE = 10
const WAIT_MS = 20_000
const log = createLogger('silent')

/** Waits until `check` holds (the shared poll loop, with this file's longer guard). */
function until (what: string, check: () => Promise<boolean>): Promise<true> {
  return waitFor(what, async () => (await check()) || undefined, WAIT_MS)
}

function openQueue (redis: RedisFixture): Promise<BullmqQueue> {
  return openBullmq(redis, { chunkSize: CHUNK_SIZE })
}

/** A record of `items` items that a crash `ageMs` ago left without chunks. */
function crashed (redis: RedisFixture, id: string, items: number, ageMs: number): Promise<void> {
  return crashedIntake(redis, { id, items, chunks: Math.ceil(items / CHUNK_SIZE), ageMs })
}

/** BullMQ's chunk jobs of `type`, in any state. */
function chunkJobs (redis: RedisFixture, type: string): Promise<number> {
  return withChunkQueue(redis, type, async (queue) => {
    const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'completed', 'failed', 'prioritized')
    return Object.values(counts).reduce((a, b) => a + b, 0)
  })
}

test('a record left without chunks by a crash runs once its queue starts: the sweep at start queues its chunks, every item runs once', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const id = `crash_${redis.prefix}`
  await crashed(redis, id, 25, SWEEP_AFTER_MS + 1_000)
  assert.equal(await chunkJobs(redis, 'items'), 0, 'no chunk: nothing would ever run it')
  const q = await openQueue(redis)
  const { handler, ran } = countingHandler()
  q.start({ handlers: new Map([['items', handler]]), concurrency: 2, log })
  await until('the swept job done', async () => (await q.get(id))?.state === 'done')
  assert.deepEqual(ran.get(id), Array.from({ length: 25 }, () => 1), 'every item once')
  assert.equal(await chunkJobs(redis, 'items'), 3, 'its three chunks, each once')
  assert.equal(await q.sweep(), 0, 'the record left the unchunked index')
})

test('a fresh chunkless record is left alone (its intake may still be writing); once older than SWEEP_AFTER_MS it is swept', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const id = `young_${redis.prefix}`
  const q = await openQueue(redis)
  await crashed(redis, id, 5, SWEEP_AFTER_MS - 2_000)
  assert.equal(await q.sweep(), 0, 'younger than the threshold: not swept')
  assert.equal(await chunkJobs(redis, 'items'), 0)
  await sleep(2_500)
  assert.equal(await q.sweep(), 1, 'older now: swept')
  assert.equal(await chunkJobs(redis, 'items'), 1)
})

test('two processes sweep the same records at once, several times: each chunk is in BullMQ once, each item runs once', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const ids = Array.from({ length: 20 }, (_, i) => `race${i}_${redis.prefix}`)
  for (const id of ids) await crashed(redis, id, 25, SWEEP_AFTER_MS + 1_000)
  const [q1, q2] = await Promise.all([openQueue(redis), openQueue(redis)])
  const passes = await Promise.all([q1.sweep(), q2.sweep(), q1.sweep(), q2.sweep()])
  t.diagnostic(`records swept per pass: ${passes.join(', ')}`)
  assert.ok(passes.every((n) => n <= ids.length) && passes.some((n) => n > 0), 'some pass queued them')
  assert.equal(await chunkJobs(redis, 'items'), ids.length * 3, 'three chunks per record, none twice')
  const { handler, ran } = countingHandler()
  q1.start({ handlers: new Map([['items', handler]]), concurrency: 4, log })
  q2.start({ handlers: new Map([['items', handler]]), concurrency: 4, log })
  await until('every swept job done', async () => (await q1.stats()).jobs.done === ids.length)
  const wrong = ids.filter((id) => ran.get(id)?.length !== 25 || ran.get(id)?.some((c) => c !== 1))
  assert.deepEqual(wrong, [], 'every item of every job ran exactly once')
})

test('a sweep that races the intake it mends adds nothing twice: chunks queued by intake, then the same record swept', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const id = `late_${redis.prefix}`
  await crashed(redis, id, 25, SWEEP_AFTER_MS + 1_000)
  const q = await openQueue(redis)
  // The trigger resent with its webhook-id: intake queues the first job's chunks (and takes the
  // record out of the index); the record is back in it, as if intake's last step had failed.
  assert.deepEqual(await q.add({ type: 'items', payload: {}, items: 1, dedupKey: id }), { id, duplicate: true })
  assert.equal(await chunkJobs(redis, 'items'), 3)
  const raw = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  raw.on('error', () => {})
  redis.defer(() => raw.disconnect())
  await raw.zadd(`${redis.prefix}:rt:unchunked`, Date.now() - SWEEP_AFTER_MS - 1_000, id)
  assert.equal(await q.sweep(), 1)
  assert.equal(await chunkJobs(redis, 'items'), 3, 'BullMQ kept one job per chunk id')
})

test('jobs of a bundle swept as well (intake\'s last step failed): the bundle and the sweep\'s chunks run side by side, each job runs once', { timeout: 60_000 }, async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openQueue(redis)
  // Five one-item jobs of one turn: one BullMQ job holds them all.
  const added = await Promise.all(Array.from({ length: 5 }, (_, i) => q.add({ type: 'items', payload: { i }, items: 1 })))
  assert.equal(await chunkJobs(redis, 'items'), 1, 'one bundle')
  const raw = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  raw.on('error', () => {})
  redis.defer(() => raw.disconnect())
  for (const { id } of added) await raw.zadd(`${redis.prefix}:rt:unchunked`, Date.now() - SWEEP_AFTER_MS - 1_000, id)
  assert.equal(await q.sweep(), 5)
  assert.equal(await chunkJobs(redis, 'items'), 6, 'the bundle and a chunk per job')
  // Slow items and room for all six at once: the sweep's chunks start while the bundle runs the same jobs.
  const { handler, ran } = countingHandler(300)
  q.start({ handlers: new Map([['items', handler]]), concurrency: 8, log })
  await until('every job done', async () => (await q.stats()).jobs.done === 5)
  await until('BullMQ idle', () => withChunkQueue(redis, 'items', async (queue) => {
    const c = await queue.getJobCounts('wait', 'active', 'completed')
    return c.wait === 0 && c.active === 0 && c.completed === 6
  }))
  assert.deepEqual(added.map(({ id }) => ran.get(id)), added.map(() => [1]), 'every item ran once')
})
