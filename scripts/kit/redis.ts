// The Redis the load and scale scripts use: its URL (--redis, else $REDIS_URL, else the default),
// what it is (version, persistence), and the removal of a run's keys (SCAN + DEL) at the end.
import { Redis } from 'ioredis'

const SCAN_COUNT = 500
const CONNECT_TIMEOUT_MS = 1_000 // a Redis on loopback answers at once, or is not there

/** `--redis`, else a non-empty $REDIS_URL, else `fallback`. */
export function redisUrl (flag: string | undefined, fallback: string): string {
  const env = process.env.REDIS_URL
  return flag ?? (env !== undefined && env !== '' ? env : fallback)
}

/** A URL for the report: the password, if any, hidden. */
export function shownUrl (url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}

export interface RedisInfo { version: string, appendonly: string, maxmemoryPolicy: string }

/** Redis's version and persistence settings, or undefined when it does not answer within a second. */
export async function redisInfo (url: string): Promise<RedisInfo | undefined> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: CONNECT_TIMEOUT_MS, lazyConnect: true })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const config = (name: string): Promise<string> => (redis.call('CONFIG', 'GET', name) as Promise<string[]>).then((r) => r[1] ?? '?', () => '?')
    const version = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '?'
    return { version, appendonly: await config('appendonly'), maxmemoryPolicy: await config('maxmemory-policy') }
  } catch {
    return undefined
  } finally {
    redis.disconnect()
  }
}

/** Redis's version, or undefined when it does not answer within a second. */
export async function redisVersion (url: string): Promise<string | undefined> {
  return (await redisInfo(url))?.version
}

/** Deletes every key matching `pattern` (SCAN + DEL); returns how many. */
export async function deleteKeys (url: string, pattern: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    let cursor = '0'
    let deleted = 0
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT)
      if (keys.length > 0) deleted += await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
    return deleted
  } finally {
    redis.disconnect()
  }
}
