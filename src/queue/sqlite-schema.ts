import type { JobErrorView, JobState, JobSummary, JobView } from './types.ts'

/** Errors listed by `GET /jobs/:id`. */
export const MAX_ERRORS_SHOWN = 20

/** The tables. auto_vacuum must precede them: incremental vacuum gives pages back after retention deletes. */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq         INTEGER PRIMARY KEY,
  id          TEXT NOT NULL UNIQUE,
  type        TEXT NOT NULL,
  state       TEXT NOT NULL,
  total       INTEGER NOT NULL,
  done        INTEGER NOT NULL DEFAULT 0,
  failed      INTEGER NOT NULL DEFAULT 0,
  attempts    INTEGER NOT NULL DEFAULT 0,
  faults      INTEGER NOT NULL DEFAULT 0,
  due_at      INTEGER NOT NULL,
  lease_until INTEGER,
  owner       INTEGER,
  items_ready INTEGER NOT NULL DEFAULT 0,
  dedup_key   TEXT,
  error       TEXT,
  created_at  INTEGER NOT NULL,
  started_at  INTEGER,
  finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_state_due ON jobs (state, due_at);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Apart from jobs: the per-item counters in jobs change on every send, and SQLite rewrites a
-- whole row on update; a 100,000-recipient payload in that row made each update cost milliseconds.
CREATE TABLE IF NOT EXISTS payloads (
  job_seq INTEGER PRIMARY KEY,
  payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
  job_seq  INTEGER NOT NULL,
  idx      INTEGER NOT NULL,
  state    TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  due_at   INTEGER NOT NULL DEFAULT 0,
  error    TEXT,
  PRIMARY KEY (job_seq, idx)
) WITHOUT ROWID;
-- The keyed lists of job types (the e-mail type's suppressions), one table for all.
CREATE TABLE IF NOT EXISTS lists (
  list       TEXT NOT NULL,
  key        TEXT NOT NULL COLLATE NOCASE,
  value      TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (list, key)
) WITHOUT ROWID;
`

/**
 * The idempotency keys, unique; only jobs that have one are in it (most have none). Files made
 * before it declare `dedup_key TEXT UNIQUE` in the table, which indexes every job: they keep that
 * ({@link hasTableDedupIndex}) and do not get this one.
 */
export const DEDUP_INDEX = 'CREATE UNIQUE INDEX IF NOT EXISTS jobs_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL'

/** SQL: 1 when `jobs` has the old table-level unique index on dedup_key, else 0. */
export const HAS_TABLE_DEDUP_INDEX = `SELECT count(*) FROM pragma_index_list('jobs') AS l, pragma_index_info(l.name) AS i
  WHERE l.origin = 'u' AND i.name = 'dedup_key'`

/**
 * A job's state as the API shows it, in SQL; its one parameter is now (epoch ms). `scheduled` is not
 * stored: a job with a `notBefore` is inserted `queued` with `due_at` at that time, and reads as
 * scheduled until then unless it has started (attempts > 0). The claim takes only jobs due by now.
 */
export const VIEW_STATE_SQL = `CASE WHEN state = 'queued' AND attempts = 0 AND due_at > ? THEN 'scheduled' ELSE state END`

/** A row of `jobs`. */
export interface JobRow {
  seq: number, id: string, type: string, state: JobState, total: number, done: number, due_at: number,
  failed: number, attempts: number, faults: number, items_ready: number, error: string | null,
  created_at: number, started_at: number | null, finished_at: number | null
}

/** An item with an error, as `GET /jobs/:id` lists it. */
export interface ItemErrorRow { idx: number, error: string, attempts: number, state: string }

function iso (ms: number | null): string | undefined {
  return ms === null ? undefined : new Date(ms).toISOString()
}

/** A job row as `GET /jobs` lists it. A cancelled job's unfinished items count as cancelled, not pending. */
export function toSummary (row: JobRow, now = Date.now()): JobSummary {
  const open = row.total - row.done - row.failed
  const scheduled = row.state === 'queued' && row.attempts === 0 && row.due_at > now // as VIEW_STATE_SQL
  const view: JobSummary = {
    id: row.id, type: row.type, state: scheduled ? 'scheduled' : row.state, total: row.total, sent: row.done, failed: row.failed,
    pending: row.state === 'cancelled' ? 0 : open, attempts: row.attempts,
    createdAt: new Date(row.created_at).toISOString(),
  }
  if (row.state === 'cancelled') view.cancelled = open
  if (scheduled) view.notBefore = new Date(row.due_at).toISOString()
  const startedAt = iso(row.started_at)
  if (startedAt !== undefined) view.startedAt = startedAt
  const finishedAt = iso(row.finished_at)
  if (finishedAt !== undefined) view.finishedAt = finishedAt
  return view
}

/** A job row as `GET /jobs/:id` shows it: the summary and the first errors. */
export function toView (row: JobRow, itemErrors: ItemErrorRow[]): JobView {
  const errors: JobErrorView[] = itemErrors.map((e) => ({ index: e.idx, message: e.error, attempts: e.attempts, state: e.state }))
  if (row.error !== null) errors.push({ message: row.error, attempts: row.attempts })
  return { ...toSummary(row), errors }
}
