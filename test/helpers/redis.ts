// Redis for the tests of the BullMQ store: the server at REDIS_URL (default 127.0.0.1:6379), one
// key prefix per test, and every key under it deleted (SCAN + DEL) when the test ends.
// No Redis: the test is skipped with a message saying why, unless REQUIRE_REDIS=1 (set by .ci/run),
// which turns the missing server into a failure.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { TestContext } from 'node:test'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { BullmqQueue, type BullmqQueueOptions } from '../../src/queue/bullmq-queue.ts'
import { CREATE_JOBS } from '../../src/queue/redis-scripts.ts'
import { waitFor } from './wait.ts'

/** Where the tests look for Redis. */
export const REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : 'redis://127.0.0.1:6379'
/** How long a fresh BullmqQueue may take to connect. */
const CONNECT_TIMEOUT_MS = 10_000
/** A PING that takes longer than this counts as no Redis. */
const PING_TIMEOUT_MS = 2_000
/** Keys asked for per SCAN step when cleaning up. */
const SCAN_COUNT = 500

let checked: Promise<string | undefined> | undefined

/** Undefined when Redis answers PING, else why not. Asked once per process. */
export function redisUnavailable (): Promise<string | undefined> {
  checked ??= (async () => {
    const client = new Redis(REDIS_URL, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null, // one try: this is a probe
    })
    let lastError: Error | undefined
    client.on('error', (err: Error) => { lastError = err }) // reported below, with its OS code
    let timer: NodeJS.Timeout | undefined
    try {
      const ping = client.connect().then(() => client.ping())
      const guard = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS)
      })
      const answer = await Promise.race([ping, guard])
      return answer === 'PONG' ? undefined : `PING answered ${String(answer)}`
    } catch (err) {
      const cause = lastError ?? (err as Error)
      const code = (cause as NodeJS.ErrnoException).code
      return code === undefined || cause.message.includes(code) ? cause.message : `${code}: ${cause.message}`
    } finally {
      clearTimeout(timer)
      client.disconnect()
    }
  })()
  return checked
}

/** A fresh prefix, `rttest-<hex>`: no glob characters, so `SCAN MATCH <prefix>:*` finds exactly its keys. */
export function uniquePrefix (): string {
  return `rttest-${randomBytes(6).toString('hex')}`
}

/** Keys under `prefix:` (BullMQ's and rawtrigger's). */
export async function keysUnder (url: string, prefix: string): Promise<string[]> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  try {
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', SCAN_COUNT)
      keys.push(...batch)
      cursor = next
    } while (cursor !== '0')
    return keys
  } finally {
    client.disconnect()
  }
}

/** Deletes every key under `prefix:`; returns how many were deleted. */
export async function deletePrefix (url: string, prefix: string): Promise<number> {
  const keys = await keysUnder(url, prefix)
  if (keys.length === 0) return 0
  const client = new Redis(url, { maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  try {
    let deleted = 0
    for (let i = 0; i < keys.length; i += SCAN_COUNT) deleted += await client.del(...keys.slice(i, i + SCAN_COUNT))
    return deleted
  } finally {
    client.disconnect()
  }
}

/** A test's share of Redis. */
export interface RedisFixture {
  url: string
  /** This test's key prefix. */
  prefix: string
  /**
   * Runs `fn` when the test ends, before the keys are deleted (last registered, first run): close
   * queues and kill processes here, so nothing writes keys back after the clean-up.
   */
  defer (fn: () => unknown): void
}

/**
 * Redis for one test: `undefined` (and the test skipped) when no Redis answers, a failure instead
 * when REQUIRE_REDIS=1. Registers the clean-up in t.after(): the deferred closers, then SCAN + DEL.
 */
export async function useRedis (t: TestContext): Promise<RedisFixture | undefined> {
  const reason = await redisUnavailable()
  if (reason !== undefined) {
    const message = `no Redis answers at ${REDIS_URL} (${reason}); start redis-server or set REDIS_URL`
    if (process.env.REQUIRE_REDIS === '1') assert.fail(`REQUIRE_REDIS=1: ${message}`)
    t.skip(`${message}; REQUIRE_REDIS=1 makes this a failure`)
    return undefined
  }
  const prefix = uniquePrefix()
  const closers: Array<() => unknown> = []
  t.after(async () => {
    for (const fn of closers.reverse()) {
      try {
        await fn()
      } catch {
        // a closer that fails must not keep the keys from being deleted
      }
    }
    await deletePrefix(REDIS_URL, prefix)
  })
  return { url: REDIS_URL, prefix, defer: (fn) => { closers.push(fn) } }
}

/**
 * Resolves once a fresh BullmqQueue answers: it refuses commands until its connection is up
 * (enableOfflineQueue: false; the contract test 'add() works right after the queue is made' shows it).
 */
export async function bullmqConnected (queue: BullmqQueue): Promise<void> {
  await waitFor('the Redis connection', () => queue.stats().then(() => true), CONNECT_TIMEOUT_MS, 20)
}

/** A BullmqQueue on the test's url and prefix, stopped and closed when the test ends. */
export function newBullmq (redis: RedisFixture, options: Omit<BullmqQueueOptions, 'url' | 'prefix'> = {}): BullmqQueue {
  const queue = new BullmqQueue({ ...options, url: redis.url, prefix: redis.prefix })
  redis.defer(async () => {
    await queue.stop(0).catch(() => {})
    await queue.close().catch(() => {})
  })
  return queue
}

/** {@link newBullmq}, resolved once its connection is up. */
export async function openBullmq (redis: RedisFixture, options: Omit<BullmqQueueOptions, 'url' | 'prefix'> = {}): Promise<BullmqQueue> {
  const queue = newBullmq(redis, options)
  await bullmqConnected(queue)
  return queue
}

/** Runs `fn` with BullMQ's own queue of job type `type` on the test's prefix (the chunks' queue), closed after. */
export async function withChunkQueue<T> (redis: RedisFixture, type: string, fn: (queue: Queue) => Promise<T>): Promise<T> {
  const queue = new Queue(`jobs-${type}`, { connection: { url: redis.url }, prefix: redis.prefix })
  queue.on('error', () => {})
  try {
    return await fn(queue)
  } finally {
    await queue.close()
  }
}

/** A record made by the intake script alone, as {@link crashedIntake} leaves it. */
export interface CrashedRecord {
  id: string
  items: number
  chunks: number
  /** Back-dates the record (its `unchunked` score), as if the crash were that long ago. */
  ageMs?: number
  /** Its not-before time (epoch ms): a scheduled job. */
  notBefore?: number
  /** Its webhook-id, when the trigger had one. */
  dedup?: string
}

/**
 * What a receiver killed after the intake script and before its addBulk leaves behind: the record
 * of a job of type `items` (in the unchunked index), and no chunk in BullMQ.
 */
export async function crashedIntake (redis: RedisFixture, job: CrashedRecord): Promise<void> {
  const raw = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  raw.on('error', () => {})
  try {
    raw.defineCommand('rtCreateJobs', { lua: CREATE_JOBS })
    const rt = (kind: string): string => `${redis.prefix}:rt:${kind}`
    const keys = [rt('stats'), rt('index'), rt('index:queued'), rt('seq'), rt('unchunked'), rt('index:scheduled'), rt('scheduled'), rt(`job:${job.id}`)]
    const dedup = job.dedup === undefined ? 0 : keys.push(rt(`dedup:${job.dedup}`))
    await (raw as unknown as { rtCreateJobs: (...a: Array<string | number>) => Promise<unknown> }).rtCreateJobs(
      keys.length, ...keys, Date.now() - (job.ageMs ?? 0), 'items', '{}', `${job.items} ${job.chunks} ${job.id} ${dedup} ${job.notBefore ?? 0}`)
  } finally {
    raw.disconnect()
  }
}
