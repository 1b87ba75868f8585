import type { Logger } from '../log.ts'
import type { ItemEvent, JobHandler } from './handler.ts'
import type { DueItem, ItemOutcome, KeyedList } from './item-types.ts'

export type { DueItem, ItemOutcome, KeyedList, ListEntry } from './item-types.ts'

/**
 * The states of a job. A job whose items all ended (some failed) is `done`; `failed` means it could
 * not run; `scheduled` is a job whose `notBefore` has not come (it has not started).
 */
export type JobState = 'scheduled' | 'queued' | 'running' | 'done' | 'failed' | 'cancelled'

/** The states of one item (one recipient of an e-mail job). */
export type ItemState = 'pending' | 'done' | 'failed' | 'cancelled'

/** A job as stored at intake. */
export interface NewJob {
  type: string
  /** The validated payload, stored as JSON. */
  payload: unknown
  /** Units of work tracked one by one (recipients); 0 for a job that is one unit. */
  items: number
  /**
   * The trigger's `webhook-id`: a second job with the same key is not created. A key that fits
   * {@link JOB_ID_RE} is also the job's id, so the sender knows the id without reading the answer.
   */
  dedupKey?: string
  /** Epoch ms before which the job does not start (`notBefore` of the body); absent: at once. */
  notBefore?: number
}

/** Job ids: what fits in a `/jobs/:id` path segment. */
export const JOB_ID_RE = /^[A-Za-z0-9_-]{1,64}$/

/** The id of a new job: its dedup key when that fits {@link JOB_ID_RE}, else a random UUID. */
export function jobIdFor (dedupKey: string | undefined, random: () => string): string {
  return dedupKey !== undefined && JOB_ID_RE.test(dedupKey) ? dedupKey : random()
}

/** What {@link JobStore.add} did. */
export interface AddResult {
  id: string
  /** True when a job with the same dedup key existed: nothing was created. */
  duplicate: boolean
}

/** One error of a job or an item, as shown by `GET /jobs/:id`. */
export interface JobErrorView {
  /** The item's position, absent for an error of the job itself. */
  index?: number
  message: string
  attempts: number
  /** The item's state: `pending` while a retry is due, `failed` for good. */
  state?: string
}

/** `GET /jobs/:id`. Times are ISO 8601. */
export interface JobView {
  id: string
  type: string
  state: JobState
  /** When a `scheduled` job will start (ISO 8601); only while it is scheduled. */
  notBefore?: string
  total: number
  /** Items done (for e-mail: sent). */
  sent: number
  failed: number
  pending: number
  /** Items a cancel stopped before they were tried (cancelled jobs only). */
  cancelled?: number
  attempts: number
  createdAt: string
  startedAt?: string
  finishedAt?: string
  /** The first errors, items in index order, then the job's own. */
  errors: JobErrorView[]
}

/** A job as `GET /jobs` lists it. */
export type JobSummary = Omit<JobView, 'errors'>

/** `GET /jobs?state=&limit=&before=`: newest first; `next` is the `before` of the next page. */
export interface JobListQuery {
  state?: JobState
  /** @default 50, at most 500 */
  limit?: number
  /** Cursor from a previous page's `next`. */
  before?: string
}

/** A page of jobs. */
export interface JobList {
  jobs: JobSummary[]
  next?: string
}

/** What a retry or cancel did; undefined from the store when the job does not exist. */
export interface ControlResult {
  /** Items re-queued (retry) or cancelled (cancel). */
  items: number
  /** The job's state afterwards. */
  state: JobState
  /** False when nothing was done: nothing failed, or the job had already ended. */
  changed: boolean
}

/** `GET /stats`, the store's part. */
export interface StoreStats {
  /** Jobs per state; `scheduled` only when there are some (and so in `GET /stats`: the contract's shape otherwise). */
  jobs: Record<Exclude<JobState, 'scheduled'>, number> & { scheduled?: number }
  items: { done: number, failed: number, pending: number }
}

/**
 * Where the SQLite store commits new jobs: `inline`, on the main connection, or `thread`, on a
 * writer thread with its own connection.
 */
export type WriterMode = 'thread' | 'inline'

/** Writes of new jobs and the jobs they held: their ratio is the mean group-commit size. */
export interface CommitStats {
  commits: number
  jobs: number
}

/** A job a worker holds under a lease. */
export interface ClaimedJob {
  id: string
  type: string
  payload: unknown
  items: number
  /** This run's number, 1 for the first. */
  attempts: number
  /** Runs that failed or died so far; runs that ended with items waiting for a retry do not count. */
  faults: number
}

/**
 * Durable job storage with leases. Every method that changes state commits before it resolves.
 * Two implementations keep the same behaviour: SQLite (embedded) and BullMQ (Redis).
 */
export interface JobStore extends JobControl {
  /** Writes of new jobs so far and the jobs they held (see {@link JobQueue.commitStats}). */
  readonly commitStats?: CommitStats | undefined
  add (job: NewJob): Promise<AddResult>
  get (id: string): Promise<JobView | undefined>
  stats (): Promise<StoreStats>
  /** Takes the oldest due job of these types (queued, or running with an expired lease). */
  claim (types: readonly string[], leaseMs: number): Promise<ClaimedJob | undefined>
  /** Extends the lease; false when the job is no longer ours (lease taken over). */
  renew (id: string, attempts: number, leaseMs: number): Promise<boolean>
  /** Items of a job that are pending and due, in index order, at most `limit`, from `after` on. */
  dueItems (id: string, after: number, limit: number): Promise<DueItem[]>
  /**
   * Records items' outcomes in one write (one transaction), in order; `retryAt` (epoch ms)
   * keeps an item pending until then.
   */
  markItems (id: string, marks: ReadonlyArray<{ index: number, outcome: ItemOutcome }>): Promise<void>
  /** Ends a run: done when no item is pending; else queued again for the earliest retry. */
  finishRun (id: string, attempts: number): Promise<JobState>
  /** The run failed as a whole: queued again at `retryAt`, or failed for good without it. */
  failRun (id: string, attempts: number, message: string, retryAt?: number): Promise<void>
  /** Gives a running job back (graceful stop): queued, due at once. */
  release (id: string, attempts: number): Promise<void>
  /** True while the item may still be sent: pending, and its job not cancelled. */
  itemPending (id: string, index: number): Promise<boolean>
  close (): Promise<void>
}

/** Job control and retention, the same on every store. */
export interface JobControl {
  list (query: JobListQuery): Promise<JobList>
  /** Failed items pending again, the job queued; undefined when there is no such job. */
  retry (id: string): Promise<ControlResult | undefined>
  /** Pending items cancelled, the job ends as cancelled; undefined when there is no such job. */
  cancel (id: string): Promise<ControlResult | undefined>
  /** Deletes a batch of jobs that finished before `before` (epoch ms); the number deleted. */
  purge (before: number): Promise<number>
  /** The keyed list `name` of a job type (e.g. the e-mail type's `suppressions`), kept by this store. */
  keyedList (name: string): KeyedList
}

/** What a queue needs to run jobs. */
export interface RunOptions {
  handlers: ReadonlyMap<string, JobHandler<unknown>>
  /** Jobs (SQLite) or chunks (BullMQ) run at once in this process; 0 runs none. */
  concurrency: number
  log: Logger
  /** How long a running job is held before another worker may take it over. */
  leaseMs?: number
  /** How often an idle worker looks for due work (SQLite). */
  pollMs?: number
  /** Receives each item's outcome with its job's type: the receiver hands it to that type's plugin (its metrics). */
  observe?: (type: string, event: ItemEvent) => void
}

/**
 * Where jobs live and how they get run: the receiver's one dependency on storage.
 * Two implementations with the same behaviour: SQLite with rawtrigger's own leased worker, and
 * BullMQ on Redis with BullMQ's workers.
 */
export interface JobQueue extends JobControl {
  /** Stores a job durably; resolves only after the commit. */
  add (job: NewJob): Promise<AddResult>
  /** Writes of new jobs so far (SQLite commits, Redis round trips) and the jobs they held. */
  readonly commitStats?: CommitStats | undefined
  get (id: string): Promise<JobView | undefined>
  stats (): Promise<StoreStats>
  /** Starts running jobs of the given types. */
  start (options: RunOptions): void
  /** A job was just stored here: look for work now. */
  notify (): void
  /** Stops taking work; running work gets `graceMs` to finish, the rest goes back to the queue. */
  stop (graceMs: number): Promise<void>
  close (): Promise<void>
}
