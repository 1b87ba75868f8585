// Scheduled jobs on Redis, below the JobQueue contract (queue-scheduled.test.ts): a scheduled job's
// chunks wait in BullMQ's delayed set until its time; the sweep queues the chunks of a scheduled
// record left without them with what is left of the delay, not at once; a cancel takes the
// delayed chunks out; the sweep moves a record whose time has come to queued, counters too.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Job } from 'bullmq'
import { SWEEP_AFTER_MS } from '../src/queue/redis-sweep.ts'
import { crashedIntake, openBullmq, useRedis, withChunkQueue, type RedisFixture } from './helpers/redis.ts'

const CHUNK_SIZE = 10
const HOUR_MS = 3600_000

/** BullMQ's delayed chunks of `type`: id and when each is due (epoch ms). */
function delayedChunks (redis: RedisFixture, type: string): Promise<Array<{ id: string, dueAt: number }>> {
  return withChunkQueue(redis, type, async (queue) => {
    const jobs: Job[] = await queue.getDelayed()
    return jobs.map((j) => ({ id: j.id as string, dueAt: j.timestamp + j.delay })).sort((a, b) => a.id.localeCompare(b.id))
  })
}

test('Redis: a scheduled job\'s chunks are delayed until its time; a cancel removes them', async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openBullmq(redis, { chunkSize: CHUNK_SIZE })
  const notBefore = Date.now() + HOUR_MS
  const { id } = await q.add({ type: 'items', payload: {}, items: 25, notBefore })
  const delayed = await delayedChunks(redis, 'items')
  assert.deepEqual(delayed.map((c) => c.id), [`${id}-c0`, `${id}-c1`, `${id}-c2`])
  for (const c of delayed) assert.ok(Math.abs(c.dueAt - notBefore) < 1_000, `${c.id} due ${c.dueAt - notBefore} ms off its time`)
  assert.equal((await q.cancel(id))?.state, 'cancelled')
  assert.deepEqual(await delayedChunks(redis, 'items'), [], 'the delayed chunks left BullMQ')
  assert.equal((await q.stats()).jobs.scheduled, undefined, 'no scheduled job counted')
  assert.equal((await q.stats()).jobs.cancelled, 1)
})

test('Redis: the sweep queues a chunkless scheduled record\'s chunks with the rest of its delay, not at once', async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openBullmq(redis, { chunkSize: CHUNK_SIZE })
  const notBefore = Date.now() + HOUR_MS
  await crashedIntake(redis, { id: 'sched-crash', items: 15, chunks: Math.ceil(15 / CHUNK_SIZE), notBefore, ageMs: SWEEP_AFTER_MS + 1_000 })
  assert.equal((await q.get('sched-crash'))?.state, 'scheduled')
  assert.equal(await q.sweep(), 1)
  const delayed = await delayedChunks(redis, 'items')
  assert.deepEqual(delayed.map((c) => c.id), ['sched-crash-c0', 'sched-crash-c1'])
  for (const c of delayed) assert.ok(Math.abs(c.dueAt - notBefore) < 1_000, `${c.id} due ${c.dueAt - notBefore} ms off its time`)
  assert.equal((await q.get('sched-crash'))?.state, 'scheduled', 'still scheduled after the sweep')
})

test('Redis: once its time has come, a scheduled record reads queued at once, and the sweep moves its index and counts', async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const q = await openBullmq(redis, { chunkSize: CHUNK_SIZE })
  const notBefore = Date.now() + 300
  const { id } = await q.add({ type: 'items', payload: {}, items: 5, notBefore })
  assert.deepEqual((await q.list({ state: 'scheduled' })).jobs.map((j) => j.id), [id])
  assert.equal((await q.stats()).jobs.scheduled, 1)
  // No worker here: the chunk stays delayed, then waiting; the record is what is checked.
  await new Promise((resolve) => setTimeout(resolve, notBefore - Date.now() + 20))
  assert.equal((await q.get(id))?.state, 'queued', 'the view is right before the sweep')
  assert.deepEqual((await q.list({ state: 'scheduled' })).jobs, [], 'nor listed as scheduled')
  await q.sweep()
  const stats = await q.stats()
  assert.equal(stats.jobs.scheduled, undefined)
  assert.equal(stats.jobs.queued, 1)
  assert.deepEqual((await q.list({ state: 'queued' })).jobs.map((j) => j.id), [id])
})
