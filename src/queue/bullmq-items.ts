import type { Redis } from 'ioredis'
import type { Logger } from '../log.ts'
import type { ItemEvent, JobContext } from './handler.ts'
import { ItemBatch, type ItemMark } from './item-batch.ts'
import type { RedisControl } from './redis-control.ts'
import { parseItem } from './redis-call.ts'
import type { DueItem, ItemOutcome, KeyedList } from './types.ts'

// Payloads parsed per process: a 100,000-recipient list is parsed once, not once per chunk.
const PAYLOAD_CACHE = 8

/** What a BullMQ chunk's handler works with: its slice of the job's items, kept in Redis. */
export class ChunkItems {
  readonly #redis: Redis
  readonly #key: (kind: string, id?: string) => string
  readonly #payloads = new Map<string, unknown>()
  readonly #control: RedisControl
  readonly #lists: (name: string) => KeyedList
  readonly #signal: AbortSignal

  /** `control` answers the per-item check a cancel is seen through; `lists` the job type's keyed lists; `signal` fires on stop. */
  constructor (redis: Redis, key: (kind: string, id?: string) => string, control: RedisControl, lists: (name: string) => KeyedList, signal: AbortSignal) {
    this.#redis = redis
    this.#key = key
    this.#control = control
    this.#lists = lists
    this.#signal = signal
  }

  async payload (id: string): Promise<unknown> {
    const cached = this.#payloads.get(id)
    if (cached !== undefined) return cached
    const json = await this.#redis.hget(this.#key('job', id), 'payload')
    const payload = JSON.parse(json ?? 'null') as unknown
    this.#payloads.set(id, payload)
    if (this.#payloads.size > PAYLOAD_CACHE) this.#payloads.delete(this.#payloads.keys().next().value as string)
    return payload
  }

  /** The earliest due time of an item still pending in [start, end), or undefined when none is. */
  async pendingIn (id: string, start: number, end: number): Promise<number | undefined> {
    if (end <= start) return undefined
    const fields = Array.from({ length: end - start }, (_, i) => String(start + i))
    const raw = await this.#redis.hmget(this.#key('items', id), ...fields)
    let due: number | undefined
    for (const r of raw) {
      const item = parseItem(r)
      if (item.state === 'p') due = Math.min(due ?? Infinity, item.dueAt)
    }
    return due
  }

  context (id: string, start: number, end: number, attempts: number, payload: unknown, log: Logger, observe: (e: ItemEvent) => void): JobContext<unknown> {
    const redis = this.#redis
    const keys = [this.#key('job', id), this.#key('items', id), this.#key('errors', id), this.#key('stats')]
    const signal = this.#signal
    const control = this.#control
    // Outcomes of messages that end together, or during a write, share one round trip (item-batch.ts).
    const batch = new ItemBatch((marks) => markAll(redis, keys, marks))
    return {
      id, payload, attempts, signal, log, observe, keyedList: this.#lists,
      items: end - start,
      async * dueItems (): AsyncGenerator<DueItem> {
        if (end <= start) return
        const raw = await redis.hmget(keys[1] as string, ...Array.from({ length: end - start }, (_, i) => String(start + i)))
        const now = Date.now()
        for (let i = 0; i < raw.length; i++) {
          const item = parseItem(raw[i] ?? null)
          if (signal.aborted) return
          // Re-checked per item: a cancel stops the chunk before its next message.
          if (item.state === 'p' && item.dueAt <= now && await control.itemPending(id, start + i)) yield { index: start + i, attempts: item.attempts }
        }
      },
      markItem: (index: number, outcome: ItemOutcome) => batch.mark(index, outcome),
    }
  }

}

/** The chunk's outcomes in one pipeline of `rtMark` calls: one round trip, each outcome its own script. */
async function markAll (redis: Redis, keys: readonly string[], marks: readonly ItemMark[]): Promise<void> {
  const pipeline = redis.pipeline()
  const mark = (pipeline as unknown as Record<string, (...a: Array<string | number>) => unknown>).rtMark as (...a: Array<string | number>) => unknown
  for (const { index, outcome } of marks) {
    const error = outcome.state === 'done' ? '' : outcome.error
    const retryAt = outcome.state === 'retry' ? outcome.retryAt : 0
    mark.call(pipeline, ...keys, index, outcome.state, error, retryAt)
  }
  const results = await pipeline.exec()
  for (const [err] of results ?? []) if (err !== null) throw err
}
