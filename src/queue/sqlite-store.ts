import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { StoreError } from '../errors.ts'
import { betterSqlite3, type Database } from './lazy-packages.ts'
import { guardList } from './list-guard.ts'
import { DEDUP_INDEX, HAS_TABLE_DEDUP_INDEX, MAX_ERRORS_SHOWN, SCHEMA, VIEW_STATE_SQL, toView, type ItemErrorRow, type JobRow } from './sqlite-schema.ts'
import type {
  AddResult, ClaimedJob, CommitStats, WriterMode, ControlResult, DueItem, ItemOutcome, JobList, JobListQuery, JobState, JobStore, JobView,
  KeyedList, NewJob, StoreStats,
} from './types.ts'
import { SqliteControl } from './sqlite-control.ts'
import { SqliteItems } from './sqlite-items.ts'
import { migrateLegacyLists, SqliteLists } from './sqlite-lists.ts'
import { SqliteWriter } from './sqlite-writer.ts'

/** How long a write waits for a lock held by another process before it fails (blocks the event loop). */
const BUSY_TIMEOUT_MS = 2_000

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // exists, owned by another user
  }
}

/** A store that cannot be opened: which file, SQLite's reason, and what to do — never an empty queue. */
function openError (file: string, cause: unknown): StoreError {
  const code = String((cause as { code?: unknown }).code ?? '')
  const hint = code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB'
    ? 'the file is damaged: stop every serve on it, move it and its -wal and -shm files aside, restore a backup or start empty'
    : code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY' || code === 'EACCES' || code === 'EROFS'
      ? 'the data dir must be writable by this user (the file, its -wal and -shm, and the directory)'
      : 'see the cause'
  return new StoreError(`cannot open the job store ${file}: ${(cause as Error).message} (${code}); ${hint}`, { cause })
}

function storeError (op: string, cause: unknown): StoreError {
  const code = (cause as { code?: unknown }).code
  return new StoreError(`SQLite ${op} failed${typeof code === 'string' ? ` (${code})` : ''}`, { cause })
}

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * Where new jobs are committed, with the same group commit either way: `inline`, on this
   * thread's connection; or `thread`, on a writer thread with its own connection, so parsing and
   * SQLite can use two cores. On a 2-core machine that also runs the clients, `thread` measured
   * more CPU per job (the hand-over wakes a thread per commit), and every other write (the
   * worker's, retention's) then contends for the file lock with it: SQLite's busy handler is not
   * fair, and a retention sweep held new jobs back until it ended.
   * @default 'inline'
   */
  writer?: WriterMode
}

/**
 * The embedded store: one SQLite file in WAL mode. `synchronous=NORMAL` keeps every commit across a
 * process crash (kill -9); only a power loss can take the last commits back.
 * New jobs are inserted by a writer thread with its own connection (group commit, see
 * {@link SqliteWriter}); claims, item updates and reads run on this thread's connection.
 */
export class SqliteStore implements JobStore {
  readonly #db: Database.Database
  readonly #stmt
  readonly #writer: SqliteWriter
  readonly #claimTx
  readonly #control: SqliteControl
  readonly #items: SqliteItems
  readonly #lists: SqliteLists

  constructor (dataDir: string, options: SqliteStoreOptions = {}) {
    const file = join(dataDir, 'rawtrigger.db')
    try {
      mkdirSync(dataDir, { recursive: true })
      this.#db = new (betterSqlite3())(file, { timeout: BUSY_TIMEOUT_MS })
      // auto_vacuum only takes effect on a new file before the first table, and before WAL.
      this.#db.pragma('auto_vacuum = INCREMENTAL')
      this.#db.pragma('journal_mode = WAL')
      this.#db.pragma('synchronous = NORMAL')
      this.#db.exec(SCHEMA)
      if (this.#db.prepare(HAS_TABLE_DEDUP_INDEX).pluck().get() === 0) this.#db.exec(DEDUP_INDEX)
      migrateLegacyLists(this.#db)
    } catch (err) {
      throw openError(file, err)
    }
    const db = this.#db
    this.#stmt = {
      insert: db.prepare(`INSERT INTO jobs (id, type, state, total, due_at, dedup_key, created_at)
        VALUES (?, ?, 'queued', ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
      insertPayload: db.prepare('INSERT INTO payloads (job_seq, payload) VALUES (?, ?)'),
      payload: db.prepare('SELECT payload FROM payloads WHERE job_seq = ?').pluck(),
      fault: db.prepare('UPDATE jobs SET faults = faults + 1 WHERE seq = ? RETURNING faults').pluck(),
      byDedup: db.prepare('SELECT id FROM jobs WHERE dedup_key = ?').pluck(),
      get: db.prepare('SELECT * FROM jobs WHERE id = ?'),
      errors: db.prepare(`SELECT idx, error, attempts, state FROM items
        WHERE job_seq = ? AND error IS NOT NULL ORDER BY idx LIMIT ${MAX_ERRORS_SHOWN}`),
      stats: db.prepare(`SELECT ${VIEW_STATE_SQL} AS state, count(*) AS n, total(done) AS done, total(failed) AS failed,
        total(total) AS total FROM jobs GROUP BY 1`),
      nextQueued: db.prepare(`SELECT seq FROM jobs WHERE state = 'queued' AND due_at <= ?
        AND type IN (SELECT value FROM json_each(?)) ORDER BY due_at, seq LIMIT 1`).pluck(),
      nextExpired: db.prepare(`SELECT seq FROM jobs WHERE state = 'running' AND lease_until < ?
        AND type IN (SELECT value FROM json_each(?)) ORDER BY lease_until LIMIT 1`).pluck(),
      take: db.prepare(`UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, owner = ${process.pid},
        started_at = coalesce(started_at, ?) WHERE seq = ? RETURNING *`),
      makeItems: db.prepare(`INSERT OR IGNORE INTO items (job_seq, idx)
        WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < ?) SELECT ?, i FROM c`),
      itemsReady: db.prepare('UPDATE jobs SET items_ready = 1 WHERE seq = ?'),
      renew: db.prepare(`UPDATE jobs SET lease_until = ? WHERE id = ? AND attempts = ? AND state = 'running'`),
      nextRetry: db.prepare(`SELECT min(due_at) FROM items WHERE job_seq = ? AND state = 'pending'`).pluck(),
      end: db.prepare(`UPDATE jobs SET state = ?, due_at = ?, lease_until = NULL, finished_at = ?, error = ?
        WHERE id = ? AND attempts = ? AND state = 'running'`),
      fail: db.prepare(`UPDATE jobs SET state = ?, due_at = ?, lease_until = NULL, finished_at = ?, error = ?, faults = faults + 1
        WHERE id = ? AND attempts = ? AND state = 'running'`),
    }
    this.#control = new SqliteControl(db)
    this.#items = new SqliteItems(db)
    this.#lists = new SqliteLists(db)
    this.#expireDeadOwners()
    this.#writer = new SqliteWriter(db, BUSY_TIMEOUT_MS, options.writer ?? 'inline')
    this.#writer.start()
    this.#claimTx = db.transaction((types: string, leaseMs: number): JobRow | undefined => {
      const now = Date.now()
      let seq = this.#stmt.nextQueued.get(now, types)
      const orphan = seq === undefined
      seq ??= this.#stmt.nextExpired.get(now, types)
      if (seq === undefined) return undefined
      const row = this.#stmt.take.get(now + leaseMs, now, seq) as JobRow
      // A lapsed lease means the last run died (crash, kill -9): that counts as a failed run.
      if (orphan) row.faults = this.#stmt.fault.get(seq) as number
      if (row.items_ready === 0 && row.total > 0) {
        this.#stmt.makeItems.run(row.total, row.seq)
        this.#stmt.itemsReady.run(row.seq)
      }
      return row
    })
  }

  /**
   * A job held by a process that no longer exists (kill -9, crash) need not wait for its lease:
   * the file is local, so the owner's pid is checked on this host and its leases expired at once.
   */
  #expireDeadOwners (): void {
    const owners = this.#db.prepare(`SELECT DISTINCT owner FROM jobs WHERE state = 'running'`).pluck().all() as Array<number | null>
    for (const owner of owners) {
      if (owner === null || owner === process.pid || isAlive(owner)) continue
      this.#db.prepare(`UPDATE jobs SET lease_until = 0 WHERE state = 'running' AND owner = ?`).run(owner)
    }
  }

  add (job: NewJob): Promise<AddResult> {
    return this.#writer.add(job)
  }

  /** Commits of new jobs and the jobs they held: the mean group-commit size is their ratio. */
  get commitStats (): CommitStats {
    return { ...this.#writer.stats }
  }

  #run<T> (op: string, fn: () => T | Promise<T>): Promise<T> {
    try {
      // The control methods are async: their failures arrive as rejections, not throws.
      return Promise.resolve(fn()).catch((err: unknown) => { throw storeError(op, err) })
    } catch (err) {
      return Promise.reject(storeError(op, err))
    }
  }

  get (id: string): Promise<JobView | undefined> {
    return this.#run('read', () => {
      const row = this.#stmt.get.get(id) as JobRow | undefined
      if (row === undefined) return undefined
      const errors = this.#stmt.errors.all(row.seq) as ItemErrorRow[]
      return toView(row, errors)
    })
  }

  stats (): Promise<StoreStats> {
    return this.#run('read', () => {
      const out: StoreStats = { jobs: { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 }, items: { done: 0, failed: 0, pending: 0 } }
      for (const r of this.#stmt.stats.all(Date.now()) as Array<{ state: JobState, n: number, done: number, failed: number, total: number }>) {
        if (r.state === 'scheduled' || r.state in out.jobs) out.jobs[r.state as keyof StoreStats['jobs']] = r.n
        out.items.done += r.done
        out.items.failed += r.failed
        if (r.state === 'scheduled' || r.state === 'queued' || r.state === 'running') out.items.pending += r.total - r.done - r.failed
      }
      return out
    })
  }

  claim (types: readonly string[], leaseMs: number): Promise<ClaimedJob | undefined> {
    return this.#run('claim', () => {
      const row = this.#claimTx(JSON.stringify(types), leaseMs)
      if (row === undefined) return undefined
      const payload = JSON.parse(this.#stmt.payload.get(row.seq) as string) as unknown
      return { id: row.id, type: row.type, payload, items: row.total, attempts: row.attempts, faults: row.faults }
    })
  }

  renew (id: string, attempts: number, leaseMs: number): Promise<boolean> {
    return this.#run('renew', () => this.#stmt.renew.run(Date.now() + leaseMs, id, attempts).changes === 1)
  }

  dueItems (id: string, after: number, limit: number): Promise<DueItem[]> {
    return this.#run('read', () => this.#items.due(id, after, limit))
  }

  /** One item's outcome: {@link markItems} with one. */
  markItem (id: string, index: number, outcome: ItemOutcome): Promise<void> {
    return this.markItems(id, [{ index, outcome }])
  }

  markItems (id: string, marks: ReadonlyArray<{ index: number, outcome: ItemOutcome }>): Promise<void> {
    return this.#run('write', () => this.#items.mark(id, marks))
  }

  finishRun (id: string, attempts: number): Promise<JobState> {
    return this.#run('write', () => {
      const now = Date.now()
      const nextRetry = this.#stmt.nextRetry.get(this.#items.seq(id)) as number | null
      if (nextRetry === null) {
        this.#stmt.end.run('done', now, now, null, id, attempts)
        return 'done'
      }
      this.#stmt.end.run('queued', nextRetry, null, null, id, attempts)
      return 'queued'
    })
  }

  failRun (id: string, attempts: number, message: string, retryAt?: number): Promise<void> {
    return this.#run('write', () => {
      if (retryAt === undefined) this.#stmt.fail.run('failed', Date.now(), Date.now(), message, id, attempts)
      else this.#stmt.fail.run('queued', retryAt, null, message, id, attempts)
    })
  }

  release (id: string, attempts: number): Promise<void> {
    return this.#run('write', () => { this.#stmt.end.run('queued', Date.now(), null, null, id, attempts) })
  }

  list (query: JobListQuery): Promise<JobList> {
    return this.#run('read', () => this.#control.list(query))
  }

  retry (id: string): Promise<ControlResult | undefined> {
    return this.#run('write', () => this.#control.retry(id))
  }

  cancel (id: string): Promise<ControlResult | undefined> {
    return this.#run('write', () => this.#control.cancel(id))
  }

  purge (before: number): Promise<number> {
    return this.#run('purge', () => this.#control.purge(before))
  }

  itemPending (id: string, index: number): Promise<boolean> {
    return this.#run('read', () => this.#items.pending(id, index))
  }

  keyedList (name: string): KeyedList {
    return guardList(name, this.#lists.list(name), storeError)
  }

  async close (): Promise<void> {
    await this.#writer.close()
    if (this.#db.open) this.#db.close()
  }
}
