// `notBefore` over HTTP, on both stores: the body field any job type takes (the `record` type has
// no such field in its schema), the 400 for a bad time, GET /jobs/:id and ?state=scheduled,
// /stats, retry refused (409) and cancel before the start.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import testHandlers from './helpers/handlers.ts'
import { getJob, getStats, postJob, readRecords, request, tempDir, waitForState } from './helpers/receiver.ts'
import { STORE_KINDS, startOnStore } from './helpers/store-receiver.ts'

const HOUR_MS = 3600_000

for (const kind of STORE_KINDS) {
  test(`notBefore over HTTP (${kind}): 400 for a bad time, scheduled in GET /jobs/:id, listed, counted; retry 409, cancel 200`, async (t) => {
    const receiver = await startOnStore(t, kind, { handlers: testHandlers, concurrency: 1 })
    if (receiver === undefined) return
    const { url } = receiver
    const file = join(tempDir(t), 'records')

    await t.test('a bad notBefore is a 400 RT_ERR_VALIDATION naming the field, and creates no job', async () => {
      const bad = ['tomorrow', '2030-01-31T09:00:00', '2030-01-31', 1_900_000_000_000, '2030-13-45T99:00:00Z', new Date(Date.now() + 400 * 24 * HOUR_MS).toISOString()]
      for (const notBefore of bad) {
        const res = await postJob(url, 'record', { n: 1, file, notBefore })
        assert.equal(res.status, 400, `${JSON.stringify(notBefore)}: ${res.text}`)
        assert.equal(res.json.error.code, 'RT_ERR_VALIDATION')
        assert.equal(res.json.error.field, 'notBefore')
      }
      assert.equal((await request(`${url}/jobs?state=scheduled`)).json.jobs.length, 0)
    })

    const at = new Date(Date.now() + HOUR_MS)
    // A zone offset, not Z: the instant is what counts, shown back in UTC.
    const local = new Date(at.getTime() + 2 * HOUR_MS).toISOString().replace('Z', '+02:00')
    const res = await postJob(url, 'record', { n: 3, file, notBefore: local }, { 'webhook-id': `sched-${kind}` })

    await t.test('202 with the job and its notBefore, the type parsed the body without it', () => {
      assert.equal(res.status, 202, res.text)
      assert.equal(res.json.id, `sched-${kind}`)
      assert.equal(res.json.notBefore, at.toISOString())
      assert.equal(res.json.items, 3)
    })
    await t.test('GET /jobs/:id shows scheduled with notBefore; GET /jobs?state=scheduled lists it; /stats counts it', async () => {
      const view = await getJob(url, res.json.id)
      assert.equal(view.state, 'scheduled')
      assert.equal(view.notBefore, at.toISOString())
      assert.deepEqual((await request(`${url}/jobs?state=scheduled`)).json.jobs.map((j: { id: string }) => j.id), [res.json.id])
      assert.deepEqual((await request(`${url}/jobs?state=queued`)).json.jobs, [])
      const stats = await getStats(url)
      assert.equal((stats.jobs as Record<string, number>).scheduled, 1)
      assert.equal(stats.jobs.queued, 0)
      assert.equal(stats.emails.pending, 3)
    })
    await t.test('a repeat with the same webhook-id is a duplicate, the first schedule kept', async () => {
      const again = await postJob(url, 'record', { n: 3, file }, { 'webhook-id': `sched-${kind}` })
      assert.equal(again.status, 202)
      assert.equal(again.json.duplicate, true)
      assert.equal((await getJob(url, res.json.id)).notBefore, at.toISOString())
    })
    await t.test('retry: 409, it has not run', async () => {
      const retry = await request(`${url}/jobs/${res.json.id}/retry`, { method: 'POST' })
      assert.equal(retry.status, 409, retry.text)
      assert.equal(retry.json.error.code, 'RT_ERR_CONFLICT')
      assert.match(retry.json.error.message, /scheduled/)
    })
    await t.test('a time in the past is no schedule: the job runs now', async () => {
      const past = await postJob(url, 'record', { n: 2, file, notBefore: '2020-01-01T00:00:00Z' })
      assert.equal(past.status, 202, past.text)
      assert.equal(past.json.notBefore, undefined)
      await waitForState(url, past.json.id, 'done')
      assert.deepEqual(readRecords(file), [[past.json.id, 0], [past.json.id, 1]])
    })
    await t.test('cancel before the start: 200, cancelled, nothing of it ran', async () => {
      const cancel = await request(`${url}/jobs/${res.json.id}/cancel`, { method: 'POST' })
      assert.equal(cancel.status, 200, cancel.text)
      assert.deepEqual(cancel.json, { id: res.json.id, items: 3, state: 'cancelled' })
      const view = await getJob(url, res.json.id)
      assert.equal(view.state, 'cancelled')
      assert.equal(view.notBefore, undefined)
      assert.equal(readRecords(file).filter(([id]) => id === res.json.id).length, 0)
    })
  })
}
