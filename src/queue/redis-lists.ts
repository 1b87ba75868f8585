// The keyed lists of job types (item-types.ts KeyedList) in Redis: per list a hash of entries by
// lower-cased key and a sorted set of the keys (all scores 0) that pages them in key order.
import type { Redis } from 'ioredis'
import { callScript } from './redis-call.ts'
import { MIGRATE_LIST } from './redis-scripts.ts'
import type { KeyedList, ListEntry } from './item-types.ts'

/**
 * rawtrigger 0.1 kept the one list it had, the e-mail type's suppressions, under keys of its own
 * with entries `{ email, reason, createdAt }`: moved into the list's keys the first time this
 * process uses the list.
 */
const LEGACY_KEYS: Readonly<Record<string, readonly [hash: string, index: string]>> = { suppressions: ['suppressed', 'suppressed:index'] }

/** The keyed lists under one prefix. */
export class RedisLists {
  readonly #redis: Redis
  readonly #key: (kind: string) => string
  readonly #migrated = new Map<string, Promise<unknown>>()

  constructor (redis: Redis, key: (kind: string) => string) {
    this.#redis = redis
    this.#key = key
    redis.defineCommand('rtMigrateList', { numberOfKeys: 4, lua: MIGRATE_LIST })
  }

  /** The list `name` (unguarded: the queue wraps it, see list-guard.ts). */
  list (name: string): KeyedList {
    const redis = this.#redis
    const hash = this.#key(`list:${name}`)
    const index = `${hash}:index`
    const ready = (): Promise<unknown> => this.#migrate(name, hash, index)
    return {
      async entries (limit, after = '') {
        await ready()
        const min = after === '' ? '-' : `(${after.toLowerCase()}`
        const keys = await redis.zrangebylex(index, min, '+', 'LIMIT', 0, limit)
        if (keys.length === 0) return []
        const values = await redis.hmget(hash, ...keys)
        return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as ListEntry)
      },
      async put (key, value) {
        await ready()
        const field = key.toLowerCase()
        const existing = await redis.hget(hash, field)
        // The first put's key and time stay; a later one updates the value.
        const entry: ListEntry = existing === null ? { key, value, createdAt: new Date().toISOString() } : { ...(JSON.parse(existing) as ListEntry), value }
        await redis.multi().hset(hash, field, JSON.stringify(entry)).zadd(index, 0, field).exec()
        return existing === null
      },
      async remove (key) {
        await ready()
        const field = key.toLowerCase()
        const [[, removed]] = await redis.multi().hdel(hash, field).zrem(index, field).exec() as [[unknown, number], unknown]
        return removed === 1
      },
      async lookup (keys) {
        await ready()
        const out = new Map<string, string>()
        if (keys.length === 0) return out
        const fields = keys.map((k) => k.toLowerCase())
        const values = await redis.hmget(hash, ...fields)
        values.forEach((v, i) => { if (v !== null) out.set(fields[i] as string, (JSON.parse(v) as ListEntry).value) })
        return out
      },
    }
  }

  #migrate (name: string, hash: string, index: string): Promise<unknown> {
    const legacy = LEGACY_KEYS[name]
    if (legacy === undefined) return Promise.resolve()
    let done = this.#migrated.get(name)
    if (done === undefined) {
      done = callScript(this.#redis, 'rtMigrateList', this.#key(legacy[0]), this.#key(legacy[1]), hash, index)
      // A failure (Redis away) is tried again by the next call.
      done.catch(() => this.#migrated.delete(name))
      this.#migrated.set(name, done)
    }
    return done
  }
}
