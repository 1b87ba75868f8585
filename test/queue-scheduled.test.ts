// Scheduled jobs (`notBefore`) on both stores, at the JobQueue level: not run before their time
// (shown by a job added after, without one, ending first), run after it, cancelled before they
// start, kept across a restart. The HTTP side (the body field, 400s, retry): receiver-scheduled.test.ts.
import assert from 'node:assert/strict'
import { contract, ISO_RE, isDone, itemHandler, start, untilView, WAIT_MS } from './helpers/queue-contract.ts'

/** How far ahead the jobs are scheduled: long enough to run an unscheduled job first on a loaded box. */
const AHEAD_MS = 2_500

contract('scheduled jobs', (it) => {
  it('a scheduled job waits for its time: a job added after it without one ends first; then it runs', async (b, t) => {
    const q = await b.open()
    const { handler, calls } = itemHandler()
    start(q, { items: handler })
    const notBefore = Date.now() + AHEAD_MS
    const later = await q.add({ type: 'items', payload: {}, items: 3, notBefore })
    const scheduled = await q.get(later.id)
    const listed = await q.list({ state: 'scheduled' })
    const stats = await q.stats()
    const now = await q.add({ type: 'items', payload: {}, items: 2 })
    await untilView(q, now.id, 'the job without a schedule done', isDone)
    const meanwhile = await q.get(later.id)
    const callsMeanwhile = calls.filter((c) => c.id === later.id).length
    const done = await untilView(q, later.id, 'the scheduled job done', isDone, AHEAD_MS + WAIT_MS)

    await t.test('get() shows scheduled, with notBefore (ISO), nothing started', () => {
      assert.equal(scheduled?.state, 'scheduled')
      assert.equal(scheduled?.notBefore, new Date(notBefore).toISOString())
      assert.match(scheduled?.notBefore ?? '', ISO_RE)
      assert.equal(scheduled?.startedAt, undefined)
      assert.equal(scheduled?.pending, 3)
    })
    await t.test('list({ state: scheduled }) lists it; stats() counts it as scheduled, its items as pending', () => {
      assert.deepEqual(listed.jobs.map((j) => j.id), [later.id])
      assert.equal(stats.jobs.scheduled, 1)
      assert.equal(stats.jobs.queued, 0)
      assert.equal(stats.items.pending, 3)
    })
    await t.test('the job added after it ran first; the scheduled one was untouched then', () => {
      assert.equal(meanwhile?.state, 'scheduled')
      assert.equal(meanwhile?.sent, 0)
      assert.equal(callsMeanwhile, 0, 'no item of it was started')
    })
    await t.test('it ran after its time, every item once, and no longer shows notBefore', () => {
      const mine = calls.filter((c) => c.id === later.id)
      assert.deepEqual(mine.map((c) => c.index).sort(), [0, 1, 2])
      for (const c of mine) assert.ok(c.at >= notBefore, `item ${c.index} ran ${notBefore - c.at} ms early`)
      assert.equal(done.notBefore, undefined)
      assert.equal(done.sent, 3)
    })
  })

  it('cancel before it starts: cancelled at once, and never run (a job scheduled after it has run)', async (b) => {
    const q = await b.open()
    const { handler, calls } = itemHandler()
    start(q, { items: handler })
    const first = await q.add({ type: 'items', payload: {}, items: 2, notBefore: Date.now() + AHEAD_MS / 2 })
    const witness = await q.add({ type: 'items', payload: {}, items: 1, notBefore: Date.now() + AHEAD_MS })
    const result = await q.cancel(first.id)
    assert.deepEqual(result, { items: 2, state: 'cancelled', changed: true })
    assert.equal((await q.get(first.id))?.state, 'cancelled')
    assert.equal((await q.get(first.id))?.notBefore, undefined)
    const again = await q.cancel(first.id)
    assert.equal(again?.changed, false)
    await untilView(q, witness.id, 'the job scheduled after it done', isDone, AHEAD_MS + WAIT_MS)
    assert.deepEqual(calls.filter((c) => c.id === first.id), [], 'the cancelled job never ran')
    const view = await q.get(first.id)
    assert.equal(view?.state, 'cancelled')
    assert.equal(view?.startedAt, undefined)
    assert.equal(view?.cancelled, 2)
  })

  it('retry of a scheduled job changes nothing (nothing of it has failed)', async (b) => {
    const q = await b.open()
    const job = await q.add({ type: 'items', payload: {}, items: 2, notBefore: Date.now() + 60_000 })
    assert.deepEqual(await q.retry(job.id), { items: 0, state: 'scheduled', changed: false })
    assert.equal((await q.get(job.id))?.state, 'scheduled')
  })

  it('a restart keeps the schedule: closed, reopened over the same data, it runs at its time, not before', async (b) => {
    const first = await b.open()
    const notBefore = Date.now() + AHEAD_MS
    const job = await first.add({ type: 'items', payload: {}, items: 3, notBefore })
    await first.stop(0)
    await first.close()
    const q = await b.open()
    const reopened = await q.get(job.id)
    assert.equal(reopened?.state, 'scheduled')
    assert.equal(reopened?.notBefore, new Date(notBefore).toISOString())
    const { handler, calls } = itemHandler()
    start(q, { items: handler })
    const witness = await q.add({ type: 'items', payload: {}, items: 1 })
    await untilView(q, witness.id, 'a job without a schedule done', isDone)
    assert.equal((await q.get(job.id))?.state, 'scheduled', 'still waiting once the job added after it is done')
    await untilView(q, job.id, 'the scheduled job done after the restart', isDone, AHEAD_MS + WAIT_MS)
    const mine = calls.filter((c) => c.id === job.id)
    assert.equal(mine.length, 3)
    for (const c of mine) assert.ok(c.at >= notBefore, `item ${c.index} ran ${notBefore - c.at} ms early`)
  })

  it('a scheduled job keeps its dedup key: a repeat is a duplicate and keeps the first schedule', async (b) => {
    const q = await b.open()
    const notBefore = Date.now() + 60_000
    const a = await q.add({ type: 'items', payload: {}, items: 1, dedupKey: 'sched-dedup', notBefore })
    const again = await q.add({ type: 'items', payload: {}, items: 1, dedupKey: 'sched-dedup' })
    assert.deepEqual(again, { id: a.id, duplicate: true })
    const view = await q.get(a.id)
    assert.equal(view?.state, 'scheduled')
    assert.equal(view?.notBefore, new Date(notBefore).toISOString())
  })
})
