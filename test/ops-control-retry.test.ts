// Job control over HTTP (issue 8), continued: POST /jobs/:id/retry and /cancel on both stores.
// E-mail jobs go to a real in-process SMTP server whose fault plan refuses some recipients once
// or answers slowly. The harness: helpers/ops-control.ts.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { addresses, deliveredFor, list, post, postEmail, postRecord, settled, start, until, untilState, view } from './helpers/ops-control.ts'
import { request } from './helpers/receiver.ts'
import type { FaultPlan } from './helpers/smtp-server.ts'
import { STORE_KINDS } from './helpers/store-receiver.ts'
import { sleep } from './helpers/wait.ts'

for (const kind of STORE_KINDS) {
  describe(`job control on ${kind}: retry and cancel`, () => {
    test('retry re-queues only the failed recipients: each delivered once, the rest not sent again; then nothing failed → 409', async (t) => {
      const recipients = addresses(`retry-${kind}-`, 7)
      const refused = [recipients[1], recipients[4], recipients[6]] as string[]
      // 554 is permanent (the item fails at once) but no hard bounce, so the address is not suppressed.
      // Refused on the first try only: after that the server takes them (the plan "changes").
      const rcpt: NonNullable<FaultPlan['rcpt']> = {}
      for (const a of refused) rcpt[a] = { code: 554, message: 'Transaction failed: try again later, by hand', times: 1 }
      const h = await start(t, kind, { faults: { rcpt } })
      if (h === undefined) return
      const id = await postEmail(h, `retry-${kind}`, recipients)

      const first = await untilState(h, id, ['done', 'failed'])
      assert.equal(first.state, 'done', JSON.stringify(first))
      assert.deepEqual([first.total, first.sent, first.failed, first.pending], [7, 4, 3, 0])
      assert.deepEqual(first.errors.map((e) => [e.index, e.state, e.attempts]), [[1, 'failed', 1], [4, 'failed', 1], [6, 'failed', 1]])
      for (const e of first.errors) assert.match(e.message, /^554 /)
      assert.equal(h.smtp.delivered.length, 4)
      const failedList = await list(h, '?state=done')
      assert.deepEqual(failedList.jobs.map((j) => [j.id, j.failed]), [[id, 3]])

      const retried = await post(h, `/jobs/${id}/retry`)
      assert.equal(retried.status, 200, retried.text)
      assert.equal(retried.json.id, id)
      assert.equal(retried.json.items, 3)
      assert.ok(['queued', 'running'].includes(retried.json.state), `state after retry: ${String(retried.json.state)}`)

      const second = await untilState(h, id, ['done', 'failed'])
      assert.equal(second.state, 'done', JSON.stringify(second))
      assert.deepEqual([second.total, second.sent, second.failed, second.pending], [7, 7, 0, 0])
      assert.deepEqual(second.errors, [])
      // Every address exactly once: the failed three on the retry, none of the others again.
      const counts = h.smtp.countByAddress()
      for (const a of recipients) assert.equal(counts.get(a), 1, `${a} delivered ${counts.get(a) ?? 0} times`)
      assert.equal(h.smtp.delivered.length, 7)
      for (const a of recipients) assert.equal(h.smtp.rcptTries(a), refused.includes(a) ? 2 : 1, a)

      const again = await post(h, `/jobs/${id}/retry`)
      assert.equal(again.status, 409, again.text)
      assert.equal(again.json.error.code, 'RT_ERR_CONFLICT')
      const missing = await post(h, '/jobs/no-such-job/retry')
      assert.equal(missing.status, 404, missing.text)
      assert.equal(missing.json.error.code, 'RT_ERR_NOT_FOUND')
      const wrongMethod = await request(`${h.url}/jobs/${id}/retry`)
      assert.equal(wrongMethod.status, 405)
      await settled(h)
      assert.equal(deliveredFor(h.smtp, id), 7, 'a refused retry sends nothing')
    })

    test('retry of a job that never failed → 409 and nothing is sent again', async (t) => {
      const h = await start(t, kind)
      if (h === undefined) return
      const id = await postEmail(h, `clean-${kind}`, addresses(`clean-${kind}-`, 3))
      const done = await untilState(h, id, ['done'])
      assert.equal(done.sent, 3)
      const res = await post(h, `/jobs/${id}/retry`)
      assert.equal(res.status, 409, res.text)
      assert.equal(res.json.error.code, 'RT_ERR_CONFLICT')
      await settled(h)
      assert.equal(deliveredFor(h.smtp, id), 3)
      assert.equal((await view(h, id)).state, 'done')
    })

    test('cancel of a finished job → 409; of a job that does not exist → 404', async (t) => {
      const h = await start(t, kind)
      if (h === undefined) return
      const id = await postEmail(h, `finished-${kind}`, addresses(`finished-${kind}-`, 2))
      await untilState(h, id, ['done'])
      const res = await post(h, `/jobs/${id}/cancel`)
      assert.equal(res.status, 409, res.text)
      assert.equal(res.json.error.code, 'RT_ERR_CONFLICT')
      assert.equal((await view(h, id)).state, 'done', 'a refused cancel changes nothing')
      const missing = await post(h, '/jobs/no-such-job/cancel')
      assert.equal(missing.status, 404, missing.text)
      assert.equal(missing.json.error.code, 'RT_ERR_NOT_FOUND')
    })

    test('cancel of a queued job that never ran: it ends cancelled with all its items', async (t) => {
      const h = await start(t, kind, { concurrency: 0 })
      if (h === undefined) return
      const id = `queued-${kind}`
      await postRecord(h, id, 5)
      const res = await post(h, `/jobs/${id}/cancel`)
      assert.equal(res.status, 200, res.text)
      const v = await view(h, id)
      assert.deepEqual([v.state, v.pending, v.cancelled, v.sent, v.failed], ['cancelled', 0, 5, 0, 0])

      await t.test('the answer counts the five items the cancel stopped', () => {
        assert.deepEqual(res.json, { id, items: 5, state: 'cancelled' })
      })
      await t.test('a second cancel of the (finished) cancelled job → 409', async () => {
        const again = await post(h, `/jobs/${id}/cancel`)
        assert.equal(again.status, 409, again.text)
        assert.equal(again.json.error.code, 'RT_ERR_CONFLICT')
      })
      await t.test('a retry of the cancelled job → 409: its unsent items stay unsent', async () => {
        const retry = await post(h, `/jobs/${id}/retry`)
        assert.equal(retry.status, 409, retry.text)
        assert.equal(retry.json.error.code, 'RT_ERR_CONFLICT')
        assert.equal((await view(h, id)).state, 'cancelled')
      })
    })

    test('cancel while a slow job runs: pending recipients cancelled, the job ends cancelled, sending stops', async (t) => {
      const DATA_DELAY_MS = 250
      const CONNECTIONS = 2
      const recipients = addresses(`slow-${kind}-`, 24)
      // BullMQ chunks larger than the pool, as in production (200 vs 5): a chunk runs like a SQLite job.
      const h = await start(t, kind, { faults: { dataDelayMs: DATA_DELAY_MS }, maxConnections: CONNECTIONS, chunkSize: 12 })
      if (h === undefined) return
      const id = await postEmail(h, `slow-${kind}`, recipients)
      await until('4 messages delivered', async () => (h.smtp.delivered.length >= 4 ? true : undefined))
      // Half-way between two 250 replies: nothing is between "delivered" and "next one started".
      await sleep(DATA_DELAY_MS / 2)
      const started = (): string[] => recipients.filter((a) => h.smtp.rcptTries(a) > 0)
      const res = await post(h, `/jobs/${id}/cancel`)
      const startedAtCancel = started()
      const deliveredAtCancel = h.smtp.delivered.length
      assert.equal(res.status, 200, res.text)
      assert.equal(res.json.state, 'cancelled')
      assert.equal(res.json.id, id)

      // Wait until nothing has arrived for three message times.
      let seen = -1
      let quietSince = Date.now()
      await until('the SMTP server to go quiet', async () => {
        if (h.smtp.delivered.length !== seen) {
          seen = h.smtp.delivered.length
          quietSince = Date.now()
        }
        return Date.now() - quietSince > 3 * DATA_DELAY_MS ? true : undefined
      })
      const end = await view(h, id)
      const inFlightAtCancel = startedAtCancel.length - deliveredAtCancel
      const deliveredAfter = h.smtp.delivered.length - deliveredAtCancel
      const lateStarts = started().filter((a) => !startedAtCancel.includes(a))

      await t.test('the job ends cancelled, nothing pending, every item accounted for', () => {
        assert.equal(end.state, 'cancelled', JSON.stringify(end))
        assert.equal(end.pending, 0)
        assert.equal((end.cancelled ?? 0) + end.sent + end.failed, end.total)
        assert.ok((end.cancelled ?? 0) > 0, `cancelled ${String(end.cancelled)}`)
        assert.ok(h.smtp.delivered.length < recipients.length, 'the cancel stopped the job before the end')
        assert.ok(end.finishedAt !== undefined, 'a cancelled job has finished')
      })
      await t.test('after the cancel returned, at most the messages in flight then were delivered', () => {
        assert.ok(inFlightAtCancel <= CONNECTIONS, `in flight at cancel: ${inFlightAtCancel}`)
        assert.ok(deliveredAfter <= inFlightAtCancel,
          `${deliveredAfter} delivered after the cancel returned, ${inFlightAtCancel} were in flight then`)
      })
      await t.test('no recipient\'s message was started after the cancel returned', () => {
        assert.deepEqual(lateStarts, [], `started after the cancel: ${lateStarts.join(', ')}`)
      })
      await t.test('messages in flight at the cancel finish and count as sent, not cancelled', () => {
        assert.equal(end.sent, deliveredFor(h.smtp, id), `GET /jobs/:id says sent ${end.sent}; the server got ${deliveredFor(h.smtp, id)}`)
      })
      await t.test('listed under ?state=cancelled; a retry → 409', async () => {
        const listed = await list(h, '?state=cancelled')
        assert.deepEqual(listed.jobs.map((j) => j.id), [id])
        const retry = await post(h, `/jobs/${id}/retry`)
        assert.equal(retry.status, 409, retry.text)
      })
      await t.test('a second cancel → 409', async () => {
        const again = await post(h, `/jobs/${id}/cancel`)
        assert.equal(again.status, 409, again.text)
        assert.equal(again.json.error.code, 'RT_ERR_CONFLICT')
      })
    })
  })
}
