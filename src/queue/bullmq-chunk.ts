import type { Logger } from '../log.ts'
import type { ChunkItems } from './bullmq-items.ts'
import type { JobHandler } from './handler.ts'
import { bullmq, type Job } from './lazy-packages.ts'
import { stateIndexes } from './redis-call.ts'
import type { ChunkData } from './redis-intake.ts'
import type { RunOptions } from './types.ts'

/** Items `start` to `end` (exclusive) of chunk `chunk` of job `id`: what one pass of a handler runs. */
interface Part { id: string, chunk: number, start: number, end: number }

/** What a {@link ChunkRunner} takes from its queue. */
export interface ChunkRunnerOptions {
  /** Runs one of the scripts the queue registered (`rtChunkStart`, …). */
  call: (name: string, ...args: Array<string | number>) => Promise<unknown>
  /** Name of one of rawtrigger's keys, under the queue's prefix. */
  key: (kind: string, id?: string) => string
  chunks: ChunkItems
  /** Fires on stop: a chunk with items left is handed back at once. */
  signal: AbortSignal
}

/**
 * Runs BullMQ jobs: one chunk of a job, or a bundle (intake puts the one-chunk jobs of a batch in
 * one BullMQ job, issue 11). A bundle's parts run `concurrency` at a time; a part that throws
 * lets the others finish, then the bundle is retried with backoff, and parts already finished are
 * skipped on the retry (their job's state says so). Every part runs only for the BullMQ job that
 * claimed it first (`runner:<chunk>` in its record): the sweep's or a duplicate's `<id>-c0` and
 * the bundle that holds the same job do not both run it.
 */
export class ChunkRunner {
  readonly #call: ChunkRunnerOptions['call']
  readonly #key: ChunkRunnerOptions['key']
  /** The per-state indexes, the last KEYS of every script here (redis-call.ts). */
  readonly #indexes: string[]
  readonly #chunks: ChunkItems
  readonly #signal: AbortSignal

  constructor (options: ChunkRunnerOptions) {
    this.#call = options.call
    this.#key = options.key
    this.#indexes = stateIndexes(options.key)
    this.#chunks = options.chunks
    this.#signal = options.signal
  }

  async process (job: Job<ChunkData>, token: string | undefined, options: RunOptions): Promise<void> {
    const { data } = job
    const handler = options.handlers.get(data.type) as JobHandler<unknown>
    // Every start of this BullMQ job, delayed retries and stalled takeovers included: the run number.
    const run = Math.max(1, job.attemptsStarted)
    // A retry's chunk (`<id>-c<n>-r<round>`) runs whoever ran the chunk before; first runs claim it.
    const claim = data.bundle !== undefined || job.id === `${data.id}-c${data.chunk}` ? 1 : 0
    const parts = partsOf(data)
    let error: unknown
    let dueAt: number | undefined
    await eachLimited(parts, Math.max(1, options.concurrency), async (part) => {
      try {
        const due = await this.#part(part, handler, run, job.id ?? '', claim, options, data.type)
        if (due !== undefined) dueAt = Math.min(dueAt ?? due, due)
      } catch (err) {
        error ??= err
      }
    })
    if (error !== undefined) throw error // BullMQ retries with backoff, then fails it (and its jobs)
    if (dueAt !== undefined) {
      // Retries later (or handed back on stop): it waits in BullMQ's delayed set.
      await job.moveToDelayed(this.#signal.aborted ? Date.now() : dueAt, token)
      throw new (bullmq().DelayedError)()
    }
  }

  /** Runs one part; returns when its earliest pending item is due, or undefined when none is left. */
  async #part (part: Part, handler: JobHandler<unknown>, run: number, runner: string, claim: number, options: RunOptions, type: string): Promise<number | undefined> {
    const { id, chunk, start, end } = part
    const active = this.#key('active', id)
    const state = await this.#call('rtChunkStart', this.#key('job', id), this.#key('stats'), this.#key('finished'), active, ...this.#indexes, Date.now(), id, chunk, run, runner, claim)
    if (state !== 'running') return undefined // failed, cancelled, gone or another BullMQ job's: nothing to do
    let pending: number | undefined
    try {
      const log = options.log.child({ job: id, chunk, run })
      const ctx = this.#chunks.context(id, start, end, run, await this.#chunks.payload(id), log, (event) => options.observe?.(type, event))
      await handler.run(ctx)
      pending = await this.#chunks.pendingIn(id, start, end)
    } catch (err) {
      await this.#call('rtChunkPause', this.#key('job', id), this.#key('stats'), active, ...this.#indexes, id, chunk)
      throw err
    }
    if (pending !== undefined) {
      await this.#call('rtChunkPause', this.#key('job', id), this.#key('stats'), active, ...this.#indexes, id, chunk)
      return pending
    }
    await this.#call('rtChunkDone', this.#key('chunks', id), this.#key('job', id), this.#key('stats'), this.#key('finished'), active, ...this.#indexes, chunk, Date.now(), id)
    return undefined
  }

  /** BullMQ gave up on a job (its attempts are spent): the jobs of its parts fail, those not finished. */
  failed (job: Job<ChunkData> | undefined, err: Error, log: Logger): void {
    if (job === undefined || job.attemptsMade < (job.opts.attempts ?? 1)) return
    for (const { id } of partsOf(job.data)) {
      this.#call('rtState', this.#key('job', id), this.#key('stats'), this.#key('finished'), ...this.#indexes, 'failed', Date.now(), err.message, id)
        .catch((e: unknown) => log.error({ err: e }, 'recording a failed job failed'))
    }
  }
}

function partsOf (data: ChunkData): Part[] {
  return data.bundle === undefined ? [data] : data.bundle.map((b) => ({ id: b.id, chunk: 0, start: 0, end: b.end }))
}

/** Calls `fn` for every item, at most `limit` at a time. */
async function eachLimited<T> (items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  if (items.length === 1) return fn(items[0] as T)
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}
