import type Database from 'better-sqlite3'
import { LIST_LIMIT, LIST_LIMIT_MAX, PURGE_BATCH } from './control-limits.ts'
import { toSummary, VIEW_STATE_SQL, type JobRow } from './sqlite-schema.ts'
import type { ControlResult, JobList, JobListQuery, JobState } from './types.ts'

/** Pages given back to the file system per retention step. */
const VACUUM_PAGES = 500

/** Job control and retention on the SQLite file: the parts the worker does not need. */
export class SqliteControl {
  readonly #db: Database.Database
  readonly #s

  constructor (db: Database.Database) {
    this.#db = db
    this.#s = {
      list: db.prepare(`SELECT * FROM jobs WHERE seq < ? AND (? IS NULL OR ${VIEW_STATE_SQL} = ?) ORDER BY seq DESC LIMIT ?`),
      job: db.prepare(`SELECT seq, ${VIEW_STATE_SQL} AS state, total - done - failed AS open FROM jobs WHERE id = ?`),
      retryItems: db.prepare(`UPDATE items SET state = 'pending', attempts = 0, due_at = 0, error = NULL
        WHERE job_seq = ? AND state = 'failed'`),
      requeue: db.prepare(`UPDATE jobs SET failed = failed - ?, state = CASE WHEN state = 'running' THEN 'running' ELSE 'queued' END,
        due_at = ?, finished_at = NULL, error = NULL WHERE seq = ?`),
      cancelItems: db.prepare(`UPDATE items SET state = 'cancelled' WHERE job_seq = ? AND state = 'pending'`),
      cancelJob: db.prepare(`UPDATE jobs SET state = 'cancelled', finished_at = ?, lease_until = NULL WHERE seq = ?`),
      oldJobs: db.prepare(`SELECT seq FROM jobs WHERE finished_at < ? AND state IN ('done', 'failed', 'cancelled')
        ORDER BY finished_at LIMIT ?`).pluck(),
      deleteItems: db.prepare('DELETE FROM items WHERE job_seq = ?'),
      deletePayload: db.prepare('DELETE FROM payloads WHERE job_seq = ?'),
      deleteJob: db.prepare('DELETE FROM jobs WHERE seq = ?'),
    }
  }

  list (query: JobListQuery): JobList {
    const limit = Math.min(query.limit ?? LIST_LIMIT, LIST_LIMIT_MAX)
    const before = query.before === undefined ? Number.MAX_SAFE_INTEGER : Number(query.before)
    const state = query.state ?? null
    const now = Date.now()
    const rows = this.#s.list.all(before, state, now, state, limit) as JobRow[]
    const out: JobList = { jobs: rows.map((row) => toSummary(row, now)) }
    if (rows.length === limit) out.next = String((rows[rows.length - 1] as JobRow).seq)
    return out
  }

  /** Failed items become pending again and the job is queued; `items` 0 means nothing had failed. */
  retry (id: string): ControlResult | undefined {
    return this.#db.transaction((): ControlResult | undefined => {
      const job = this.#s.job.get(Date.now(), id) as { seq: number, state: JobState } | undefined
      if (job === undefined) return undefined
      // A cancelled job's unsent items stay unsent; its failures are not worth a retry alone.
      if (job.state === 'cancelled') return { items: 0, state: 'cancelled', changed: false }
      const n = this.#s.retryItems.run(job.seq).changes
      if (n === 0) return { items: 0, state: job.state, changed: false }
      this.#s.requeue.run(n, Date.now(), job.seq)
      return { items: n, state: job.state === 'running' ? 'running' : 'queued', changed: true }
    }).immediate()
  }

  /**
   * Pending items become cancelled; a running job's in-flight items finish, nothing new starts. A
   * scheduled job (stored as queued) is cancelled the same way: the claim never takes it.
   */
  cancel (id: string): ControlResult | undefined {
    return this.#db.transaction((): ControlResult | undefined => {
      const job = this.#s.job.get(Date.now(), id) as { seq: number, state: JobState, open: number } | undefined
      if (job === undefined) return undefined
      if (job.state !== 'scheduled' && job.state !== 'queued' && job.state !== 'running') return { items: 0, state: job.state, changed: false }
      this.#s.cancelItems.run(job.seq) // rows exist once the job first ran; the job's state covers the rest
      this.#s.cancelJob.run(Date.now(), job.seq)
      return { items: job.open, state: 'cancelled', changed: true }
    }).immediate()
  }

  /** Deletes up to {@link PURGE_BATCH} jobs that finished before `before`, with their items. */
  purge (before: number): number {
    const seqs = this.#s.oldJobs.all(before, PURGE_BATCH) as number[]
    if (seqs.length === 0) return 0
    this.#db.transaction(() => {
      for (const seq of seqs) {
        this.#s.deleteItems.run(seq)
        this.#s.deletePayload.run(seq)
        this.#s.deleteJob.run(seq)
      }
    })()
    this.#db.pragma(`incremental_vacuum(${VACUUM_PAGES})`)
    return seqs.length
  }
}
