// How new jobs are inserted, on the writer thread or inline (sqlite-writer.ts), and the messages
// between the writer thread and the main thread.
import type Database from 'better-sqlite3'

/** What the main thread passes at start. */
export interface WriterData {
  file: string
  busyTimeoutMs: number
}

/**
 * main → writer: `jobs` holds FIELDS values per job joined by {@link SEP}, one string per batch: a
 * string crosses threads several times cheaper than an array of the same values. No field can hold
 * a NUL: ids and types match JOB_ID_RE, HTTP forbids NUL in the header a dedup key comes from, and
 * JSON.stringify escapes it in payloads.
 */
export type ToWriter = { t: 'add', batch: number, jobs: string } | { t: 'close' }

/** Separates the fields of {@link ToWriter}'s `jobs`. */
export const SEP = '\u0000'
/**
 * writer → main, per commit: for each job of each batch, null when it was created under the id it
 * was sent with, or the id of the job that already had its dedup key.
 */
export type FromWriter =
  | { t: 'done', batches: number[], results: InsertResults }
  | { t: 'failed', batches: number[], code: string | undefined, message: string }
  | { t: 'closed' }

/**
 * Fields per job in {@link ToWriter}'s `jobs`: id, type, items, dedup key (empty for none), not-before
 * time in epoch ms (empty for none: due at the commit), payload JSON.
 */
export const FIELDS = 6

/** For each job of each batch: null when it was created under its id, or the id of the job that had its dedup key. */
export type InsertResults = Array<Array<string | null>>

/** One transaction that inserts batches of jobs (each joined with {@link SEP}) on `db`. */
export function createInserter (db: Database.Database): (batches: readonly string[]) => InsertResults {
  const insert = db.prepare(`INSERT INTO jobs (id, type, state, total, due_at, dedup_key, created_at)
    VALUES (?, ?, 'queued', ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
  const insertPayload = db.prepare('INSERT INTO payloads (job_seq, payload) VALUES (?, ?)')
  const byDedup = db.prepare('SELECT id FROM jobs WHERE dedup_key = ?').pluck()
  const commit = db.transaction((batches: readonly string[]): InsertResults => {
    const now = Date.now()
    return batches.map((batch) => {
      const jobs = batch.split(SEP)
      const results: Array<string | null> = []
      for (let i = 0; i + FIELDS <= jobs.length; i += FIELDS) {
        const dedupKey = jobs[i + 3] === '' ? null : jobs[i + 3] as string
        // A scheduled job is due at its time: the worker claims nothing before (see sqlite-schema.ts).
        const dueAt = jobs[i + 4] === '' ? now : Math.max(now, Number(jobs[i + 4]))
        const info = insert.run(jobs[i], jobs[i + 1], Number(jobs[i + 2]), dueAt, dedupKey, now)
        if (info.changes === 1) {
          insertPayload.run(info.lastInsertRowid, jobs[i + 5])
          results.push(null)
        } else {
          results.push(byDedup.get(dedupKey) as string)
        }
      }
      return results
    })
  })
  // IMMEDIATE: take the write lock at BEGIN, so a lock held by another process is waited for
  // (busy timeout) before anything is read, never found at the upgrade.
  return (batches) => commit.immediate(batches)
}

/** The reply of a commit that threw. */
export function failure (batches: number[], err: unknown): FromWriter {
  const code = (err as { code?: unknown }).code
  return { t: 'failed', batches, code: typeof code === 'string' ? code : undefined, message: (err as Error).message }
}
