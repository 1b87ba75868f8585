// Job control over HTTP (issue 8): GET /jobs (newest first, ?state=, pages with next/before) and
// the signatures the control routes need, on both stores: SQLite under createReceiver's default,
// and BullMQ on the real Redis. The same assertions run on each store; where the stores disagree
// the test stays red and names the behaviour. Retry and cancel: ops-control-retry.test.ts; the
// harness: helpers/ops-control.ts.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { sign } from 'rawtrigger'
import { SECRET, WAIT_MS, addresses, get, list, post, postEmail, postRecord, start, untilState } from './helpers/ops-control.ts'
import type { JobList } from '../src/queue/types.ts'
import { request } from './helpers/receiver.ts'
import { STORE_KINDS } from './helpers/store-receiver.ts'

for (const kind of STORE_KINDS) {
  describe(`job control on ${kind}`, () => {
    test('GET /jobs: newest first, ?state= filters, pages follow next → before to the end', async (t) => {
      const h = await start(t, kind, { concurrency: 0 })
      if (h === undefined) return
      const ids = Array.from({ length: 7 }, (_, i) => `list-${kind}-${i}`)
      for (const id of ids) await postRecord(h, id, 3) // one by one: creation order is the order
      for (const id of [ids[1], ids[4]] as string[]) {
        const res = await post(h, `/jobs/${id}/cancel`)
        assert.equal(res.status, 200, res.text)
      }

      const all = await list(h, '')
      assert.deepEqual(all.jobs.map((j) => j.id), [...ids].reverse(), 'newest first')
      assert.equal(all.next, undefined, 'fewer than the default limit: no next page')
      for (const j of all.jobs) {
        assert.equal(j.type, 'record')
        assert.equal(j.total, 3)
        assert.ok(!('errors' in j), 'the list shows summaries, not errors')
      }

      const cancelled = await list(h, '?state=cancelled')
      assert.deepEqual(cancelled.jobs.map((j) => j.id), [ids[4], ids[1]])
      for (const j of cancelled.jobs) assert.deepEqual([j.state, j.pending, j.cancelled, j.sent], ['cancelled', 0, 3, 0])
      assert.deepEqual((await list(h, '?state=done')).jobs, [])

      // Five queued jobs, two per page: 2 + 2 + 1, each page's next is the following page's before.
      const pages: string[][] = []
      let before: string | undefined
      for (let round = 0; round < 10; round++) {
        const page: JobList = await list(h, `?state=queued&limit=2${before === undefined ? '' : `&before=${encodeURIComponent(before)}`}`)
        pages.push(page.jobs.map((j) => j.id))
        for (const j of page.jobs) assert.equal(j.state, 'queued')
        if (page.next === undefined) break
        assert.equal(typeof page.next, 'string')
        before = page.next
      }
      assert.deepEqual(pages, [[ids[6], ids[5]], [ids[3], ids[2]], [ids[0]]])

      // Without a state filter as well: limit 3 → 3 + 3 + 1.
      const unfiltered: string[] = []
      before = undefined
      for (let round = 0; round < 10; round++) {
        const page: JobList = await list(h, `?limit=3${before === undefined ? '' : `&before=${encodeURIComponent(before)}`}`)
        unfiltered.push(...page.jobs.map((j) => j.id))
        if (page.next === undefined) break
        before = page.next
      }
      assert.deepEqual(unfiltered, [...ids].reverse())

      for (const [query, field] of [['?limit=0', 'limit'], ['?limit=501', 'limit'], ['?limit=2.5', 'limit'], ['?state=sleeping', 'state']] as const) {
        const res = await get(h, `/jobs${query}`)
        assert.equal(res.status, 400, `${query}: ${res.text}`)
        assert.equal(res.json.error.code, 'RT_ERR_VALIDATION')
        assert.equal(res.json.error.field, field)
      }
      const wrongMethod = await request(`${h.url}/jobs`, { method: 'DELETE' })
      assert.equal(wrongMethod.status, 405)
      assert.equal(wrongMethod.json.error.code, 'RT_ERR_METHOD_NOT_ALLOWED')
    })

    test('GET /jobs?before= with something that is no cursor → 400 RT_ERR_VALIDATION (same on both stores)', async (t) => {
      const h = await start(t, kind, { concurrency: 0 })
      if (h === undefined) return
      await postRecord(h, `cursor-${kind}`, 1)
      // SQLite reads a cursor it cannot parse as 0 (an empty page, 200); Redis hands "(NaN" to
      // ZREVRANGEBYSCORE and answers 503 RT_ERR_STORE. Neither tells the client its cursor is bad.
      const res = await get(h, '/jobs?before=not-a-cursor')
      assert.equal(res.status, 400, `${kind}: ${res.status} ${res.text}`)
      assert.equal(res.json.error.code, 'RT_ERR_VALIDATION')
    })

    test('GET /jobs?state= finds a matching job behind 5,100 newer jobs of another state', async (t) => {
      const h = await start(t, kind, { concurrency: 0 })
      if (h === undefined) return
      await postRecord(h, `needle-${kind}`, 2)
      assert.equal((await post(h, `/jobs/needle-${kind}/cancel`)).status, 200)
      // Straight into the receiver's own queue: 5,100 HTTP requests would only cost time.
      for (let i = 0; i < 5_100; i += 100) {
        await Promise.all(Array.from({ length: 100 }, () => h.receiver.queue.add({ type: 'noop', payload: {}, items: 0 })))
      }
      const page = await list(h, '?state=cancelled&limit=10')
      assert.deepEqual(page.jobs.map((j) => j.id), [`needle-${kind}`], `the page: ${JSON.stringify(page)}`)
      const queued = await list(h, '?state=queued&limit=500')
      assert.equal(queued.jobs.length, 500)
      assert.equal(typeof queued.next, 'string')
    })

    test('with a secret, list/retry/cancel/suppressions need a valid signature (401 without or with a wrong one)', async (t) => {
      const h = await start(t, kind, { secret: SECRET })
      if (h === undefined) return
      const id = await postEmail(h, `signed-${kind}`, addresses(`signed-${kind}-`, 2), SECRET)
      const routes: Array<{ method: string, path: string, body?: string, ok: number }> = [
        { method: 'GET', path: '/jobs', ok: 200 },
        { method: 'GET', path: '/jobs?state=done&limit=5', ok: 200 },
        { method: 'GET', path: `/jobs/${id}`, ok: 200 },
        { method: 'POST', path: '/suppressions', body: JSON.stringify({ email: 'x@example.org', reason: 'test' }), ok: 201 },
        { method: 'GET', path: '/suppressions', ok: 200 },
        { method: 'DELETE', path: '/suppressions/x%40example.org', ok: 204 },
        { method: 'POST', path: '/jobs/no-such-job/cancel', ok: 404 },
        { method: 'POST', path: '/jobs/no-such-job/retry', ok: 404 },
      ]
      await untilState(h, id, ['done'], WAIT_MS, SECRET)
      for (const r of routes) {
        const body = r.body
        const json = body === undefined ? {} : { 'content-type': 'application/json' }
        const unsigned = await request(`${h.url}${r.path}`, { method: r.method, headers: json, ...(body === undefined ? {} : { body }) })
        assert.equal(unsigned.status, 401, `${r.method} ${r.path} unsigned: ${unsigned.text}`)
        assert.equal(unsigned.json.error.code, 'RT_ERR_UNAUTHORIZED')
        // Signed over another body (e.g. a replayed signature): refused as well.
        const wrong = await request(`${h.url}${r.path}`, { method: r.method, headers: { ...json, ...sign(SECRET, 'something else') }, ...(body === undefined ? {} : { body }) })
        assert.equal(wrong.status, 401, `${r.method} ${r.path} wrongly signed: ${wrong.text}`)
        const otherSecret = 'whsec_' + Buffer.from('another secret of thirty-two b..').toString('base64')
        const foreign = await request(`${h.url}${r.path}`, { method: r.method, headers: { ...json, ...sign(otherSecret, body ?? '') }, ...(body === undefined ? {} : { body }) })
        assert.equal(foreign.status, 401, `${r.method} ${r.path} signed with another secret: ${foreign.text}`)
        const signed = await request(`${h.url}${r.path}`, { method: r.method, headers: { ...json, ...sign(SECRET, body ?? '') }, ...(body === undefined ? {} : { body }) })
        assert.equal(signed.status, r.ok, `${r.method} ${r.path} signed: ${signed.text}`)
      }
      // A cancel and a retry that do something, signed (body-less POST: signature over "").
      const cancelled = await request(`${h.url}/jobs/${id}/cancel`, { method: 'POST', headers: sign(SECRET, '') })
      assert.equal(cancelled.status, 409, 'done: nothing to cancel, but the signature was accepted')
      const retry = await request(`${h.url}/jobs/${id}/retry`, { method: 'POST', headers: sign(SECRET, '') })
      assert.equal(retry.status, 409, 'nothing failed: nothing to retry, but the signature was accepted')
    })
  })
}
