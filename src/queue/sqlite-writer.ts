import type { Worker } from 'node:worker_threads'
import type Database from 'better-sqlite3'
import { StoreError } from '../errors.ts'
import { startWorker } from '../worker-thread.ts'
import { timeOrderedId } from './job-ids.ts'
import { TurnGather } from './turn-gather.ts'
import { createInserter, failure, SEP, type FromWriter, type InsertResults, type ToWriter, type WriterData } from './sqlite-insert.ts'
import { jobIdFor, type AddResult, type CommitStats, type NewJob, type WriterMode } from './types.ts'

interface Waiter { resolve: (r: AddResult) => void, reject: (e: unknown) => void }
interface Batch { ids: string[], waiters: Waiter[] }


/**
 * Inline mode: a batch is committed after the first event-loop turn in which it did not grow, or
 * {@link MAX_COMMIT_WAIT_MS} after its first job, whichever comes first: while requests keep arriving
 * (a new connection per request) they gather, and once a turn brings none (keep-alive clients wait
 * for their 202s) the batch goes at once; a lone job waits one turn. The earlier fixed gap of 2–4 ms
 * capped keep-alive at connections ÷ gap and spun the loop while it waited.
 */
export const MAX_COMMIT_WAIT_MS = 4

/**
 * Inserts new jobs with group commit: jobs added in one event-loop turn form a batch, one batch is
 * committed at a time, and everything that arrived meanwhile goes into the next — a lone job waits
 * for one commit, fifty concurrent ones share one, with no timer. Each `add()` resolves once its
 * commit has returned. In `thread` mode the commits run on a worker thread with its own connection,
 * so HTTP parsing and SQLite can use two cores; `inline` commits on the main connection.
 */
export class SqliteWriter {
  readonly #data: WriterData
  #thread: Worker | undefined
  #outbox = ''
  #outWaiters: Waiter[] = []
  #outIds: string[] = []
  #scheduled = false
  #nextBatch = 0
  readonly #inFlight = new Map<number, Batch>()
  #closing: Promise<void> | undefined
  #onDrained: (() => void) | undefined
  /** Inline mode: the open batch's gathering (see {@link MAX_COMMIT_WAIT_MS}). */
  #gather: TurnGather | undefined
  readonly #inline: ((batches: readonly string[]) => InsertResults) | undefined
  readonly stats: CommitStats = { commits: 0, jobs: 0 }

  /** `db` is the main connection, used in `inline` mode. */
  constructor (db: Database.Database, busyTimeoutMs: number, mode: WriterMode) {
    this.#data = { file: db.name, busyTimeoutMs }
    this.#inline = mode === 'inline' ? createInserter(db) : undefined
  }

  add (job: NewJob): Promise<AddResult> {
    if (this.#closing !== undefined) return Promise.reject(new StoreError('SQLite insert failed: the store is closed'))
    let payload: string
    try {
      payload = JSON.stringify(job.payload)
    } catch (err) {
      return Promise.reject(new StoreError('SQLite insert failed: the payload is not serialisable', { cause: err }))
    }
    const id = jobIdFor(job.dedupKey, timeOrderedId)
    return new Promise((resolve, reject) => {
      this.#outbox += `${this.#outbox === '' ? '' : SEP}${id}${SEP}${job.type}${SEP}${job.items}${SEP}${job.dedupKey ?? ''}${SEP}${job.notBefore ?? ''}${SEP}${payload}`
      this.#outIds.push(id)
      this.#outWaiters.push({ resolve, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#send())
      }
    })
  }

  #send (): void {
    this.#scheduled = false
    // One batch in flight: what arrives meanwhile goes in the next, sent when this one's answer is back.
    if (this.#outWaiters.length === 0 || this.#inFlight.size > 0) return
    if (this.#inline !== undefined) {
      this.#gather ??= new TurnGather(performance.now(), MAX_COMMIT_WAIT_MS)
      if (this.#gather.grew(this.#outWaiters.length)) {
        // It grew this turn: what the next turn brings joins it.
        this.#scheduled = true
        setImmediate(() => this.#send())
        return
      }
      this.#gather = undefined
    }
    const batch = this.#nextBatch++
    const jobs = this.#outbox
    this.#inFlight.set(batch, { ids: this.#outIds, waiters: this.#outWaiters })
    this.#outbox = ''
    this.#outIds = []
    this.#outWaiters = []
    if (this.#inline !== undefined) {
      let reply: FromWriter
      try {
        reply = { t: 'done', batches: [batch], results: this.#inline([jobs]) }
      } catch (err) {
        reply = failure([batch], err)
      }
      this.#onMessage(reply)
      return
    }
    this.#thread ??= this.#startThread()
    // Held while answers are awaited, so a script that only adds does not exit before its commit.
    if (this.#inFlight.size === 1) this.#thread.ref()
    this.#thread.postMessage({ t: 'add', batch, jobs } satisfies ToWriter)
  }

  /** Starts the thread now (it takes a few ms, more under tsx) rather than on the first add. */
  start (): void {
    if (this.#inline === undefined) this.#thread ??= this.#startThread()
  }

  #startThread (): Worker {
    const thread = startWorker(import.meta.url, 'sqlite-writer-thread', this.#data)
    thread.unref() // an idle writer keeps no process alive
    thread.on('message', (m: FromWriter) => this.#onMessage(m))
    thread.on('error', (err) => this.#onThreadGone(thread, err))
    thread.on('exit', (code) => this.#onThreadGone(thread, new Error(`the writer thread exited (code ${code})`)))
    return thread
  }

  #onMessage (m: FromWriter): void {
    if (m.t === 'closed') return
    if (m.t === 'failed') {
      const error = new StoreError(`SQLite insert failed${m.code === undefined ? '' : ` (${m.code})`}: ${m.message}`, { cause: Object.assign(new Error(m.message), { code: m.code }) })
      for (const n of m.batches) this.#take(n)?.waiters.forEach((w) => w.reject(error))
      this.#sendNext()
      return
    }
    this.stats.commits++
    m.batches.forEach((n, i) => {
      const batch = this.#take(n)
      if (batch === undefined) return
      const results = m.results[i] as Array<string | null>
      this.stats.jobs += results.length
      batch.waiters.forEach((w, j) => {
        const existing = results[j] ?? null
        w.resolve(existing === null ? { id: batch.ids[j] as string, duplicate: false } : { id: existing, duplicate: true })
      })
    })
    this.#sendNext()
  }

  /** The answer of the batch in flight is in: the jobs that arrived meanwhile go now. */
  #sendNext (): void {
    if (this.#inFlight.size > 0) return
    if (this.#outWaiters.length > 0) {
      if (!this.#scheduled) this.#send()
    } else {
      this.#onDrained?.()
    }
  }

  #take (n: number): Batch | undefined {
    const batch = this.#inFlight.get(n)
    this.#inFlight.delete(n)
    if (this.#inFlight.size === 0) this.#thread?.unref()
    return batch
  }

  /** A crashed thread fails what it held (nothing was committed for them); the next add starts a new one. */
  #onThreadGone (thread: Worker, err: Error): void {
    if (this.#thread !== thread) return
    this.#thread = undefined
    if (this.#inFlight.size === 0) return this.#sendNext()
    const error = new StoreError(`SQLite insert failed: ${err.message}`, { cause: err })
    for (const batch of this.#inFlight.values()) batch.waiters.forEach((w) => w.reject(error))
    this.#inFlight.clear()
    this.#sendNext()
  }

  /** Commits what was added, then stops the thread. Adds after this reject. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#inFlight.size > 0 || this.#outWaiters.length > 0) {
        await new Promise<void>((resolve) => {
          this.#onDrained = resolve
          this.#sendNext()
        })
      }
      const thread = this.#thread
      if (thread === undefined) return
      thread.ref() // until it has exited
      await new Promise<void>((resolve) => {
        thread.once('exit', () => resolve())
        thread.postMessage({ t: 'close' } satisfies ToWriter)
      })
    })()
    return this.#closing
  }
}
