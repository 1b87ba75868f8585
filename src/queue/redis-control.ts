import type { Redis } from 'ioredis'
import { CANCEL, PURGE, RETRY } from './redis-scripts.ts'
import { callScript, stateIndexes, withIndexes } from './redis-call.ts'
import { LIST_LIMIT, LIST_LIMIT_MAX, PURGE_BATCH } from './control-limits.ts'
import type { ControlResult, JobList, JobListQuery, JobState, JobSummary, StoreStats } from './types.ts'

/**
 * A job hash as the API lists it. A `scheduled` record whose time has come reads `queued`: the
 * sweep moves the record itself within a few seconds (redis-sweep.ts), its chunk may start sooner.
 */
export function summaryOf (id: string, h: Record<string, string>, now = Date.now()): JobSummary {
  const total = Number(h.total)
  const open = total - Number(h.done) - Number(h.failed)
  const scheduled = h.state === 'scheduled' && Number(h.notBefore) > now
  const view: JobSummary = {
    id, type: h.type as string, state: h.state === 'scheduled' && !scheduled ? 'queued' : h.state as JobState, total, sent: Number(h.done), failed: Number(h.failed),
    pending: h.state === 'cancelled' ? 0 : open, attempts: Number(h.attempts),
    createdAt: new Date(Number(h.createdAt)).toISOString(),
  }
  if (h.state === 'cancelled') view.cancelled = open
  if (scheduled) view.notBefore = new Date(Number(h.notBefore)).toISOString()
  if (h.startedAt !== undefined) view.startedAt = new Date(Number(h.startedAt)).toISOString()
  if (h.finishedAt !== undefined) view.finishedAt = new Date(Number(h.finishedAt)).toISOString()
  return view
}

/** Job control and retention in Redis, next to the BullMQ queue. */
export class RedisControl {
  readonly #redis: Redis
  readonly #key: (kind: string, id?: string) => string
  /** The per-state indexes, the last KEYS of the scripts here that move jobs (redis-call.ts). */
  readonly #indexes: string[]
  readonly #requeue: (id: string, type: string, indexes: number[]) => Promise<void>
  readonly #unqueue: ((id: string, type: string, chunks: number) => Promise<void>) | undefined

  /**
   * `requeue` queues chunks of retried items again; `unqueue` takes the delayed chunks of a
   * cancelled scheduled job out of BullMQ (they would only start to find it cancelled).
   */
  constructor (redis: Redis, key: (kind: string, id?: string) => string, requeue: (id: string, type: string, indexes: number[]) => Promise<void>,
    unqueue?: (id: string, type: string, chunks: number) => Promise<void>) {
    this.#redis = redis
    this.#key = key
    this.#indexes = stateIndexes(key)
    this.#requeue = requeue
    this.#unqueue = unqueue
    redis.defineCommand('rtRetry', { numberOfKeys: withIndexes(5), lua: RETRY })
    redis.defineCommand('rtPurge', { numberOfKeys: withIndexes(9), lua: PURGE })
    redis.defineCommand('rtCancel', { numberOfKeys: withIndexes(3), lua: CANCEL })
  }

  #call (name: string, ...args: Array<string | number>): Promise<unknown> {
    return callScript(this.#redis, name, ...args)
  }

  async list (query: JobListQuery): Promise<JobList> {
    const limit = Math.min(query.limit ?? LIST_LIMIT, LIST_LIMIT_MAX)
    const max = query.before === undefined ? '+inf' : `(${Number(query.before)}`
    const index = query.state === undefined ? this.#key('index') : this.#key(`index:${query.state}`)
    const page = await this.#redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', 0, limit)
    const pipe = this.#redis.pipeline()
    for (let i = 0; i < page.length; i += 2) pipe.hgetall(this.#key('job', page[i] as string))
    const hashes = page.length === 0 ? [] : (await pipe.exec()) ?? []
    const jobs: JobSummary[] = []
    const now = Date.now()
    for (let i = 0; i < page.length; i += 2) {
      const h = hashes[i / 2]?.[1] as Record<string, string> | undefined
      if (h?.state === undefined) continue
      const job = summaryOf(page[i] as string, h, now)
      // index:scheduled holds a job whose time has come until the sweep moves it: it is queued now.
      if (query.state === undefined || job.state === query.state) jobs.push(job)
    }
    const out: JobList = { jobs }
    if (page.length === limit * 2) out.next = page[page.length - 1] as string
    return out
  }

  async retry (id: string): Promise<ControlResult | undefined> {
    const h = await this.#redis.hmget(this.#key('job', id), 'state', 'type')
    if (h[0] === null) return undefined
    const retried = (await this.#call('rtRetry', this.#key('job', id), this.#key('items', id), this.#key('errors', id),
      this.#key('stats'), this.#key('finished'), ...this.#indexes, id) as string[]).map(Number)
    if (retried.length > 0) await this.#requeue(id, h[1] as string, retried)
    const state = await this.#redis.hget(this.#key('job', id), 'state')
    return { items: retried.length, state: state as JobState, changed: retried.length > 0 }
  }

  async cancel (id: string): Promise<ControlResult | undefined> {
    const h = await this.#redis.hmget(this.#key('job', id), 'state', 'total', 'done', 'failed', 'type', 'chunks')
    if (h[0] === null) return undefined
    const state = await this.#call('rtCancel', this.#key('job', id), this.#key('stats'), this.#key('finished'), ...this.#indexes, Date.now(), id) as JobState
    const changed = state === 'cancelled' && h[0] !== 'cancelled'
    // Best effort: a delayed chunk left behind starts, finds the job cancelled and ends (CHUNK_START).
    if (changed && h[0] === 'scheduled') await this.#unqueue?.(id, h[4] as string, Number(h[5])).catch(() => {})
    return { items: changed ? Number(h[1]) - Number(h[2]) - Number(h[3]) : 0, state, changed }
  }

  /** `GET /stats`, the store's part, from the counters the scripts keep. */
  async stats (): Promise<StoreStats> {
    const h = await this.#redis.hgetall(this.#key('stats'))
    const n = (k: string): number => Number(h[k] ?? 0)
    const out: StoreStats = {
      jobs: { queued: n('jobs:queued'), running: n('jobs:running'), done: n('jobs:done'), failed: n('jobs:failed'), cancelled: n('jobs:cancelled') },
      items: { done: n('items:done'), failed: n('items:failed'), pending: n('items:total') - n('items:done') - n('items:failed') - n('items:closed') },
    }
    if (n('jobs:scheduled') > 0) out.jobs.scheduled = n('jobs:scheduled')
    return out
  }

  async itemPending (id: string, index: number): Promise<boolean> {
    const [state, item] = await Promise.all([this.#redis.hget(this.#key('job', id), 'state'), this.#redis.hget(this.#key('items', id), String(index))])
    return (state === 'queued' || state === 'running') && (item === null || item.startsWith('p'))
  }

  async purge (before: number): Promise<number> {
    const ids = await this.#redis.zrangebyscore(this.#key('finished'), '-inf', `(${before}`, 'LIMIT', 0, PURGE_BATCH)
    for (const id of ids) {
      // Its dedup key is named in the record: read first, so the script gets every key in KEYS.
      const dedup = await this.#redis.hget(this.#key('job', id), 'dedup') ?? this.#key('job', id)
      await this.#call('rtPurge', this.#key('job', id), this.#key('items', id), this.#key('errors', id), this.#key('chunks', id),
        this.#key('stats'), this.#key('index'), this.#key('finished'), this.#key('active', id), dedup, ...this.#indexes, id)
    }
    return ids.length
  }
}
