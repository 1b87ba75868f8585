import { ConfigError } from '../errors.ts'
import { bullmq, ioredis, type Job, type Queue, type Redis, type Worker } from './lazy-packages.ts'
import { guardList } from './list-guard.ts'
import { CHUNK_DONE, CHUNK_PAUSE, CHUNK_START, MARK_ITEM, SET_STATE } from './redis-scripts.ts'
import { callScript, parseItem, withIndexes } from './redis-call.ts'
import { ChunkItems } from './bullmq-items.ts'
import { ChunkRunner } from './bullmq-chunk.ts'
import { RedisControl, summaryOf } from './redis-control.ts'
import { RedisLists } from './redis-lists.ts'
import { RedisIntake, storeError, type ChunkData, type ChunkJob } from './redis-intake.ts'
import { RedisSweep } from './redis-sweep.ts'
import type {
  AddResult, CommitStats, ControlResult, JobErrorView, JobList, JobListQuery, JobQueue, JobView, NewJob, RunOptions,
  KeyedList, StoreStats,
} from './types.ts'

/** Recipients per BullMQ job: the unit many workers share, and at most what a killed worker redoes. */
export const CHUNK_SIZE = 200
/** Lock of a running chunk; a killed worker's chunk is taken over within about twice this. */
export const CHUNK_LOCK_MS = 15_000
/** Runs of a chunk that throws before it fails for good (BullMQ attempts, exponential backoff). */
const CHUNK_ATTEMPTS = 5
const CHUNK_BACKOFF = { type: 'exponential', delay: 1_000 } as const
const MAX_ERRORS_SHOWN = 20
/** How long a store call waits for a (re)connecting Redis before it fails with 503. */
export const CONNECT_WAIT_MS = 2_000

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

/**
 * Jobs in Redis: each job's record and per-item state in rawtrigger's keys (updated by Lua, so
 * every process sees one truth), its work as BullMQ jobs of `chunkSize` items. BullMQ does the
 * rest: attempts with backoff, stalled-job recovery, the global rate limit, graceful close.
 */
export class BullmqQueue implements JobQueue {
  readonly #redis: Redis
  readonly #url: string
  readonly #queues = new Map<string, Queue>()
  readonly #prefix: string
  readonly #chunkSize: number
  readonly #rateLimit: number | undefined
  readonly #retainS: number
  readonly #control: RedisControl
  readonly #lists: RedisLists
  readonly #runner: ChunkRunner
  readonly #intake: RedisIntake
  readonly #sweep: RedisSweep
  #lastError: Error | undefined
  #workers: Worker[] = []
  readonly #abort = new AbortController()
  #readyWait: Promise<void> | undefined

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
    this.#redis = new (ioredis().Redis)(options.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
    // Reconnects by itself; each command reports its own failure, a wait for the connection this one.
    this.#redis.on('error', (err: Error) => { this.#lastError = err })
    this.#redis.on('ready', () => { this.#lastError = undefined })
    // Intake and the sweep write chunks the same way: one shape, one queue per type.
    const chunks = {
      redis: this.#redis,
      key: (kind: string, id?: string) => this.#key(kind, id),
      chunkJob: (id: string, type: string, total: number, n: number, jobId: string, delayMs?: number) => this.#chunkJob(id, type, total, n, jobId, delayMs),
      queueFor: (type: string) => this.#queueFor(type),
    }
    this.#intake = new RedisIntake({ ...chunks, ready: () => this.#ready(), chunkSize: this.#chunkSize })
    this.#sweep = new RedisSweep(chunks)
    this.#redis.defineCommand('rtState', { numberOfKeys: withIndexes(3), lua: SET_STATE })
    this.#redis.defineCommand('rtMark', { numberOfKeys: 4, lua: MARK_ITEM })
    this.#redis.defineCommand('rtChunkDone', { numberOfKeys: withIndexes(5), lua: CHUNK_DONE })
    this.#redis.defineCommand('rtChunkStart', { numberOfKeys: withIndexes(4), lua: CHUNK_START })
    this.#redis.defineCommand('rtChunkPause', { numberOfKeys: withIndexes(3), lua: CHUNK_PAUSE })
    this.#control = new RedisControl(this.#redis, (kind, id) => this.#key(kind, id), (id, type, indexes) => this.#requeue(id, type, indexes),
      async (id, type, chunks) => { await Promise.all(Array.from({ length: chunks }, (_, n) => this.#queueFor(type).remove(`${id}-c${n}`))) })
    this.#lists = new RedisLists(this.#redis, (kind) => this.#key(kind))
    const items = new ChunkItems(this.#redis, (kind, id) => this.#key(kind, id), this.#control, (name) => this.keyedList(name), this.#abort.signal)
    this.#runner = new ChunkRunner({ call: (name, ...args) => this.#call(name, ...args), key: (kind, id) => this.#key(kind, id), chunks: items, signal: this.#abort.signal })
  }

  /** Chunks holding re-queued items run again, as new BullMQ jobs (the finished ones keep their ids). */
  async #requeue (id: string, type: string, indexes: number[]): Promise<void> {
    const total = Number(await this.#redis.hget(this.#key('job', id), 'total'))
    const chunks = [...new Set(indexes.map((i) => Math.floor(i / this.#chunkSize)))]
    await this.#redis.srem(this.#key('chunks', id), ...chunks.map(String))
    const round = Date.now().toString(36)
    await this.#queueFor(type).addBulk(chunks.map((n) => this.#chunkJob(id, type, total, n, `${id}-c${n}-r${round}`)))
  }

  list (query: JobListQuery): Promise<JobList> { return this.#wrap('read', () => this.#control.list(query)) }
  retry (id: string): Promise<ControlResult | undefined> { return this.#wrap('write', () => this.#control.retry(id)) }
  cancel (id: string): Promise<ControlResult | undefined> { return this.#wrap('write', () => this.#control.cancel(id)) }
  purge (before: number): Promise<number> { return this.#wrap('purge', () => this.#control.purge(before)) }
  /** Queues the chunks of records stored without them, a few seconds old ({@link RedisSweep}); `start()` sweeps every 2 s. */
  sweep (): Promise<number> { return this.#wrap('sweep', () => this.#sweep.sweep()) }

  keyedList (name: string): KeyedList {
    return guardList(name, this.#lists.list(name), storeError)
  }

  async #wrap<T> (op: string, fn: () => Promise<T>): Promise<T> {
    try {
      await this.#ready()
      return await fn()
    } catch (err) {
      throw storeError(op, err)
    }
  }

  #key (kind: string, id = ''): string {
    return `${this.#prefix}:rt:${kind}${id === '' ? '' : ':' + id}`
  }

  #call (name: string, ...args: Array<string | number>): Promise<unknown> {
    return callScript(this.#redis, name, ...args)
  }

  /** Batched: see {@link RedisIntake}. */
  add (job: NewJob): Promise<AddResult> { return this.#intake.add(job) }

  /** Batches written (each: one script call, then the addBulk) and the adds they held. */
  get commitStats (): CommitStats {
    return this.#intake.commitStats
  }

  /** `delayMs` > 0: a scheduled job's chunk, in BullMQ's delayed set until then (kept there across restarts). */
  #chunkJob (id: string, type: string, total: number, n: number, jobId: string, delayMs = 0): ChunkJob {
    return {
      name: type,
      data: { id, type, chunk: n, start: n * this.#chunkSize, end: Math.min(total, (n + 1) * this.#chunkSize) },
      opts: { jobId, attempts: CHUNK_ATTEMPTS, backoff: CHUNK_BACKOFF, ...(delayMs > 0 ? { delay: delayMs } : {}) },
    }
  }

  /**
   * One BullMQ queue per job type, so a worker only takes the types it has a handler for (serve
   * processes with different `--handlers` can share one Redis).
   */
  #queueFor (type: string): Queue {
    let queue = this.#queues.get(type)
    if (queue === undefined) {
      // No offline queue and one retry (ioredis's 20 held every request of a 6 s outage behind an
      // addBulk in flight at the kill): while Redis is away intake answers 503, not a late 202.
      queue = new (bullmq().Queue)(`jobs-${type}`, { connection: { url: this.#url, enableOfflineQueue: false, maxRetriesPerRequest: 1 }, prefix: this.#prefix })
      queue.on('error', () => {})
      this.#queues.set(type, queue)
    }
    return queue
  }

  /** Waits for the connection (commands fail fast while it is down, so intake answers 503). */
  #ready (): Promise<void> {
    if (this.#redis.status === 'ready') return Promise.resolve()
    // One wait (one 'ready' listener) shared by every call made while the connection is down.
    this.#readyWait ??= new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#redis.off('ready', onReady)
        const last = this.#lastError // ECONNREFUSED and the like stay readable on the cause
        const message = `not connected within ${CONNECT_WAIT_MS} ms (${this.#redis.status}${last === undefined ? '' : `; last error: ${last.message}`})`
        reject(last === undefined ? new Error(message) : new Error(message, { cause: last }))
      }, CONNECT_WAIT_MS)
      const onReady = (): void => {
        clearTimeout(timer)
        resolve()
      }
      this.#redis.once('ready', onReady)
    }).finally(() => { this.#readyWait = undefined })
    return this.#readyWait
  }

  async get (id: string): Promise<JobView | undefined> {
    try {
      await this.#ready()
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

  stats (): Promise<StoreStats> { return this.#wrap('read', () => this.#control.stats()) }

  start (options: RunOptions): void {
    // Every process sweeps, a receive-only one too: the chunks it queues are run by any worker.
    this.#sweep.start(options.log)
    if (options.concurrency === 0) return
    const lockDuration = options.leaseMs ?? CHUNK_LOCK_MS
    for (const type of options.handlers.keys()) {
      const worker = new (bullmq().Worker)(`jobs-${type}`, (job: Job<ChunkData>, token?: string) => this.#runner.process(job, token, options), {
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
      worker.on('error', (err) => options.log.warn({ err }, 'BullMQ worker error'))
      worker.on('failed', (job, err) => this.#runner.failed(job, err, options.log))
      this.#workers.push(worker)
    }
  }

  notify (): void {} // BullMQ workers are woken by Redis itself

  async stop (graceMs: number): Promise<void> {
    this.#abort.abort(new Error('receiver stopping'))
    await this.#sweep.stop()
    if (this.#workers.length === 0) return
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, graceMs, 'timeout') })
    const closed = Promise.all(this.#workers.map((w) => w.close())).then(() => 'closed' as const)
    const outcome = await Promise.race([closed, grace])
    clearTimeout(timer)
    // Past the grace period, chunks still running are left to BullMQ's stalled-job recovery.
    if (outcome === 'timeout') await Promise.all(this.#workers.map((w) => w.close(true)))
  }

  async close (): Promise<void> {
    await this.#sweep.stop()
    await Promise.all(this.#workers.map((w) => w.close(true)))
    await Promise.all([...this.#queues.values()].map((q) => q.close()))
    this.#redis.disconnect()
  }
}
