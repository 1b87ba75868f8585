// Per-item outcomes written in groups (issue 14), the group-commit loop of the intake applied to
// the work side: markItem() holds its outcome and resolves once it is written; a write starts on
// the next turn of the event loop with every outcome held by then, and while one write is under
// way the outcomes that arrive wait for it and go together in the next. Messages that finish in
// the same turn (the pool's connections answering together), or while a write is under way,
// share one transaction on SQLite and one round trip on Redis instead of one each.
//
// What a crash costs stays what it was with a write per item: a sending slot goes on only after
// its outcome is written, so after kill -9 the items sent again are at most the messages in flight.
import type { ItemOutcome } from './types.ts'

/** One item's outcome. */
export interface ItemMark {
  index: number
  outcome: ItemOutcome
}

/** Writes one group of outcomes of a job, in order; rejects when the store cannot. */
export type WriteMarks = (marks: readonly ItemMark[]) => Promise<void>

interface Group {
  marks: ItemMark[]
  done: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

export class ItemBatch {
  readonly #write: WriteMarks
  /** The group outcomes join now; it is written once the write before it has ended. */
  #open: Group | undefined = undefined
  #writing = false
  /** Outcomes written in all, and the writes that took them: their ratio is the group size. */
  #marks = 0
  #writes = 0

  constructor (write: WriteMarks) {
    this.#write = write
  }

  /** Holds the outcome; resolves when it is written, rejects when its write fails. */
  mark (index: number, outcome: ItemOutcome): Promise<void> {
    let group = this.#open
    if (group === undefined) {
      let resolve!: () => void
      let reject!: (err: unknown) => void
      const done = new Promise<void>((res, rej) => { resolve = res; reject = rej })
      group = { marks: [], done, resolve, reject }
      this.#open = group
      if (!this.#writing) setImmediate(() => { void this.#next() })
    }
    group.marks.push({ index, outcome })
    return group.done
  }

  /** Outcomes written and writes made so far. */
  get stats (): { marks: number, writes: number } {
    return { marks: this.#marks, writes: this.#writes }
  }

  async #next (): Promise<void> {
    const group = this.#open
    if (group === undefined || this.#writing) return
    this.#open = undefined
    this.#writing = true
    try {
      await this.#write(group.marks)
      this.#marks += group.marks.length
      this.#writes++
      group.resolve()
    } catch (err) {
      group.reject(err)
    } finally {
      this.#writing = false
    }
    if (this.#open !== undefined) await this.#next()
  }
}
