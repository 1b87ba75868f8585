import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../log.ts'
import type { ChunkJob } from './redis-intake.ts'
import { stateIndexes, withIndexes } from './redis-call.ts'
import { PROMOTE } from './redis-scripts.ts'

/**
 * A job record still in the `unchunked` index this long after its intake is taken for one whose
 * chunks never reached BullMQ (issue 12): its receiver died between the two writes, or Redis went
 * away between them. An intake takes milliseconds; a wait of a few seconds keeps the sweep off
 * batches still being written (and one that overlaps is harmless: chunk ids are fixed).
 */
export const SWEEP_AFTER_MS = 5_000
/** How often each process sweeps (and once when its queue starts). */
export const SWEEP_EVERY_MS = 2_000
/** Records read per step of a pass. */
const SWEEP_BATCH = 500

/** What {@link RedisSweep} takes from the queue it mends. */
export interface RedisSweepOptions {
  /** The queue's connection (no offline queue). */
  redis: Redis
  /** Name of one of rawtrigger's keys, under the queue's prefix. */
  key: (kind: string, id?: string) => string
  /** Chunk `n` of a job of `total` items, as a BullMQ job with id `jobId`, delayed by `delayMs`. */
  chunkJob: (id: string, type: string, total: number, n: number, jobId: string, delayMs?: number) => ChunkJob
  /** The BullMQ queue of a job type. */
  queueFor: (type: string) => Queue
}

/**
 * Queues the chunks of job records that have none. Intake writes a batch's records (each enters
 * `…:rt:unchunked`, scored by its creation time), then their chunks, then takes the records out of
 * `unchunked`; whatever is older than {@link SWEEP_AFTER_MS} there gets its chunks here, under the
 * ids intake gives them (`<id>-c<n>`). BullMQ adds a job id once (its add script returns the
 * existing job), so a sweep that races intake, or another process's sweep, adds nothing twice.
 * Every command names its keys (no key built inside a script), as Redis Cluster needs.
 */
export class RedisSweep {
  readonly #redis: Redis
  readonly #key: (kind: string, id?: string) => string
  readonly #unchunked: string
  readonly #scheduled: string
  /** The per-state indexes, PROMOTE's last KEYS (redis-call.ts). */
  readonly #indexes: string[]
  readonly #chunkJob: RedisSweepOptions['chunkJob']
  readonly #queueFor: (type: string) => Queue
  #timer: NodeJS.Timeout | undefined
  #pass: Promise<number> | undefined

  constructor (options: RedisSweepOptions) {
    this.#redis = options.redis
    this.#key = options.key
    this.#unchunked = options.key('unchunked')
    this.#scheduled = options.key('scheduled')
    this.#indexes = stateIndexes(options.key)
    this.#redis.defineCommand('rtPromote', { numberOfKeys: withIndexes(3), lua: PROMOTE })
    this.#chunkJob = options.chunkJob
    this.#queueFor = options.queueFor
  }

  /** Sweeps now and then every {@link SWEEP_EVERY_MS}; a failed pass (Redis away) is retried then. */
  start (log: Logger): void {
    if (this.#timer !== undefined) return
    const run = (): void => {
      if (this.#pass !== undefined || this.#redis.status !== 'ready') return
      this.sweep().then((jobs) => {
        if (jobs > 0) log.warn({ jobs }, 'sweep: queued the chunks of job records that had none (a receiver stopped, or Redis went away, between a record and its chunks)')
      }, (err: unknown) => log.debug({ err }, 'sweep failed; next try soon'))
    }
    this.#timer = setInterval(run, SWEEP_EVERY_MS)
    this.#timer.unref()
    run()
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop (): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#pass?.catch(() => {})
  }

  /**
   * One pass: scheduled jobs whose time has come are moved to queued ({@link PROMOTE}), then records
   * created before `now - SWEEP_AFTER_MS` without chunks get them; resolves with how many got chunks.
   */
  sweep (now = Date.now()): Promise<number> {
    this.#pass ??= this.#promote(now).then(() => this.#sweepAll(now - SWEEP_AFTER_MS)).finally(() => { this.#pass = undefined })
    return this.#pass
  }

  /**
   * A scheduled job reads `queued` once its time has come (redis-control.ts `summaryOf`); this moves
   * its record, the per-state index and the counters of `/stats` too, within a sweep interval. A
   * chunk that starts first takes the job from scheduled to running itself.
   */
  async #promote (now: number): Promise<void> {
    for (;;) {
      const ids = await this.#redis.zrangebyscore(this.#scheduled, '-inf', now, 'LIMIT', 0, SWEEP_BATCH)
      if (ids.length === 0) return
      const pipe = this.#redis.pipeline() as unknown as { rtPromote: (...a: string[]) => unknown, exec: () => Promise<Array<[Error | null, unknown]> | null> }
      for (const id of ids) pipe.rtPromote(this.#key('job', id), this.#key('stats'), this.#scheduled, ...this.#indexes, id)
      for (const [err] of (await pipe.exec()) ?? []) if (err !== null) throw err
      if (ids.length < SWEEP_BATCH) return
    }
  }

  async #sweepAll (cutoff: number): Promise<number> {
    let queued = 0
    for (;;) {
      const ids = await this.#redis.zrangebyscore(this.#unchunked, '-inf', cutoff, 'LIMIT', 0, SWEEP_BATCH)
      if (ids.length === 0) return queued
      queued += await this.#queueChunks(ids)
      // Out of the index only once BullMQ has the chunks: a pass that fails leaves them for the next.
      await this.#redis.zrem(this.#unchunked, ...ids)
      if (ids.length < SWEEP_BATCH) return queued
    }
  }

  async #queueChunks (ids: readonly string[]): Promise<number> {
    const pipe = this.#redis.pipeline()
    for (const id of ids) pipe.hmget(this.#key('job', id), 'type', 'total', 'chunks', 'state', 'notBefore')
    const replies = (await pipe.exec()) ?? []
    const byType = new Map<string, ChunkJob[]>()
    let jobs = 0
    ids.forEach((id, i) => {
      const [err, fields] = replies[i] ?? [new Error('no reply')]
      if (err !== null) throw err
      const [type, total, chunks, state, notBefore] = fields as Array<string | null>
      // Gone (purged), or already ended (cancelled, say): nothing to run.
      if (type == null || (state !== 'queued' && state !== 'running' && state !== 'scheduled')) return
      let list = byType.get(type)
      if (list === undefined) byType.set(type, list = [])
      // A scheduled job's chunks keep its schedule: delayed by what is left of it, not run at once.
      const delay = Math.max(0, Number(notBefore ?? 0) - Date.now())
      for (let n = 0; n < Number(chunks); n++) list.push(this.#chunkJob(id, type, Number(total), n, `${id}-c${n}`, delay))
      jobs++
    })
    await Promise.all([...byType].map(([type, list]) => this.#queueFor(type).addBulk(list)))
    return jobs
  }
}
