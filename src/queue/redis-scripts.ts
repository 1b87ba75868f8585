// All of rawtrigger's Lua, run atomically by Redis: each keeps a job's record, its items and the
// global counters in step, whichever process calls it. Items are stored as "state|attempts|dueAt|error"
// with state p (pending), d (done) or f (failed); an absent item is pending with no attempts. Every
// key a script touches comes in KEYS (Redis Cluster routes a call by them): none is built in Lua.

/** The per-state indexes a script that moves jobs takes as its last KEYS, in this order ({@link REINDEX}). */
export const INDEXED_STATES = ['scheduled', 'queued', 'running', 'done', 'failed', 'cancelled'] as const

/**
 * Lua shared by the scripts that move a job between states: keeps the per-state index
 * (`…:rt:index:<state>`, scored by the job's creation order) that `GET /jobs?state=` pages through.
 * Each such script takes the six indexes as its last KEYS, in {@link INDEXED_STATES} order.
 */
export const REINDEX = `
local STATE_AT = { scheduled = 6, queued = 5, running = 4, done = 3, failed = 2, cancelled = 1 }
local function reindex (job, id, old, new)
  local seq = redis.call('HGET', job, 'seq')
  if old then redis.call('ZREM', KEYS[#KEYS + 1 - STATE_AT[old]], id) end
  if new and seq then redis.call('ZADD', KEYS[#KEYS + 1 - STATE_AT[new]], seq, id) end
end
local function recount (stats, old, new)
  redis.call('HINCRBY', stats, 'jobs:' .. old, -1)
  redis.call('HINCRBY', stats, 'jobs:' .. new, 1)
end
`

/**
 * Intake of a batch of jobs in one call (one round trip per event-loop turn, not per job).
 * KEYS: stats, index, index:queued, seq, unchunked, index:scheduled, scheduled, each job's key,
 * then the dedup keys of jobs that have one. ARGV: now, the jobs' type, then per job its payload
 * and `<total> <chunks> <id> <d> <notBefore>`: d the position of its dedup key in KEYS (0: none;
 * then a duplicate only when its id exists), notBefore in epoch ms (0: none; else stored
 * `scheduled` until a chunk starts or the sweep's PROMOTE). A dedup key holds its first job's
 * `<id> <total> <chunks> <notBefore> <type>`; a later job of the batch with an earlier one's key is
 * its duplicate. One reply per job: 1 when created; { 0, first id, total, chunks, type,
 * notBefore } for a duplicate (the caller queues the first job's chunks again: a crash may have
 * lost them); { 0, first id } without its shape. A new job enters `unchunked` until the caller
 * has queued its chunks: what a crash or a failed addBulk leaves there, the sweep queues.
 */
export const CREATE_JOBS = `
local out = {}
local queued, scheduled, items = 0, 0, 0
local type = ARGV[2]
for i = 1, (#ARGV - 2) / 2 do
  local a = 1 + 2 * i
  local total, chunks, id, d, notBefore = string.match(ARGV[a + 1], '^(%d+) (%d+) (%S+) (%d+) (%d+)$')
  local job = KEYS[7 + i]
  d, notBefore = tonumber(d), tonumber(notBefore)
  local first = d > 0 and redis.call('GET', KEYS[d]) or nil
  if first then
    local fid, ftotal, fchunks, fnb, ftype = string.match(first, '^(%S+) (%d+) (%d+) (%d+) (.+)$')
    if fid then out[i] = { 0, fid, ftotal, fchunks, ftype, fnb } else out[i] = { 0, first } end
  elseif redis.call('EXISTS', job) == 1 then
    local h = redis.call('HMGET', job, 'total', 'chunks', 'type', 'notBefore')
    out[i] = { 0, id, h[1], h[2], h[3], h[4] or '0' }
  else
    local seq = redis.call('INCR', KEYS[4])
    local fields = { 'type', type, 'payload', ARGV[a], 'total', total, 'chunks', chunks,
      'state', notBefore > 0 and 'scheduled' or 'queued', 'createdAt', ARGV[1], 'done', 0, 'failed', 0, 'attempts', 0, 'seq', seq }
    if notBefore > 0 then table.insert(fields, 'notBefore'); table.insert(fields, notBefore) end
    if d > 0 then
      redis.call('SET', KEYS[d], id .. ' ' .. total .. ' ' .. chunks .. ' ' .. notBefore .. ' ' .. type)
      table.insert(fields, 'dedup'); table.insert(fields, KEYS[d])
    end
    redis.call('HSET', job, unpack(fields))
    redis.call('ZADD', KEYS[2], seq, id)
    if notBefore > 0 then
      redis.call('ZADD', KEYS[6], seq, id)
      redis.call('ZADD', KEYS[7], notBefore, id)
      scheduled = scheduled + 1
    else
      redis.call('ZADD', KEYS[3], seq, id)
      queued = queued + 1
    end
    redis.call('ZADD', KEYS[5], ARGV[1], id)
    items = items + tonumber(total)
    out[i] = 1
  end
end
if queued > 0 then redis.call('HINCRBY', KEYS[1], 'jobs:queued', queued) end
if scheduled > 0 then redis.call('HINCRBY', KEYS[1], 'jobs:scheduled', scheduled) end
if items > 0 then redis.call('HINCRBY', KEYS[1], 'items:total', items) end
return out
`

/** KEYS: job, stats, finished. ARGV: new state, now, error, id. Moves a job and the counters; done, failed, cancelled are final (and enter the retention index); returns the state afterwards. */
export const SET_STATE = REINDEX + `
local old = redis.call('HGET', KEYS[1], 'state')
if not old or old == ARGV[1] or old == 'done' or old == 'failed' or old == 'cancelled' then return old or false end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
reindex(KEYS[1], ARGV[4], old, ARGV[1])
recount(KEYS[2], old, ARGV[1])
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

/** KEYS: job, items, errors, stats. ARGV: index, outcome (done|failed|retry), error, retryAt. A repeat for an item already done or failed changes nothing (returns 0). */
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
  recount(KEYS[3], state, 'done')
end
return n
`

/**
 * KEYS: job, stats, finished, active. ARGV: now, id, chunk, run, runner, claim. A chunk joins the
 * job's active set, a queued (or scheduled) job becomes running, its attempts the most runs of any
 * chunk. With claim 1 the chunk runs only for the BullMQ job (runner) that started it first: a
 * bundle and the sweep's `<id>-c0` do not both run it (`taken`). Anything but running: do not run.
 */
export const CHUNK_START = REINDEX + `
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' and state ~= 'scheduled' then return state or false end
if ARGV[6] == '1' then
  local owner = redis.call('HGET', KEYS[1], 'runner:' .. ARGV[3])
  if not owner then redis.call('HSET', KEYS[1], 'runner:' .. ARGV[3], ARGV[5])
  elseif owner ~= ARGV[5] then return 'taken' end
end
redis.call('SADD', KEYS[4], ARGV[3])
if state ~= 'running' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  reindex(KEYS[1], ARGV[2], state, 'running')
  recount(KEYS[2], state, 'running')
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
  recount(KEYS[2], 'running', 'queued')
end
return state
`

/**
 * KEYS: job, stats, scheduled. ARGV: id. The job's not-before time has come (run by the sweep): a
 * job still `scheduled` becomes `queued`, and leaves `scheduled` either way. Returns 1 when moved.
 */
export const PROMOTE = REINDEX + `
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[1], 'state') ~= 'scheduled' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued')
reindex(KEYS[1], ARGV[1], 'scheduled', 'queued')
recount(KEYS[2], 'scheduled', 'queued')
return 1
`

/**
 * KEYS: job, items, errors, stats, finished. ARGV: id. Failed items become fresh pending ones; the
 * job goes back to queued (from done or failed) with the counters, and out of the retention index.
 * Returns the retried indexes; none for a cancelled job, whose unsent items must stay unsent.
 */
export const RETRY = REINDEX + `
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'cancelled' then return {} end
local idx = redis.call('ZRANGE', KEYS[3], 0, -1)
local retried = {}
for _, i in ipairs(idx) do
  local cur = redis.call('HGET', KEYS[2], i)
  if cur and string.sub(cur, 1, 1) == 'f' then
    redis.call('HSET', KEYS[2], i, 'p|0|0|')
    redis.call('ZREM', KEYS[3], i)
    retried[#retried + 1] = i
  end
end
local n = #retried
if n == 0 then return retried end
redis.call('HINCRBY', KEYS[1], 'failed', -n)
redis.call('HINCRBY', KEYS[4], 'items:failed', -n)
if state == 'done' or state == 'failed' then
  redis.call('HSET', KEYS[1], 'state', 'queued')
  reindex(KEYS[1], ARGV[1], state, 'queued')
  redis.call('HDEL', KEYS[1], 'finishedAt', 'error')
  redis.call('ZREM', KEYS[5], ARGV[1])
  recount(KEYS[4], state, 'queued')
end
return retried
`

/**
 * KEYS: job, items, errors, chunks, stats, index, finished, active, its dedup key (or the job key
 * again when it has none). ARGV: id. Deletes one job and its counts.
 */
export const PURGE = REINDEX + `
local h = redis.call('HMGET', KEYS[1], 'state', 'total', 'done', 'failed', 'closedOpen', 'dedup')
if h[1] then
  reindex(KEYS[1], ARGV[1], h[1], nil)
  -- 0 - x, not -x: Lua writes -0 for a zero, which HINCRBY refuses.
  redis.call('HINCRBY', KEYS[5], 'jobs:' .. h[1], -1)
  redis.call('HINCRBY', KEYS[5], 'items:total', 0 - tonumber(h[2]))
  redis.call('HINCRBY', KEYS[5], 'items:done', 0 - tonumber(h[3]))
  redis.call('HINCRBY', KEYS[5], 'items:failed', 0 - tonumber(h[4]))
  redis.call('HINCRBY', KEYS[5], 'items:closed', 0 - tonumber(h[5] or '0'))
  if h[6] and h[6] == KEYS[9] then redis.call('DEL', KEYS[9]) end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[8])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
return 1
`

/** KEYS: job, stats, finished. ARGV: now, id. Cancels a job not yet finished; returns the state it is in afterwards. */
export const CANCEL = REINDEX + `
local s = redis.call('HGET', KEYS[1], 'state')
if s ~= 'scheduled' and s ~= 'queued' and s ~= 'running' then return s end
reindex(KEYS[1], ARGV[2], s, 'cancelled')
local h = redis.call('HMGET', KEYS[1], 'total', 'done', 'failed')
local open = tonumber(h[1]) - tonumber(h[2]) - tonumber(h[3])
-- Unsent items leave the pending count; one in flight that ends later gives its share back.
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finishedAt', ARGV[1], 'closedOpen', open)
redis.call('HINCRBY', KEYS[2], 'items:closed', open)
recount(KEYS[2], s, 'cancelled')
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
return 'cancelled'
`

/** KEYS: 0.1's suppression hash and index, a list's hash and index (redis-lists.ts). Moves 0.1's entries into the list once. */
export const MIGRATE_LIST = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local o = cjson.decode(all[i + 1])
  redis.call('HSETNX', KEYS[3], all[i], cjson.encode({ key = o.email, value = o.reason, createdAt = o.createdAt }))
  redis.call('ZADD', KEYS[4], 0, all[i])
end
redis.call('DEL', KEYS[1], KEYS[2])
return #all / 2
`
