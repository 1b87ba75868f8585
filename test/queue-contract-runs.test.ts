// The JobQueue contract (see queue-contract.test.ts), continued: runs that throw and their
// backoff, stats(), concurrency 0, jobs of a type without a handler, stop(grace) and a second
// instance taking over. The harness: helpers/queue-contract.ts.
import assert from 'node:assert/strict'
import type { StoreStats } from '../src/queue/types.ts'
import { contract, counts, countsByIndex, type Decide, FAILING_RUNS_MS, ISO_RE, isDone, itemHandler, jobCounts, start, unitHandler, untilView, WAIT_MS } from './helpers/queue-contract.ts'
import { sleep } from './helpers/wait.ts'

contract('runs and instances', (it) => {
  it('a run that throws is retried with exponential backoff; after 5 runs the job is failed (~15 s)', async (b, t) => {
    const q = await b.open()
    const always = unitHandler(() => true)
    const once = unitHandler((run) => run === 1)
    start(q, { boom: always.handler, once: once.handler })
    const failing = await q.add({ type: 'boom', payload: {}, items: 2 })
    const recovering = await q.add({ type: 'once', payload: {}, items: 0 })
    const recovered = await untilView(q, recovering.id, 'the job that failed once done', isDone)
    const failed = await untilView(q, failing.id, 'the failing job failed', (v) => v.state === 'failed', FAILING_RUNS_MS)
    // A failed job is final: a sixth run would have to be a retry, which the state rules out.
    const stats = await q.stats()

    await t.test('a run that throws once is retried and the job ends done', () => {
      assert.deepEqual(once.runs.map((r) => r.run), [1, 2])
      assert.equal(recovered.attempts, 2, 'get().attempts counts its runs')
    })
    await t.test('5 runs, 1, 2, 4 and 8 s apart at least', () => {
      assert.deepEqual(always.runs.map((r) => r.run), [1, 2, 3, 4, 5])
      const at = always.runs.map((r) => r.at)
      const gaps = at.slice(1).map((x, i) => x - (at[i] as number))
      gaps.forEach((gap, i) => assert.ok(gap >= 0.9 * 1_000 * 2 ** i, `gap ${i + 1}: ${gap} ms, want ≥ ${1_000 * 2 ** i} ms (${gaps.join(', ')})`))
    })
    await t.test('get() shows failed, with the last error and the number of runs', () => {
      assert.equal(failed.state, 'failed')
      assert.match(failed.finishedAt ?? '', ISO_RE)
      assert.deepEqual(failed.errors, [{ message: 'run 5 failed on purpose', attempts: 5 }])
      assert.equal(failed.attempts, 5)
    })
    await t.test('stats() counts the failed job; its items are not pending any more', () => {
      assert.deepEqual(jobCounts(stats), { queued: 0, running: 0, done: 1, failed: 1, cancelled: 0 })
      assert.deepEqual(stats.items, { done: 0, failed: 0, pending: 0 })
    })
  }, { timeout: FAILING_RUNS_MS + WAIT_MS })

  it('stats() counts jobs by state and items by outcome', async (b) => {
    const q = await b.open()
    assert.deepEqual(counts(await q.stats()), { jobs: { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 }, items: { done: 0, failed: 0, pending: 0 } })
    const items = itemHandler((call, ctx) => (ctx.payload as { failFirst?: boolean }).failFirst === true && call.index === 0
      ? { state: 'failed', error: '550 no' }
      : { state: 'done' })
    start(q, { items: items.handler })
    const a = await q.add({ type: 'items', payload: {}, items: 2 })
    const withFailure = await q.add({ type: 'items', payload: { failFirst: true }, items: 2 })
    await untilView(q, a.id, 'job A done', isDone)
    await untilView(q, withFailure.id, 'job B done', isDone)
    await q.stop(1_000)
    await q.add({ type: 'items', payload: {}, items: 4 })
    const stats: StoreStats = await q.stats()
    assert.deepEqual(counts(stats), { jobs: { queued: 1, running: 0, done: 2, failed: 0, cancelled: 0 }, items: { done: 3, failed: 1, pending: 4 } })
  })

  it('concurrency 0 stores jobs and runs none', async (b) => {
    const q = await b.open()
    const items = itemHandler()
    start(q, { items: items.handler }, 0)
    const { id } = await q.add({ type: 'items', payload: {}, items: 2 })
    q.notify()
    assert.equal((await q.get(id))?.state, 'queued')
    // Another instance with room takes the job and ends it; the one at concurrency 0 was running
    // all along and never started an item.
    const q2 = await b.open()
    const other = itemHandler()
    start(q2, { items: other.handler }, 1)
    await untilView(q2, id, 'the job done by an instance with room', isDone)
    assert.equal(items.calls.length, 0, 'the instance at concurrency 0 ran no item')
    assert.deepEqual(countsByIndex(other.done, id, 2), [1, 1])
  })

  it('a job of a type this instance has no handler for waits for an instance that has one', async (b) => {
    const q1 = await b.open()
    const mine = itemHandler()
    start(q1, { items: mine.handler })
    const { id } = await q1.add({ type: 'other', payload: {}, items: 2 })
    // A job this instance can run, added after: once it is done, the instance has looked past the other.
    const later = await q1.add({ type: 'items', payload: {}, items: 1 })
    await untilView(q1, later.id, 'the later job of a handled type done', isDone)
    const view = await q1.get(id)
    assert.deepEqual({ state: view?.state, attempts: view?.attempts, errors: view?.errors }, { state: 'queued', attempts: 0, errors: [] },
      'an instance without the handler must leave the job alone (several `serve` with different --handlers share one store)')
    await q1.stop(1_000)
    const q2 = await b.open()
    const other = itemHandler()
    start(q2, { other: other.handler })
    await untilView(q2, id, 'the job done by the instance that has the handler', isDone)
    assert.deepEqual(countsByIndex(other.done, id, 2), [1, 1])
  })

  it('stop(grace) hands running work back; nothing runs after it; another instance finishes the job', async (b, t) => {
    const q1 = await b.open()
    const ITEM_MS = 40
    const slow = (): Decide => async (_call, ctx) => {
      await new Promise<void>((resolve) => {
        const onAbort = (): void => { clearTimeout(timer); resolve() }
        // The job's signal outlives each item: an item that ends takes its listener off it.
        const timer = setTimeout(() => { ctx.signal.removeEventListener('abort', onAbort); resolve() }, ITEM_MS)
        ctx.signal.addEventListener('abort', onAbort, { once: true })
      })
      return ctx.signal.aborted ? undefined : { state: 'done' }
    }
    const first = itemHandler(slow())
    start(q1, { items: first.handler })
    const { id } = await q1.add({ type: 'items', payload: {}, items: 20 })
    await untilView(q1, id, 'a few items done', (v) => v.sent >= 3)
    const stopped = await Promise.race([q1.stop(2_000).then(() => true), sleep(WAIT_MS).then(() => false)])
    const callsAtStop = first.calls.length
    const after = await q1.get(id)
    const stats = await q1.stats()

    await t.test('stop() resolves, no handler is left running and none starts afterwards', () => {
      assert.ok(stopped, `stop(2000) did not resolve within ${WAIT_MS} ms`)
      assert.equal(first.active(), 0)
      assert.equal(first.calls.length, callsAtStop)
    })
    await t.test('the job is queued again, not running', () => {
      assert.equal(after?.state, 'queued', `get() after stop: ${JSON.stringify(after)}`)
      assert.equal(stats.jobs.running, 0, `stats() after stop: ${JSON.stringify(stats.jobs)}`)
    })
    const q2 = await b.open()
    const second = itemHandler(slow())
    start(q2, { items: second.handler })
    const end = await untilView(q2, id, 'the job done by the second instance', isDone)
    await t.test('a second instance finishes it: every item done exactly once overall', () => {
      assert.equal(end.sent, 20)
      assert.ok(second.done.length > 0, 'the second instance did part of the job')
      assert.deepEqual(countsByIndex([...first.done, ...second.done], id, 20), Array.from({ length: 20 }, () => 1))
      assert.equal(first.calls.length, callsAtStop, 'the stopped instance started no item while the second ran the job')
    })
  })

  it('a job added while one instance is stopped is run by a second instance', async (b) => {
    const q1 = await b.open()
    const first = itemHandler()
    start(q1, { items: first.handler })
    await q1.stop(1_000)
    const { id } = await q1.add({ type: 'items', payload: {}, items: 12 })
    assert.equal((await q1.get(id))?.state, 'queued')
    const q2 = await b.open()
    const second = itemHandler()
    start(q2, { items: second.handler })
    const end = await untilView(q2, id, 'the job done by the second instance', isDone)
    assert.equal(end.sent, 12)
    assert.equal(first.calls.length, 0, 'a stopped instance runs nothing, also while another runs the job')
    assert.deepEqual(countsByIndex(second.done, id, 12), Array.from({ length: 12 }, () => 1))
  })
})
