// The messages between the SQLite writer thread and the main thread (sqlite-writer.ts).

/** What the main thread passes at start. */
export interface WriterData {
  file: string
  busyTimeoutMs: number
}

/** main → writer: `jobs` is flat, FIELDS values per job. */
export type ToWriter = { t: 'add', batch: number, jobs: unknown[] } | { t: 'close' }
/**
 * writer → main, per commit: for each job of each batch, null when it was created under the id it
 * was sent with, or the id of the job that already had its dedup key.
 */
export type FromWriter =
  | { t: 'done', batches: number[], results: Array<Array<string | null>> }
  | { t: 'failed', batches: number[], code: string | undefined, message: string }
  | { t: 'closed' }

/** Values per job in {@link ToWriter}'s `jobs`: id, type, items, dedup key (or null), payload JSON. */
export const FIELDS = 5
