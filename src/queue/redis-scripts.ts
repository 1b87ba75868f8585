import type { Redis } from 'ioredis'

// Lua run atomically by Redis: each keeps a job's record, its items and the global counters in
// step, whichever process calls it. Items are stored as "state|attempts|dueAt|error" with state
// p (pending), d (done) or f (failed); an absent item is pending with no attempts.

/**
 * Lua shared by the scripts that move a job between states: keeps the per-state index
 * (`…:rt:index:<state>`, scored by the job's creation order) that `GET /jobs?state=` pages through.
 * The key is derived from the job's key (`…:rt:job:<id>`), so every caller passes the job key and id.
 */
export const REINDEX = `
local function reindex (job, id, old, new)
  local base = string.sub(job, 1, #job - #id - 4)
  local seq = redis.call('HGET', job, 'seq')
  if old then redis.call('ZREM', base .. 'index:' .. old, id) end
  if new and seq then redis.call('ZADD', base .. 'index:' .. new, seq, id) end
end
`

/**
 * KEYS: job, stats, index, seq, dedup. ARGV: type, payload, total, chunks, now, id.
 * Returns { 1, id } when created, { 0, first id } when the dedup key (the trigger's webhook-id, or
 * the id itself) was seen before. The index orders jobs for `GET /jobs`, newest first.
 */
export const CREATE_JOB = REINDEX + `
local first = redis.call('GET', KEYS[5])
if first then return { 0, first } end
if redis.call('EXISTS', KEYS[1]) == 1 then return { 0, ARGV[6] } end
redis.call('SET', KEYS[5], ARGV[6])
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[3], seq, ARGV[6])
redis.call('HSET', KEYS[1], 'type', ARGV[1], 'payload', ARGV[2], 'total', ARGV[3], 'chunks', ARGV[4],
  'state', 'queued', 'createdAt', ARGV[5], 'done', 0, 'failed', 0, 'attempts', 0, 'seq', seq, 'dedup', KEYS[5])
redis.call('HINCRBY', KEYS[2], 'jobs:queued', 1)
redis.call('HINCRBY', KEYS[2], 'items:total', ARGV[3])
reindex(KEYS[1], ARGV[6], nil, 'queued')
return { 1, ARGV[6] }
`

/**
 * KEYS: job, stats, finished. ARGV: new state, now, error, id. Moves a job between states and the
 * counters with it; done, failed and cancelled are final (and enter the retention index).
 * Returns the state the job is in afterwards.
 */
export const SET_STATE = REINDEX + `
local old = redis.call('HGET', KEYS[1], 'state')
if not old then return false end
if old == ARGV[1] or old == 'done' or old == 'failed' or old == 'cancelled' then return old end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
reindex(KEYS[1], ARGV[4], old, ARGV[1])
redis.call('HINCRBY', KEYS[2], 'jobs:' .. old, -1)
redis.call('HINCRBY', KEYS[2], 'jobs:' .. ARGV[1], 1)
if ARGV[1] == 'running' then
  redis.call('HSETNX', KEYS[1], 'startedAt', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
elseif ARGV[1] ~= 'queued' then
  redis.call('HSET', KEYS[1], 'finishedAt', ARGV[2])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
end
if ARGV[1] == 'failed' then
  -- Its unfinished items will not be sent: they leave the pending count.
  local h = redis.call('HMGET', KEYS[1], 'total', 'done', 'failed')
  local open = tonumber(h[1]) - tonumber(h[2]) - tonumber(h[3])
  redis.call('HSET', KEYS[1], 'closedOpen', open)
  redis.call('HINCRBY', KEYS[2], 'items:closed', open)
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
return ARGV[1]
`

/**
 * KEYS: job, items, errors, stats. ARGV: index, outcome (done|failed|retry), error, retryAt.
 * A repeat for an item already done or failed changes nothing (returns 0).
 */
export const MARK_ITEM = `
local cur = redis.call('HGET', KEYS[2], ARGV[1])
local attempts = 0
if cur then
  local state = string.sub(cur, 1, 1)
  if state ~= 'p' then return 0 end
  local a = string.match(cur, '^p|(%d+)|')
  attempts = tonumber(a)
end
attempts = attempts + 1
local index = tonumber(ARGV[1])
local jobState = redis.call('HGET', KEYS[1], 'state')
if ARGV[2] ~= 'retry' and (jobState == 'cancelled' or jobState == 'failed') then
  -- In flight when its job was closed: it ends now, so it is no longer counted as closed.
  redis.call('HINCRBY', KEYS[1], 'closedOpen', -1)
  redis.call('HINCRBY', KEYS[4], 'items:closed', -1)
end
if ARGV[2] == 'done' then
  redis.call('HSET', KEYS[2], ARGV[1], 'd|' .. attempts .. '|0|')
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'done', 1)
  redis.call('HINCRBY', KEYS[4], 'items:done', 1)
elseif ARGV[2] == 'failed' then
  redis.call('HSET', KEYS[2], ARGV[1], 'f|' .. attempts .. '|0|' .. ARGV[3])
  redis.call('ZADD', KEYS[3], index, ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'failed', 1)
  redis.call('HINCRBY', KEYS[4], 'items:failed', 1)
else
  redis.call('HSET', KEYS[2], ARGV[1], 'p|' .. attempts .. '|' .. ARGV[4] .. '|' .. ARGV[3])
  redis.call('ZADD', KEYS[3], index, ARGV[1])
end
return 1
`

/**
 * KEYS: chunk set, job, stats, finished, active. ARGV: chunk number, now, id. Records one finished
 * chunk once; the last one ends the job as done. Returns the number of chunks finished.
 */
export const CHUNK_DONE = REINDEX + `
redis.call('SREM', KEYS[5], ARGV[1])
redis.call('SADD', KEYS[1], ARGV[1])
local n = redis.call('SCARD', KEYS[1])
local chunks = tonumber(redis.call('HGET', KEYS[2], 'chunks'))
local state = redis.call('HGET', KEYS[2], 'state')
if n >= chunks and (state == 'queued' or state == 'running') then
  redis.call('HSET', KEYS[2], 'state', 'done', 'finishedAt', ARGV[2])
  reindex(KEYS[2], ARGV[3], state, 'done')
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
  redis.call('HINCRBY', KEYS[3], 'jobs:' .. state, -1)
  redis.call('HINCRBY', KEYS[3], 'jobs:done', 1)
end
return n
`

/**
 * KEYS: job, stats, finished, active. ARGV: now, id, chunk, run. A chunk starts: it joins the
 * job's active set, a queued job becomes running, and the job's attempts are the most runs any
 * chunk has had. Returns the job's state; anything but running means: do not run.
 */
export const CHUNK_START = REINDEX + `
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return state or false end
redis.call('SADD', KEYS[4], ARGV[3])
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  reindex(KEYS[1], ARGV[2], 'queued', 'running')
  redis.call('HINCRBY', KEYS[2], 'jobs:queued', -1)
  redis.call('HINCRBY', KEYS[2], 'jobs:running', 1)
  redis.call('HSETNX', KEYS[1], 'startedAt', ARGV[1])
end
if tonumber(ARGV[4]) > tonumber(redis.call('HGET', KEYS[1], 'attempts')) then
  redis.call('HSET', KEYS[1], 'attempts', ARGV[4])
end
return 'running'
`

/**
 * KEYS: job, stats, active. ARGV: id, chunk. A chunk stops without finishing (waits for a retry,
 * handed back on stop, or threw): when no other chunk runs, the job is queued again.
 */
export const CHUNK_PAUSE = REINDEX + `
redis.call('SREM', KEYS[3], ARGV[2])
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'running' and redis.call('SCARD', KEYS[3]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'queued')
  reindex(KEYS[1], ARGV[1], 'running', 'queued')
  redis.call('HINCRBY', KEYS[2], 'jobs:running', -1)
  redis.call('HINCRBY', KEYS[2], 'jobs:queued', 1)
end
return state
`

/** Runs a script registered with `defineCommand` (ioredis adds it as a method, untyped). */
export function callScript (redis: Redis, name: string, ...args: Array<string | number>): Promise<unknown> {
  return (redis as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>)[name]!(...args)
}

/** One stored item, parsed. */
export interface ItemRecord {
  state: 'p' | 'd' | 'f'
  attempts: number
  dueAt: number
  error: string
}

/** Parses "state|attempts|dueAt|error"; null (absent) is a fresh pending item. */
export function parseItem (value: string | null): ItemRecord {
  if (value === null) return { state: 'p', attempts: 0, dueAt: 0, error: '' }
  const [state, attempts, dueAt] = value.split('|', 3) as [string, string, string]
  const error = value.slice(state.length + attempts.length + dueAt.length + 3)
  return { state: state as ItemRecord['state'], attempts: Number(attempts), dueAt: Number(dueAt), error }
}
