// The per-item reads and writes of a running job on SQLite: its due items, the outcomes of a group
// (item-batch.ts) in one transaction, and the re-read before each send. They run once per e-mail,
// so the transaction is made once and a job's row number is looked up once per process.
import type Database from 'better-sqlite3'
import type { DueItem, ItemOutcome } from './types.ts'

/** Job ids → row numbers kept; an id never changes its row, and the worker runs a few jobs at a time. */
const SEQ_CACHE = 64

export class SqliteItems {
  readonly #s
  readonly #mark: (seq: number, marks: ReadonlyArray<{ index: number, outcome: ItemOutcome }>) => void
  readonly #seqs = new Map<string, number>()

  constructor (db: Database.Database) {
    this.#s = {
      seq: db.prepare('SELECT seq FROM jobs WHERE id = ?').pluck(),
      due: db.prepare(`SELECT idx AS "index", attempts FROM items WHERE job_seq = ? AND idx >= ?
        AND state = 'pending' AND due_at <= ? ORDER BY idx LIMIT ?`),
      // 'cancelled' too: a message in flight when its job was cancelled still counts once it ends.
      done: db.prepare(`UPDATE items SET state = 'done', attempts = attempts + 1, error = NULL
        WHERE job_seq = ? AND idx = ? AND state IN ('pending', 'cancelled')`),
      failed: db.prepare(`UPDATE items SET state = 'failed', attempts = attempts + 1, error = ?
        WHERE job_seq = ? AND idx = ? AND state IN ('pending', 'cancelled')`),
      retry: db.prepare(`UPDATE items SET attempts = attempts + 1, error = ?, due_at = ?
        WHERE job_seq = ? AND idx = ? AND state = 'pending'`),
      countDone: db.prepare('UPDATE jobs SET done = done + ? WHERE seq = ?'),
      countFailed: db.prepare('UPDATE jobs SET failed = failed + ? WHERE seq = ?'),
      pending: db.prepare(`SELECT 1 FROM items i JOIN jobs j ON j.seq = i.job_seq
        WHERE i.job_seq = ? AND i.idx = ? AND i.state = 'pending' AND j.state IN ('queued', 'running')`).pluck(),
    }
    // Items and job counters change in one transaction; `state = 'pending'` makes a repeat a no-op.
    this.#mark = db.transaction((seq: number, marks: ReadonlyArray<{ index: number, outcome: ItemOutcome }>) => {
      let done = 0
      let failed = 0
      for (const { index, outcome } of marks) {
        if (outcome.state === 'done') done += this.#s.done.run(seq, index).changes
        else if (outcome.state === 'failed') failed += this.#s.failed.run(outcome.error, seq, index).changes
        else this.#s.retry.run(outcome.error, outcome.retryAt, seq, index)
      }
      if (done > 0) this.#s.countDone.run(done, seq)
      if (failed > 0) this.#s.countFailed.run(failed, seq)
    })
  }

  /** The row number of a job, or undefined when there is no such job (any more). */
  #find (id: string): number | undefined {
    const known = this.#seqs.get(id)
    if (known !== undefined) return known
    const seq = this.#s.seq.get(id) as number | undefined
    if (seq === undefined) return undefined
    if (this.#seqs.size >= SEQ_CACHE) this.#seqs.delete(this.#seqs.keys().next().value as string)
    this.#seqs.set(id, seq)
    return seq
  }

  /** The row number of a job; throws when there is no such job. */
  seq (id: string): number {
    const seq = this.#find(id)
    if (seq === undefined) throw new Error(`no job ${id}`)
    return seq
  }

  due (id: string, after: number, limit: number): DueItem[] {
    return this.#s.due.all(this.seq(id), after, Date.now(), limit) as DueItem[]
  }

  mark (id: string, marks: ReadonlyArray<{ index: number, outcome: ItemOutcome }>): void {
    this.#mark(this.seq(id), marks)
  }

  /** Still to be sent: the item is pending and its job neither cancelled nor finished. */
  pending (id: string, index: number): boolean {
    const seq = this.#find(id)
    return seq !== undefined && this.#s.pending.get(seq, index) !== undefined
  }
}
