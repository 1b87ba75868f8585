// Group commit by event-loop turns, as the SQLite writer and the Redis intake both gather a batch.

/**
 * A batch gathering by turns: it waits another turn while the last one added to it, at most
 * `maxMs` after it opened. Jobs that keep arriving (a new connection per request) share a commit;
 * once a turn brings none (keep-alive clients wait for their answers) it goes at once, and a lone
 * job waits one turn. No timer: a fixed gap caps keep-alive at connections ÷ gap.
 */
export class TurnGather {
  readonly #openedAt: number
  readonly #maxMs: number
  #seen = 0

  constructor (openedAt: number, maxMs: number) {
    this.#openedAt = openedAt
    this.#maxMs = maxMs
  }

  /** The batch now holds `size`: true when it grew since the last call and is younger than `maxMs`, so it waits a turn more. */
  grew (size: number, now = performance.now()): boolean {
    if (size <= this.#seen || now - this.#openedAt >= this.#maxMs) return false
    this.#seen = size
    return true
  }
}
