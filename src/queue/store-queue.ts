import type {
  AddResult, CommitStats, ControlResult, JobList, JobListQuery, JobQueue, JobStore, JobView, NewJob, KeyedList, RunOptions, StoreStats,
} from './types.ts'
import { Worker } from './worker.ts'

/** A {@link JobQueue} made of a leased {@link JobStore} (SQLite) and rawtrigger's own {@link Worker}. */
export class StoreQueue implements JobQueue {
  readonly store: JobStore
  #worker: Worker | undefined

  constructor (store: JobStore) {
    this.store = store
  }

  /** Jobs running now in this process. */
  get active (): number {
    return this.#worker?.active ?? 0
  }

  add (job: NewJob): Promise<AddResult> {
    return this.store.add(job)
  }

  get commitStats (): CommitStats | undefined {
    return this.store.commitStats
  }

  get (id: string): Promise<JobView | undefined> {
    return this.store.get(id)
  }

  stats (): Promise<StoreStats> {
    return this.store.stats()
  }

  list (query: JobListQuery): Promise<JobList> {
    return this.store.list(query)
  }

  retry (id: string): Promise<ControlResult | undefined> {
    return this.store.retry(id)
  }

  cancel (id: string): Promise<ControlResult | undefined> {
    return this.store.cancel(id)
  }

  purge (before: number): Promise<number> {
    return this.store.purge(before)
  }

  keyedList (name: string): KeyedList {
    return this.store.keyedList(name)
  }

  start (options: RunOptions): void {
    this.#worker = new Worker({ ...options, store: this.store })
    this.#worker.start()
  }

  notify (): void {
    this.#worker?.notify()
  }

  async stop (graceMs: number): Promise<void> {
    await this.#worker?.stop(graceMs)
  }

  close (): Promise<void> {
    return this.store.close()
  }
}
