import type { Logger } from '../log.ts'
import type { JobContext, JobHandler } from './handler.ts'
import { ItemBatch } from './item-batch.ts'
import type { ClaimedJob, DueItem, ItemOutcome, JobStore, RunOptions } from './types.ts'

/** A running job's lease; renewed every third of it, taken over by another worker when it lapses. */
export const LEASE_MS = 30_000
/** How often an idle worker looks for due jobs (retries, other processes' jobs, expired leases). */
export const POLL_MS = 500
/** Failed runs of one job before it is failed for good (a crash counts; a run that ends with items waiting for a retry does not). */
export const MAX_RUNS = 5
/** First delay after a failed run; doubled each run. */
export const RUN_RETRY_BASE_MS = 1_000
/** Items read from the store per page. */
const ITEM_PAGE = 500

/** Options of {@link Worker}. */
export interface WorkerOptions extends RunOptions {
  store: JobStore
}

interface Running { job: ClaimedJob, abort: AbortController, done: Promise<void> }

/** Claims due jobs from the store and runs their handlers, `concurrency` at a time. */
export class Worker {
  readonly #opts: WorkerOptions
  readonly #types: string[]
  readonly #leaseMs: number
  readonly #running = new Set<Running>()
  #timer: NodeJS.Timeout | undefined
  #filling = false
  #refill = false
  #stopping = false

  constructor (options: WorkerOptions) {
    this.#opts = options
    this.#types = [...options.handlers.keys()]
    this.#leaseMs = options.leaseMs ?? LEASE_MS
  }

  /** Jobs running now. */
  get active (): number {
    return this.#running.size
  }

  start (): void {
    if (this.#opts.concurrency === 0 || this.#types.length === 0) return
    this.#timer = setInterval(() => this.notify(), this.#opts.pollMs ?? POLL_MS)
    this.notify()
  }

  /** Looks for work now (called when a job was just stored). */
  notify (): void {
    if (this.#stopping || this.#opts.concurrency === 0) return
    if (this.#filling) {
      this.#refill = true
      return
    }
    this.#filling = true
    this.#fill().catch((err: unknown) => this.#opts.log.error({ err }, 'claiming jobs failed')).finally(() => {
      this.#filling = false
      if (this.#refill) {
        this.#refill = false
        this.notify()
      }
    })
  }

  async #fill (): Promise<void> {
    while (!this.#stopping && this.#running.size < this.#opts.concurrency) {
      const job = await this.#opts.store.claim(this.#types, this.#leaseMs)
      if (job === undefined) return
      const abort = new AbortController()
      const entry: Running = { job, abort, done: Promise.resolve() }
      entry.done = this.#run(job, abort).finally(() => {
        this.#running.delete(entry)
        this.notify()
      })
      this.#running.add(entry)
    }
  }

  async #run (job: ClaimedJob, abort: AbortController): Promise<void> {
    const { store, log: parent } = this.#opts
    const log = parent.child({ job: job.id, type: job.type, run: job.attempts })
    const handler = this.#opts.handlers.get(job.type) as JobHandler<unknown>
    // Outcomes of messages that end together share one transaction (item-batch.ts).
    const batch = new ItemBatch((marks) => store.markItems(job.id, marks))
    const renew = setInterval(() => {
      store.renew(job.id, job.attempts, this.#leaseMs).then((ours) => {
        if (!ours) abort.abort(new Error('lease lost'))
      }, (err: unknown) => log.warn({ err }, 'lease renewal failed'))
    }, Math.floor(this.#leaseMs / 3))
    try {
      if (job.faults >= MAX_RUNS) {
        await store.failRun(job.id, job.attempts, `gave up after ${MAX_RUNS} failed runs`)
        log.error('job failed: run limit reached')
        return
      }
      log.info('job started')
      await handler.run(this.#context(job, abort.signal, log, batch))
      // Also after an abort: items still pending put the job back in the queue, due at once.
      const state = await store.finishRun(job.id, job.attempts)
      log.info({ state }, state === 'done' ? 'job done' : 'job back in the queue: items pending')
    } catch (err) {
      if (this.#stopping) {
        await store.release(job.id, job.attempts).catch(() => {})
        return
      }
      const message = err instanceof Error ? err.message : String(err)
      const retryAt = job.faults + 1 < MAX_RUNS ? Date.now() + RUN_RETRY_BASE_MS * 2 ** job.faults : undefined
      log.error({ err, retryAt }, 'job run failed')
      await store.failRun(job.id, job.attempts, message, retryAt).catch((e: unknown) => log.error({ err: e }, 'recording the failure failed'))
    } finally {
      clearInterval(renew)
    }
  }

  #context (job: ClaimedJob, signal: AbortSignal, log: Logger, batch: ItemBatch): JobContext<unknown> {
    const store = this.#opts.store
    return {
      id: job.id,
      payload: job.payload,
      items: job.items,
      attempts: job.attempts,
      signal,
      log,
      async * dueItems (): AsyncGenerator<DueItem> {
        let after = 0
        for (;;) {
          const page = await store.dueItems(job.id, after, ITEM_PAGE)
          if (page.length === 0) return
          for (const item of page) {
            if (signal.aborted) return
            // Re-read: a cancel since the page was read stops the job before its next item.
            if (await store.itemPending(job.id, item.index)) yield item
          }
          after = (page[page.length - 1] as DueItem).index + 1
        }
      },
      markItem: (index: number, outcome: ItemOutcome) => batch.mark(index, outcome),
      keyedList: (name: string) => store.keyedList(name),
      observe: (event) => this.#opts.observe?.(job.type, event),
    }
  }

  /**
   * Stops claiming, asks running handlers to stop, waits up to `graceMs` for them, and gives back
   * (releases) every job still running then, so the next start resumes it at once.
   */
  async stop (graceMs: number): Promise<void> {
    this.#stopping = true
    clearInterval(this.#timer)
    const running = [...this.#running]
    for (const r of running) r.abort.abort(new Error('receiver stopping'))
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, graceMs, 'timeout') })
    const outcome = await Promise.race([Promise.all(running.map((r) => r.done)).then(() => 'finished' as const), grace])
    clearTimeout(timer)
    if (outcome === 'timeout') {
      for (const r of this.#running) await this.#opts.store.release(r.job.id, r.job.attempts).catch(() => {})
    }
  }
}
