// A job type added as a receiver plugin (server/plugin.ts), touching neither server/ nor queue/:
// its handler, a keyed list in the store, a route with its access row, a metric fed by its items'
// events, its field in /stats. Also: a type registered twice is refused, and the suppression list
// of a store made by 0.1 (its own SQLite table, its own Redis keys) is moved into the keyed lists.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import Database from 'better-sqlite3'
import { Redis } from 'ioredis'
import { Counter } from 'prom-client'
import { join } from 'node:path'
import { SqliteStore, type JobHandler, type ReceiverPlugin } from 'rawtrigger'
import { ValidationError } from '../src/errors.ts'
import { sendJson } from '../src/server/respond.ts'
import { rejectsWith } from './helpers/assert-error.ts'
import { getStats, postJob, request, startReceiver, tempDir, waitForState } from './helpers/receiver.ts'
import { openBullmq, useRedis } from './helpers/redis.ts'

/** `POST /jobs/tally { names: [...] }`: each name is an item, put into the keyed list `tallies`. */
const tallyHandler: JobHandler<{ names: string[] }> = {
  parse (body) {
    const names = (body as { names?: unknown }).names
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) throw new ValidationError('names', 'must be an array of strings')
    return { payload: { names }, items: names.length }
  },
  async run (ctx) {
    const list = ctx.keyedList('tallies')
    for await (const item of ctx.dueItems()) {
      await list.put(ctx.payload.names[item.index] as string, ctx.id)
      await ctx.markItem(item.index, { state: 'done' })
      ctx.observe({ outcome: 'counted' })
    }
  },
}

const tallyPlugin: ReceiverPlugin = {
  name: 'tally',
  handlers: { tally: tallyHandler },
  access: [{ path: '/tally', rule: 'local' }],
  register ({ queue, registry }) {
    const counted = new Counter({ name: 'rawtrigger_tally_total', help: 'Names counted.', registers: [registry] })
    return {
      route (_ctx, req, res, path) {
        if (path !== '/tally' || req.method !== 'GET') return false
        queue.keyedList('tallies').entries(100).then((entries) => sendJson(res, 200, { entries }), () => sendJson(res, 503, {}))
        return true
      },
      observe (event) { if (event.outcome === 'counted') counted.inc() },
      stats: (s) => ({ tally: { done: s.items.done } }),
    }
  },
}

test('a second job type as a plugin: its route, keyed list, metric and /stats field; no e-mail route without the e-mail plugin', async (t) => {
  const r = await startReceiver(t, { plugins: [tallyPlugin] })
  const posted = await postJob(r.url, 'tally', { names: ['Ada', 'Grace', 'ada'] })
  assert.equal(posted.status, 202, posted.text)
  await waitForState(r.url, posted.json.id as string, 'done')
  const listed = await request(`${r.url}/tally`)
  assert.equal(listed.status, 200, listed.text)
  // Keys compare case-insensitively: 'ada' updated Ada's entry, it added none.
  assert.deepEqual((listed.json.entries as Array<{ key: string }>).map((e) => e.key), ['Ada', 'Grace'])
  const metrics = (await request(`${r.url}/metrics`)).text
  assert.match(metrics, /^rawtrigger_tally_total 3$/m, 'each item event reached the plugin of its job type')
  assert.doesNotMatch(metrics, /rawtrigger_emails_total/)
  const stats = await getStats(r.url) as unknown as Record<string, unknown>
  assert.deepEqual(stats.tally, { done: 3 })
  assert.equal(stats.emails, undefined, 'the e-mail fields come from the e-mail plugin')
  assert.equal((await request(`${r.url}/suppressions`)).status, 404)
  // The plugin's row decides its route's access: `local` refuses a foreign Host.
  assert.equal((await request(`${r.url}/tally`, { headers: { host: 'evil.example' } })).status, 403)
})

test('a job type registered twice (a handler and a plugin) is refused with RT_ERR_CONFIG', async (t) => {
  const err = await rejectsWith(startReceiver(t, { plugins: [tallyPlugin], handlers: { tally: tallyHandler } }), 'RT_ERR_CONFIG')
  assert.match(err.message, /tally is registered twice/)
})

test('SQLite: a file of 0.1 with its own suppressions table has them in the keyed list once opened, and the table is gone', async (t) => {
  const dir = tempDir(t)
  await new SqliteStore(dir).close()
  const db = new Database(join(dir, 'rawtrigger.db'))
  db.exec(`CREATE TABLE suppressions (email TEXT PRIMARY KEY COLLATE NOCASE, reason TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO suppressions VALUES ('Old@Example.org', 'hard bounce: 550', 1700000000000)`)
  db.close()
  const store = new SqliteStore(dir)
  t.after(() => store.close())
  assert.deepEqual(await store.keyedList('suppressions').entries(10), [{ key: 'Old@Example.org', value: 'hard bounce: 550', createdAt: new Date(1700000000000).toISOString() }])
  assert.deepEqual([...await store.keyedList('suppressions').lookup(['old@example.org'])], [['old@example.org', 'hard bounce: 550']])
  const after = new Database(join(dir, 'rawtrigger.db'), { readonly: true })
  t.after(() => after.close())
  assert.equal(after.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'suppressions'`).pluck().get(), 0)
})

test('Redis: the suppression keys of 0.1 are moved into the keyed list on first use', async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return
  const raw = new Redis(redis.url)
  t.after(() => raw.disconnect())
  const key = (k: string): string => `${redis.prefix}:rt:${k}`
  await raw.hset(key('suppressed'), 'old@example.org', JSON.stringify({ email: 'Old@Example.org', reason: 'complaint', createdAt: '2026-01-01T00:00:00.000Z' }))
  await raw.zadd(key('suppressed:index'), 0, 'old@example.org')
  const queue = await openBullmq(redis)
  t.after(() => queue.close())
  assert.deepEqual(await queue.keyedList('suppressions').entries(10), [{ key: 'Old@Example.org', value: 'complaint', createdAt: '2026-01-01T00:00:00.000Z' }])
  assert.equal(await raw.exists(key('suppressed'), key('suppressed:index')), 0)
  assert.equal(await queue.keyedList('suppressions').put('old@example.org', 'unsubscribed'), false, 'the moved entry is the one updated')
})
