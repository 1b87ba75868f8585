import { randomUUID } from 'node:crypto'
import { DelayedError, Queue, Worker, type Job } from 'bullmq'
import { Redis } from 'ioredis'
import { ConfigError, StoreError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { ItemEvent, JobContext, JobHandler } from './handler.ts'
import { CHUNK_DONE, CREATE_JOB, MARK_ITEM, SET_STATE, parseItem } from './redis-scripts.ts'
import { jobIdFor } from './types.ts'
import { RedisControl, summaryOf } from './redis-control.ts'
import type {
  AddResult, ControlResult, DueItem, ItemOutcome, JobErrorView, JobList, JobListQuery, JobQueue, JobView, NewJob, RunOptions,
  StoreStats, SuppressionList,
} from './types.ts'

/** Recipients per BullMQ job: the unit many workers share, and at most what a killed worker redoes. */
export const CHUNK_SIZE = 200
/** Lock of a running chunk; a killed worker's chunk is taken over within about twice this. */
export const CHUNK_LOCK_MS = 15_000
/** Runs of a chunk that throws before it fails for good (BullMQ attempts, exponential backoff). */
const CHUNK_ATTEMPTS = 5
const CHUNK_BACKOFF_MS = 1_000
const MAX_ERRORS_SHOWN = 20
const PAYLOAD_CACHE = 8

/** Options of {@link BullmqQueue}. */
export interface BullmqQueueOptions {
  /** `redis://[user:pass@]host:port/db`. */
  url: string
  /** Key prefix in Redis; BullMQ's keys and rawtrigger's records live under it. @default 'rawtrigger' */
  prefix?: string
  /** Items per BullMQ job. @default 200 */
  chunkSize?: number
  /** Global limit in items (e-mails) per second across every worker on this Redis. */
  rateLimit?: number
  /** How long BullMQ keeps finished chunk jobs (its removeOnComplete/removeOnFail age). @default 7 days */
  retainMs?: number
}

interface ChunkData { id: string, type: string, chunk: number, start: number, end: number }

function storeError (op: string, cause: unknown): StoreError {
  return new StoreError(`Redis ${op} failed: ${(cause as Error).message}`, { cause })
}

/**
 * Jobs in Redis: each job's record and per-item state in rawtrigger's keys (updated by Lua, so
 * every process sees one truth), its work as BullMQ jobs of `chunkSize` items. BullMQ does the
 * rest: attempts with backoff, stalled-job recovery, the global rate limit, graceful close.
 */
export class BullmqQueue implements JobQueue {
  readonly #redis: Redis
  readonly #url: string
  readonly #queue: Queue
  readonly #prefix: string
  readonly #chunkSize: number
  readonly #rateLimit: number | undefined
  readonly #retainS: number
  readonly #payloads = new Map<string, unknown>()
  readonly #control: RedisControl
  #worker: Worker | undefined
  #abort = new AbortController()

  constructor (options: BullmqQueueOptions) {
    let url: URL
    try {
      url = new URL(options.url)
    } catch (cause) {
      throw new ConfigError(`queue URL is invalid: ${JSON.stringify(options.url)}`, { cause })
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new ConfigError(`queue URL must be redis:// or rediss:// (got ${url.protocol}//)`)
    this.#url = options.url
    this.#prefix = options.prefix ?? 'rawtrigger'
    this.#chunkSize = options.chunkSize ?? CHUNK_SIZE
    this.#rateLimit = options.rateLimit
    this.#retainS = Math.ceil((options.retainMs ?? 7 * 24 * 3600 * 1000) / 1000)
    // Intake fails fast (503) while Redis is away instead of queueing commands in memory.
    this.#redis = new Redis(options.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
    this.#redis.on('error', () => {}) // reconnects by itself; each command reports its own failure
    this.#redis.defineCommand('rtCreate', { numberOfKeys: 4, lua: CREATE_JOB })
    this.#redis.defineCommand('rtState', { numberOfKeys: 3, lua: SET_STATE })
    this.#redis.defineCommand('rtMark', { numberOfKeys: 4, lua: MARK_ITEM })
    this.#redis.defineCommand('rtChunkDone', { numberOfKeys: 4, lua: CHUNK_DONE })
    this.#queue = new Queue('jobs', { connection: { url: options.url }, prefix: this.#prefix })
    this.#queue.on('error', () => {})
    this.#control = new RedisControl(this.#redis, (kind, id) => this.#key(kind, id), (id, type, indexes) => this.#requeue(id, type, indexes))
  }

  /** Chunks holding re-queued items run again, as new BullMQ jobs (the finished ones keep their ids). */
  async #requeue (id: string, type: string, indexes: number[]): Promise<void> {
    const total = Number(await this.#redis.hget(this.#key('job', id), 'total'))
    const chunks = [...new Set(indexes.map((i) => Math.floor(i / this.#chunkSize)))]
    await this.#redis.srem(this.#key('chunks', id), ...chunks.map(String))
    const round = Date.now().toString(36)
    await this.#queue.addBulk(chunks.map((n) => ({
      name: type,
      data: { id, type, chunk: n, start: n * this.#chunkSize, end: Math.min(total, (n + 1) * this.#chunkSize) } satisfies ChunkData,
      opts: { jobId: `${id}-c${n}-r${round}`, attempts: CHUNK_ATTEMPTS, backoff: { type: 'exponential', delay: CHUNK_BACKOFF_MS } },
    })))
  }

  list (query: JobListQuery): Promise<JobList> {
    return this.#wrap('read', () => this.#control.list(query))
  }

  retry (id: string): Promise<ControlResult | undefined> {
    return this.#wrap('write', () => this.#control.retry(id))
  }

  cancel (id: string): Promise<ControlResult | undefined> {
    return this.#wrap('write', () => this.#control.cancel(id))
  }

  purge (before: number): Promise<number> {
    return this.#wrap('purge', () => this.#control.purge(before))
  }

  get suppressions (): SuppressionList {
    return this.#control
  }

  async #wrap<T> (op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw storeError(op, err)
    }
  }

  #key (kind: string, id = ''): string {
    return `${this.#prefix}:rt:${kind}${id === '' ? '' : ':' + id}`
  }

  #call (name: string, ...args: Array<string | number>): Promise<unknown> {
    return (this.#redis as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>)[name]!(...args)
  }

  async add (job: NewJob): Promise<AddResult> {
    const id = jobIdFor(job.dedupKey, randomUUID)
    const chunks = Math.max(1, Math.ceil(job.items / this.#chunkSize))
    try {
      const created = await this.#call('rtCreate', this.#key('job', id), this.#key('stats'), this.#key('index'), this.#key('seq'),
        job.type, JSON.stringify(job.payload), job.items, chunks, Date.now(), id)
      // Also for a duplicate: a crash between the record and its chunks is mended by the resend.
      // Chunk ids are fixed, so BullMQ adds each chunk once.
      await this.#queue.addBulk(Array.from({ length: chunks }, (_, n) => ({
        name: job.type,
        data: { id, type: job.type, chunk: n, start: n * this.#chunkSize, end: Math.min(job.items, (n + 1) * this.#chunkSize) } satisfies ChunkData,
        opts: { jobId: `${id}-c${n}`, attempts: CHUNK_ATTEMPTS, backoff: { type: 'exponential', delay: CHUNK_BACKOFF_MS } },
      })))
      return { id, duplicate: created === 0 }
    } catch (err) {
      throw storeError('add', err)
    }
  }

  async get (id: string): Promise<JobView | undefined> {
    try {
      const h = await this.#redis.hgetall(this.#key('job', id))
      if (h.state === undefined) return undefined
      const errorIdx = await this.#redis.zrange(this.#key('errors', id), '0', String(MAX_ERRORS_SHOWN - 1))
      const raw = errorIdx.length === 0 ? [] : await this.#redis.hmget(this.#key('items', id), ...errorIdx)
      const errors: JobErrorView[] = errorIdx.map((idx, i) => {
        const item = parseItem(raw[i] ?? null)
        return { index: Number(idx), message: item.error, attempts: item.attempts, state: item.state === 'f' ? 'failed' : 'pending' }
      })
      if (h.error !== undefined) errors.push({ message: h.error, attempts: Number(h.attempts) })
      return { ...summaryOf(id, h), errors }
    } catch (err) {
      throw storeError('read', err)
    }
  }

  async stats (): Promise<StoreStats> {
    try {
      const h = await this.#redis.hgetall(this.#key('stats'))
      const n = (k: string): number => Number(h[k] ?? 0)
      return {
        jobs: { queued: n('jobs:queued'), running: n('jobs:running'), done: n('jobs:done'), failed: n('jobs:failed'), cancelled: n('jobs:cancelled') },
        items: { done: n('items:done'), failed: n('items:failed'), pending: n('items:total') - n('items:done') - n('items:failed') },
      }
    } catch (err) {
      throw storeError('read', err)
    }
  }

  start (options: RunOptions): void {
    if (options.concurrency === 0 || options.handlers.size === 0) return
    const lockDuration = options.leaseMs ?? CHUNK_LOCK_MS
    this.#worker = new Worker('jobs', (job: Job<ChunkData>, token?: string) => this.#process(job, token, options), {
      connection: { url: this.#url },
      prefix: this.#prefix,
      concurrency: options.concurrency,
      lockDuration,
      stalledInterval: lockDuration,
      maxStalledCount: 3,
      // A retention of 0 keeps everything, as on SQLite.
      removeOnComplete: this.#retainS === 0 ? { count: Number.MAX_SAFE_INTEGER } : { age: this.#retainS },
      removeOnFail: this.#retainS === 0 ? { count: Number.MAX_SAFE_INTEGER } : { age: this.#retainS },
      // BullMQ limits jobs; a chunk of C items may start every C/rate seconds, so items stay at
      // `rateLimit` per second across all workers on average.
      ...(this.#rateLimit === undefined ? {} : { limiter: { max: 1, duration: Math.ceil(this.#chunkSize * 1000 / this.#rateLimit) } }),
    })
    this.#worker.on('error', (err) => options.log.warn({ err }, 'BullMQ worker error'))
    this.#worker.on('failed', (job, err) => {
      if (job === undefined || job.attemptsMade < (job.opts.attempts ?? 1)) return
      this.#call('rtState', this.#key('job', job.data.id), this.#key('stats'), this.#key('finished'), 'failed', Date.now(), err.message, job.data.id)
        .catch((e: unknown) => options.log.error({ err: e }, 'recording a failed job failed'))
    })
  }

  async #process (job: Job<ChunkData>, token: string | undefined, options: RunOptions): Promise<void> {
    const { id, type, chunk, start, end } = job.data
    const handler = options.handlers.get(type) as JobHandler<unknown>
    const log = options.log.child({ job: id, chunk, run: job.attemptsMade + 1 })
    const state = await this.#call('rtState', this.#key('job', id), this.#key('stats'), this.#key('finished'), 'running', Date.now(), '', id)
    if (state !== 'running') return // failed, cancelled or gone: nothing to do
    const ctx = this.#context(id, start, end, job.attemptsMade + 1, await this.#payload(id), log, options.observe ?? (() => {}))
    await handler.run(ctx)
    const pending = await this.#pendingIn(id, start, end)
    if (pending !== undefined) {
      // Retries later (or handed back on stop): the chunk waits in BullMQ's delayed set.
      await job.moveToDelayed(this.#abort.signal.aborted ? Date.now() : pending, token)
      throw new DelayedError()
    }
    await this.#call('rtChunkDone', this.#key('chunks', id), this.#key('job', id), this.#key('stats'), this.#key('finished'), chunk, Date.now(), id)
  }

  async #payload (id: string): Promise<unknown> {
    const cached = this.#payloads.get(id)
    if (cached !== undefined) return cached
    const json = await this.#redis.hget(this.#key('job', id), 'payload')
    const payload = JSON.parse(json ?? 'null') as unknown
    this.#payloads.set(id, payload)
    if (this.#payloads.size > PAYLOAD_CACHE) this.#payloads.delete(this.#payloads.keys().next().value as string)
    return payload
  }

  /** The earliest due time of an item still pending in [start, end), or undefined when none is. */
  async #pendingIn (id: string, start: number, end: number): Promise<number | undefined> {
    if (end <= start) return undefined
    const fields = Array.from({ length: end - start }, (_, i) => String(start + i))
    const raw = await this.#redis.hmget(this.#key('items', id), ...fields)
    let due: number | undefined
    for (const r of raw) {
      const item = parseItem(r)
      if (item.state === 'p') due = Math.min(due ?? Infinity, item.dueAt)
    }
    return due
  }

  #context (id: string, start: number, end: number, attempts: number, payload: unknown, log: Logger, observe: (e: ItemEvent) => void): JobContext<unknown> {
    const redis = this.#redis
    const keys = [this.#key('job', id), this.#key('items', id), this.#key('errors', id), this.#key('stats')]
    const signal = this.#abort.signal
    const control = this.#control
    return {
      id, payload, attempts, signal, log, observe, suppressions: control,
      items: end - start,
      async * dueItems (): AsyncGenerator<DueItem> {
        if (end <= start) return
        const raw = await redis.hmget(keys[1] as string, ...Array.from({ length: end - start }, (_, i) => String(start + i)))
        const now = Date.now()
        for (let i = 0; i < raw.length; i++) {
          const item = parseItem(raw[i] ?? null)
          if (signal.aborted) return
          // Re-checked per item: a cancel stops the chunk before its next message.
          if (item.state === 'p' && item.dueAt <= now && await control.itemPending(id, start + i)) yield { index: start + i, attempts: item.attempts }
        }
      },
      markItem: async (index: number, outcome: ItemOutcome) => {
        const error = outcome.state === 'done' ? '' : outcome.error
        const retryAt = outcome.state === 'retry' ? outcome.retryAt : 0
        await this.#call('rtMark', ...keys, index, outcome.state, error, retryAt)
      },
    }
  }

  notify (): void {} // BullMQ workers are woken by Redis itself

  async stop (graceMs: number): Promise<void> {
    this.#abort.abort(new Error('receiver stopping'))
    if (this.#worker === undefined) return
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, graceMs, 'timeout') })
    const outcome = await Promise.race([this.#worker.close().then(() => 'closed' as const), grace])
    clearTimeout(timer)
    // Past the grace period, chunks still running are left to BullMQ's stalled-job recovery.
    if (outcome === 'timeout') await this.#worker.close(true)
  }

  async close (): Promise<void> {
    await this.#worker?.close(true)
    await this.#queue.close()
    this.#redis.disconnect()
  }
}
