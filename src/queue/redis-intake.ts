import { randomUUID } from 'node:crypto'
import type { JobsOptions, Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { StoreError } from '../errors.ts'
import { CREATE_JOBS, callScript } from './redis-scripts.ts'
import { jobIdFor } from './types.ts'
import type { AddResult, CommitStats, NewJob } from './types.ts'

/** Adds per intake script call, and their payloads' JSON length: bounds one call's time on Redis' one thread. */
const BATCH_MAX = 256
const BATCH_MAX_CHARS = 1 << 20

/** Data of one BullMQ chunk job: items `start` to `end` (exclusive) of job `id`. */
export interface ChunkData { id: string, type: string, chunk: number, start: number, end: number }
/** One chunk job as BullMQ's addBulk takes it. */
export interface ChunkJob { name: string, data: ChunkData, opts: JobsOptions }

/** An add waiting for its batch to be written. */
interface PendingAdd { id: string, dedup: string | undefined, type: string, payload: string, items: number, chunks: number, notBefore: number, resolve: (r: AddResult) => void, reject: (e: StoreError) => void }
/** Adds written together; `due` once the turn that opened it has ended. */
interface Batch { adds: PendingAdd[], chars: number, due: boolean }
/** A reply of CREATE_JOBS: created (1) or not, the id, and for a duplicate the first job's total, chunks, type and notBefore. */
type CreateReply = [number, string, string?, string?, string?, string?]

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
 * Adds are written in batches (issue 11): one script call for every record and dedup check,
 * then one addBulk per job type for the chunks; each add settles with its batch. A batch is
 * written when the turn that opened it ends (a setImmediate: a lone add waits for no timer), or,
 * while another batch is being written, when that write ends: the adds of the turns in between
 * share it (a group commit, as on SQLite). A full batch is written at once.
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
    // Before the job keys in every intake call; the queued index is the one REINDEX names.
    this.#unchunkedKey = key('unchunked')
    this.#intakeKeys = [key('stats'), key('index'), key('index', 'queued'), key('seq'), this.#unchunkedKey]
    redis.defineCommand('rtCreateJobs', { lua: CREATE_JOBS }) // KEYS counted per call
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
        const next: Batch = batch = this.#batch = { adds: [], chars: 0, due: false }
        setImmediate(() => {
          next.due = true
          if (this.#writing === 0 || this.#batch !== next) this.#write(next)
        })
      }
      batch.adds.push({ id, dedup: job.dedupKey, type: job.type, payload, items: job.items, chunks: this.#chunkCount(job.items), notBefore: job.notBefore ?? 0, resolve, reject })
      batch.chars += payload.length
    })
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
      const keys = [...this.#intakeKeys]
      for (const a of adds) keys.push(this.#jobKey + a.id)
      const args: Array<string | number> = [Date.now(), '+notBefore']
      for (const a of adds) {
        let dedup = 0
        if (a.dedup !== undefined) dedup = keys.push(this.#dedupKey + a.dedup)
        args.push(a.type, a.payload, a.items, a.chunks, a.id, dedup, a.notBefore)
      }
      const replies = await callScript(this.#redis, 'rtCreateJobs', keys.length, ...keys, ...args) as CreateReply[]
      // The records are in Redis (and in the unchunked index), their chunks not yet. A crash here,
      // or a failed addBulk (503 to every add of the batch), leaves records that no chunk runs:
      // the sweep (redis-sweep.ts) queues their chunks a few seconds later. A resend with the same
      // webhook-id is a duplicate, and a duplicate's chunks are queued again, of the first job's
      // size, not its own: that mends it sooner. Chunk ids are fixed, so BullMQ adds each once.
      const chunks = new Map<string, ChunkJob[]>()
      const queued = new Set<string>()
      const results = adds.map((a, i): AddResult => {
        const [created, id, firstTotal, firstChunks, firstType, firstNotBefore] = replies[i] as CreateReply
        const first = created === 1 ? { total: a.items, count: a.chunks, type: a.type, notBefore: a.notBefore }
          : firstTotal === undefined ? undefined
            : { total: Number(firstTotal), count: Number(firstChunks), type: firstType as string, notBefore: Number(firstNotBefore ?? 0) }
        // Not twice for one id: a duplicate of a job of this batch finds its chunks listed.
        if (first !== undefined && !queued.has(id)) {
          queued.add(id)
          let list = chunks.get(first.type)
          if (list === undefined) chunks.set(first.type, list = [])
          // A scheduled job's chunks wait in BullMQ's delayed set until its time (a duplicate's: the first job's).
          const delay = Math.max(0, first.notBefore - Date.now())
          for (let n = 0; n < first.count; n++) list.push(this.#chunkJob(id, first.type, first.total, n, `${id}-c${n}`, delay))
        }
        return { id, duplicate: created === 0 }
      })
      await Promise.all([...chunks].map(([type, list]) => this.#queueFor(type).addBulk(list)))
      // Not awaited: should it fail, the sweep finds the records and adds chunks BullMQ already has.
      if (queued.size > 0) this.#redis.zrem(this.#unchunkedKey, ...queued).catch(() => {})
      this.#commits.commits++
      this.#commits.jobs += adds.length
      for (let i = 0; i < adds.length; i++) adds[i]!.resolve(results[i]!)
    } catch (err) {
      for (const a of adds) a.reject(storeError('add', err))
    }
  }

  /** Batches written (each: one script call, then the addBulk) and the adds they held. */
  get commitStats (): CommitStats {
    return { ...this.#commits }
  }

  #chunkCount (items: number): number {
    return Math.max(1, Math.ceil(items / this.#chunkSize))
  }
}
