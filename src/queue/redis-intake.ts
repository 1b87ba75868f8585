import { randomUUID } from 'node:crypto'
import type { JobsOptions, Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { StoreError } from '../errors.ts'
import { CREATE_JOBS } from './redis-scripts.ts'
import { callScript } from './redis-call.ts'
import { TurnGather } from './turn-gather.ts'
import { jobIdFor } from './types.ts'
import type { AddResult, CommitStats, NewJob } from './types.ts'

/** Adds per intake script call, and their payloads' JSON length: bounds one call's time on Redis' one thread. */
const BATCH_MAX = 256
const BATCH_MAX_CHARS = 1 << 20

/** Jobs of one chunk, not scheduled, that share one BullMQ job (a bundle). */
const BUNDLE_MAX = 64

/** A job of a bundle: its one chunk, items 0 to `end`. */
export interface BundlePart { id: string, end: number }
/**
 * Data of one BullMQ chunk job: items `start` to `end` (exclusive) of job `id`; or of a bundle,
 * `bundle` listing its jobs (the first is `id`'s).
 */
export interface ChunkData { id: string, type: string, chunk: number, start: number, end: number, bundle?: BundlePart[] }
/** One chunk job as BullMQ's addBulk takes it. */
export interface ChunkJob { name: string, data: ChunkData, opts: JobsOptions }

/** An add waiting for its batch to be written. */
interface PendingAdd { id: string, dedup: string | undefined, type: string, payload: string, items: number, chunks: number, notBefore: number, resolve: (r: AddResult) => void, reject: (e: StoreError) => void }
/** Adds written together; `due` once a turn has brought it no add (or it is old enough: `gather`). */
interface Batch { adds: PendingAdd[], chars: number, due: boolean, gather: TurnGather }
/** A batch that keeps growing is written this long after its first add at the latest. */
const MAX_WAIT_MS = 4
/** A reply of CREATE_JOBS: 1 when created; for a duplicate 0, the first job's id and, when its record is there, its total, chunks, type and notBefore. */
type CreateReply = 1 | [0, string, string?, string?, string?, string?]

/** `items` by `key`, each list in the items' order. */
function groupBy<T> (items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) {
    const list = groups.get(key(item))
    if (list === undefined) groups.set(key(item), [item])
    else list.push(item)
  }
  return groups
}

export function storeError (op: string, cause: unknown): StoreError {
  return new StoreError(`Redis ${op} failed: ${(cause as Error).message}`, { cause })
}

/** What {@link RedisIntake} takes from the queue it writes for. */
export interface RedisIntakeOptions {
  /** The queue's connection (no offline queue: a write while Redis is away fails). */
  redis: Redis
  /** Name of one of rawtrigger's keys, under the queue's prefix. */
  key: (kind: string, id?: string) => string
  /** Waits for the connection, or fails. */
  ready: () => Promise<void>
  /** Items per BullMQ job. */
  chunkSize: number
  /** Chunk `n` of a job of `total` items, as a BullMQ job with id `jobId`, delayed by `delayMs` (a scheduled job's). */
  chunkJob: (id: string, type: string, total: number, n: number, jobId: string, delayMs?: number) => ChunkJob
  /** The BullMQ queue of a job type. */
  queueFor: (type: string) => Queue
}

/**
 * Adds are written in batches (issue 11): per job type one script call for every record and
 * dedup check, with the chunks behind it; each add settles with its batch. A batch is due after
 * the first event-loop turn that brought it no add, or {@link MAX_WAIT_MS} after its first (a lone
 * add waits one turn, as on SQLite), and is written then, or, while another batch is being
 * written, when that write ends. A full batch is written at once.
 */
export class RedisIntake {
  readonly #redis: Redis
  readonly #ready: () => Promise<void>
  readonly #chunkSize: number
  readonly #chunkJob: RedisIntakeOptions['chunkJob']
  readonly #queueFor: (type: string) => Queue
  readonly #jobKey: string
  readonly #dedupKey: string
  readonly #unchunkedKey: string
  readonly #intakeKeys: string[]
  readonly #scripted = new WeakSet<Redis>()
  #batch: Batch | undefined
  #writing = 0
  readonly #commits: CommitStats = { commits: 0, jobs: 0 }

  constructor (options: RedisIntakeOptions) {
    const { redis, key } = options
    this.#redis = redis
    this.#ready = options.ready
    this.#chunkSize = options.chunkSize
    this.#chunkJob = options.chunkJob
    this.#queueFor = options.queueFor
    this.#jobKey = key('job') + ':'
    this.#dedupKey = key('dedup') + ':'
    // Before the job keys in every intake call (CREATE_JOBS names them).
    this.#unchunkedKey = key('unchunked')
    this.#intakeKeys = [key('stats'), key('index'), key('index', 'queued'), key('seq'), this.#unchunkedKey, key('index', 'scheduled'), key('scheduled')]
  }

  add (job: NewJob): Promise<AddResult> {
    const id = jobIdFor(job.dedupKey, randomUUID)
    let payload: string
    try {
      payload = JSON.stringify(job.payload)
    } catch (err) {
      return Promise.reject(storeError('add', err))
    }
    return new Promise((resolve, reject) => {
      let batch = this.#batch
      if (batch === undefined || batch.adds.length >= BATCH_MAX || batch.chars >= BATCH_MAX_CHARS) {
        if (batch?.due === true) this.#write(batch) // full while it waited for a write: it gains nothing by waiting on
        const next: Batch = batch = this.#batch = { adds: [], chars: 0, due: false, gather: new TurnGather(performance.now(), MAX_WAIT_MS) }
        setImmediate(() => this.#turnEnded(next))
      }
      batch.adds.push({ id, dedup: job.dedupKey, type: job.type, payload, items: job.items, chunks: this.#chunkCount(job.items), notBefore: job.notBefore ?? 0, resolve, reject })
      batch.chars += payload.length
    })
  }

  /** A turn has ended: a batch that grew in it waits for the next (up to {@link MAX_WAIT_MS}), else it is due. */
  #turnEnded (batch: Batch): void {
    if (this.#batch === batch && batch.gather.grew(batch.adds.length)) {
      setImmediate(() => this.#turnEnded(batch))
      return
    }
    batch.due = true
    if (this.#writing === 0 || this.#batch !== batch) this.#write(batch)
  }

  #write (batch: Batch): void {
    if (this.#batch === batch) this.#batch = undefined
    this.#writing++
    void this.#flush(batch.adds).finally(() => {
      this.#writing--
      const waiting = this.#batch
      if (this.#writing === 0 && waiting?.due === true) this.#write(waiting)
    })
  }

  async #flush (adds: PendingAdd[]): Promise<void> {
    try {
      if (this.#redis.status !== 'ready') await this.#ready()
      const byType = groupBy(adds, (a) => a.type)
      const results = new Map<PendingAdd, AddResult>()
      await Promise.all([...byType].map(([type, list]) => this.#flushType(type, list, results)))
      this.#commits.commits += byType.size
      this.#commits.jobs += adds.length
      for (const a of adds) a.resolve(results.get(a) as AddResult)
    } catch (err) {
      for (const a of adds) a.reject(storeError('add', err))
    }
  }

  /**
   * The adds of one type: one script call for the records and dedup checks on the type's BullMQ
   * connection, and the chunks of every add without a dedup key right behind it on that same
   * connection (its id is new, so it is created: Redis runs the two in order, one round trip).
   * Chunks of an add with a dedup key wait for the script's reply (created, or a duplicate).
   */
  async #flushType (type: string, adds: PendingAdd[], results: Map<PendingAdd, AddResult>): Promise<void> {
    const queue = this.#queueFor(type)
    const client = await this.#clientOf(queue)
    const keys = [...this.#intakeKeys]
    for (const a of adds) keys.push(this.#jobKey + a.id)
    // Two arguments per job: each costs the client an encoding, whatever its size.
    const args: Array<string | number> = [Date.now(), type]
    for (const a of adds) {
      let dedup = 0
      if (a.dedup !== undefined) dedup = keys.push(this.#dedupKey + a.dedup)
      args.push(a.payload, `${a.items} ${a.chunks} ${a.id} ${dedup} ${a.notBefore}`)
    }
    const created = callScript(client, 'rtCreateJobs', keys.length, ...keys, ...args) as Promise<CreateReply[]>
    const sure = this.#chunksOf(type, adds.filter((a) => a.dedup === undefined))
    const [replies] = await Promise.all([created, sure.length === 0 ? undefined : queue.addBulk(sure)])
    // The records are in Redis (and in the unchunked index), the chunks of deduplicated adds not
    // yet. A crash here, or a failed addBulk (503 to every add of the batch), leaves records that no
    // chunk runs: the sweep (redis-sweep.ts) queues their chunks a few seconds later. A resend with
    // the same webhook-id is a duplicate, and a duplicate's chunks are queued again, of the first
    // job's size, not its own: that mends it sooner. Chunk ids are fixed, so BullMQ adds each once,
    // and a job in a bundle runs for the first BullMQ job that starts it (CHUNK_START's claim).
    const late: ChunkJob[] = []
    const queued = new Set<string>()
    adds.forEach((a, i) => {
      const reply = replies[i] as CreateReply
      const [isNew, id, firstTotal, firstChunks, firstType, firstNotBefore] = reply === 1 ? [1, a.id] : reply
      results.set(a, { id, duplicate: isNew === 0 })
      if (a.dedup === undefined) {
        queued.add(id)
        return
      }
      const first = isNew === 1 ? { total: a.items, count: a.chunks, type: a.type, notBefore: a.notBefore }
        : firstTotal === undefined ? undefined
          : { total: Number(firstTotal), count: Number(firstChunks), type: firstType as string, notBefore: Number(firstNotBefore ?? 0) }
      // Not twice for one id: a duplicate of a job of this batch finds its chunks listed.
      if (first === undefined || queued.has(id)) return
      queued.add(id)
      // A scheduled job's chunks wait in BullMQ's delayed set until its time (a duplicate's: the first job's).
      late.push(...this.#chunksOfJob(id, first.type, first.total, first.count, first.notBefore))
    })
    // A duplicate's first job may be of another type: its chunks go to that type's queue.
    await Promise.all([...groupBy(late, (c) => c.name)].map(([t, list]) => this.#queueFor(t).addBulk(list)))
    // Not awaited: should it fail, the sweep finds the records and adds chunks BullMQ already has.
    if (queued.size > 0) this.#redis.zrem(this.#unchunkedKey, ...queued).catch(() => {})
  }

  /**
   * BullMQ jobs for new jobs: the chunks of each, except that jobs of one chunk, not scheduled,
   * share a bundle of up to a chunk's worth of items ({@link BUNDLE_MAX} jobs): one BullMQ job
   * for many small triggers, and still at most a chunk that a killed worker redoes.
   */
  #chunksOf (type: string, adds: PendingAdd[]): ChunkJob[] {
    const out: ChunkJob[] = []
    let bundle: ChunkJob | undefined
    let parts: BundlePart[] = []
    let items = 0
    for (const a of adds) {
      if (a.chunks > 1 || a.notBefore > 0) {
        out.push(...this.#chunksOfJob(a.id, type, a.items, a.chunks, a.notBefore))
        continue
      }
      if (bundle === undefined || items + a.items > this.#chunkSize || parts.length >= BUNDLE_MAX) {
        bundle = this.#chunkJob(a.id, type, a.items, 0, `${a.id}-c0`)
        out.push(bundle)
        parts = []
        items = 0
      } else if (parts.length === 1) {
        // A second job joins: the chunk becomes a bundle, under an id no chunk has.
        bundle.opts.jobId = `${bundle.data.id}-b`
        bundle.data.bundle = parts
      }
      parts.push({ id: a.id, end: a.items })
      items += a.items
    }
    return out
  }

  /** The `count` chunk jobs of job `id` under their fixed ids; a scheduled job's wait in BullMQ's delayed set until `notBefore`. */
  #chunksOfJob (id: string, type: string, total: number, count: number, notBefore: number): ChunkJob[] {
    const delay = Math.max(0, notBefore - Date.now())
    return Array.from({ length: count }, (_, n) => this.#chunkJob(id, type, total, n, `${id}-c${n}`, delay))
  }

  /** The queue's own connection, with the intake script on it. */
  async #clientOf (queue: Queue): Promise<Redis> {
    const client = await queue.getBackend().client as unknown as Redis
    if (!this.#scripted.has(client)) {
      client.defineCommand('rtCreateJobs', { lua: CREATE_JOBS }) // KEYS counted per call
      this.#scripted.add(client)
    }
    return client
  }

  /** Batches written (each: one script call, then the addBulk) and the adds they held. */
  get commitStats (): CommitStats {
    return { ...this.#commits }
  }

  #chunkCount (items: number): number {
    return Math.max(1, Math.ceil(items / this.#chunkSize))
  }
}
