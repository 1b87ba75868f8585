// One contract for both job queues: StoreQueue (SQLite + rawtrigger's leased worker) and
// BullmqQueue (Redis: job records kept by Lua, work as BullMQ jobs of `chunkSize` items). The same
// tests run against each; where they disagree, the test stays red and names the behaviour.
// BullMQ against the real Redis at REDIS_URL (skipped without one, failed with REQUIRE_REDIS=1).
// This file: adding, deduplicating, running items, item retries and failures. Runs that throw,
// stats, and several instances: queue-contract-runs.test.ts. The harness: helpers/queue-contract.ts.
import assert from 'node:assert/strict'
import { JOB_ID_RE } from '../src/queue/types.ts'
import { CHUNK_SIZE, contract, counts, countsByIndex, ISO_RE, isDone, itemHandler, jobCounts, start, unique, unitHandler, untilView } from './helpers/queue-contract.ts'

contract('', (it) => {
  it('add() works right after the queue is made', async (b) => {
    const q = b.openNow()
    const added = await q.add({ type: 'items', payload: {}, items: 1 })
    assert.match(added.id, JOB_ID_RE)
    assert.equal((await q.get(added.id))?.state, 'queued')
  })

  it('add() stores a queued job and answers its id; get() shows it', async (b) => {
    const q = await b.open()
    const before = Date.now()
    const added = await q.add({ type: 'items', payload: { subject: 'hi' }, items: 3 })
    assert.equal(added.duplicate, false)
    assert.match(added.id, JOB_ID_RE)
    const view = await q.get(added.id)
    assert.ok(view !== undefined, 'get() finds the job just added')
    assert.match(view.createdAt, ISO_RE)
    assert.ok(Date.parse(view.createdAt) >= before - 1_000 && Date.parse(view.createdAt) <= Date.now() + 1_000, `createdAt ${view.createdAt} is now`)
    assert.deepEqual(view, {
      id: added.id, type: 'items', state: 'queued', total: 3, sent: 0, failed: 0, pending: 3, attempts: 0,
      createdAt: view.createdAt, errors: [],
    })
    const other = await q.add({ type: 'items', payload: {}, items: 0 })
    assert.notEqual(other.id, added.id)
    assert.equal(await q.get('no-such-job'), undefined)
  })

  it('a repeated dedupKey creates no second job and answers the first id; a path-safe key is the id', async (b) => {
    const q = await b.open()
    const key = unique('msg_2KWPBgLlAfxdpx2AI54pPJ85f4W')
    const first = await q.add({ type: 'items', payload: { n: 1 }, items: 3, dedupKey: key })
    assert.deepEqual(first, { id: key, duplicate: false })
    const again = await q.add({ type: 'items', payload: { n: 2 }, items: 5, dedupKey: key })
    assert.deepEqual(again, { id: key, duplicate: true })
    assert.equal((await q.get(key))?.total, 3, 'the first job is kept as it was')
    const stats = await q.stats()
    assert.deepEqual(jobCounts(stats), { queued: 1, running: 0, done: 0, failed: 0, cancelled: 0 })
    assert.deepEqual(stats.items, { done: 0, failed: 0, pending: 3 })
  })

  it('a repeat under the same dedupKey with a bigger body runs only the first job\'s items', async (b) => {
    const q = await b.open()
    const key = unique('resent')
    await q.add({ type: 'items', payload: { n: 1 }, items: 3, dedupKey: key })
    const again = await q.add({ type: 'items', payload: { n: 2 }, items: 3 * CHUNK_SIZE, dedupKey: key })
    assert.deepEqual(again, { id: key, duplicate: true })
    const items = itemHandler()
    start(q, { items: items.handler })
    const end = await untilView(q, key, 'the job done', isDone)
    // Work beyond the first job's items, had it been queued, comes before a job added now: when
    // that one is done, the queue has drained what was in it.
    const after = await q.add({ type: 'items', payload: {}, items: 1 })
    await untilView(q, after.id, 'the job added after it done', isDone)
    const view = await q.get(key)
    assert.deepEqual({ total: view?.total, sent: view?.sent, pending: view?.pending }, { total: 3, sent: 3, pending: 0 }, `at done: ${JSON.stringify(end)}`)
    assert.deepEqual(items.calls.filter((c) => c.id === key).map((c) => c.index).filter((i) => i >= 3), [], 'no item beyond the first job\'s 3')
    assert.deepEqual(countsByIndex(items.calls, key, 3), [1, 1, 1], 'each of the 3 items once')
  })

  it('a dedupKey that is not a path segment deduplicates too (the id is then random)', async (b) => {
    const q = await b.open()
    // Standard Webhooks ids are opaque strings: dots, colons, or longer than 64 characters happen.
    for (const key of [unique('evt.2024-05-01:42'), 'x'.repeat(65) + unique('')]) {
      const first = await q.add({ type: 'items', payload: {}, items: 2, dedupKey: key })
      assert.equal(first.duplicate, false)
      assert.notEqual(first.id, key)
      assert.match(first.id, JOB_ID_RE)
      const again = await q.add({ type: 'items', payload: {}, items: 2, dedupKey: key })
      assert.deepEqual(again, { id: first.id, duplicate: true }, `dedupKey ${JSON.stringify(key)}: the repeat must answer the first job's id`)
    }
    assert.equal((await q.stats()).jobs.queued, 2)
  })

  it('start() runs every item exactly once across chunks; progress shows in get() while it runs', async (b) => {
    const q = await b.open()
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    const items = itemHandler(async (call) => {
      if (call.index === 1) await gate // item 0 is done, the rest of its chunk waits
      return { state: 'done' }
    })
    const unit = unitHandler()
    start(q, { items: items.handler, unit: unit.handler })
    const big = await q.add({ type: 'items', payload: {}, items: 35 })
    const one = await q.add({ type: 'unit', payload: {}, items: 0 })
    const during = await untilView(q, big.id, 'progress while running', (v) => v.state === 'running' && v.sent >= 1)
    assert.ok(during.sent < 35 && during.pending > 0, `mid-run: ${JSON.stringify(during)}`)
    assert.match(during.startedAt ?? '', ISO_RE)
    assert.equal(during.finishedAt, undefined)
    release()
    const end = await untilView(q, big.id, 'the 35-item job done', isDone)
    assert.deepEqual(countsByIndex(items.done, big.id, 35), Array.from({ length: 35 }, () => 1), 'each item done once')
    assert.equal(items.calls.length, 35, 'no item started twice')
    assert.deepEqual({ sent: end.sent, failed: end.failed, pending: end.pending, errors: end.errors }, { sent: 35, failed: 0, pending: 0, errors: [] })
    assert.match(end.finishedAt ?? '', ISO_RE)
    assert.ok(Date.parse(end.startedAt ?? '') <= Date.parse(end.finishedAt ?? ''))
    const unitView = await untilView(q, one.id, 'the one-unit job done', isDone)
    assert.deepEqual({ total: unitView.total, sent: unitView.sent, pending: unitView.pending }, { total: 0, sent: 0, pending: 0 })
    assert.equal(unit.runs.length, 1, 'a one-unit job runs once')
    const stats = await q.stats()
    assert.deepEqual(counts(stats), { jobs: { queued: 0, running: 0, done: 2, failed: 0, cancelled: 0 }, items: { done: 35, failed: 0, pending: 0 } })
  })

  it('an item asked to retry stays pending with its error until retryAt, then is done', async (b, t) => {
    const q = await b.open()
    const RETRY_MS = 600
    let retryAt = 0
    const items = itemHandler((call) => {
      if (call.index !== 1 || call.itemAttempts > 0) return { state: 'done' }
      retryAt = Date.now() + RETRY_MS
      return { state: 'retry', error: '451 4.7.1 greylisted, try again later', retryAt }
    })
    start(q, { items: items.handler })
    const { id } = await q.add({ type: 'items', payload: {}, items: 3 })
    const waiting = await untilView(q, id, 'the retry recorded', (v) => v.sent === 2 && v.errors.length === 1)
    await t.test('while it waits, the item is pending and its error is listed', () => {
      assert.equal(waiting.pending, 1)
      assert.deepEqual(waiting.errors, [{ index: 1, message: '451 4.7.1 greylisted, try again later', attempts: 1, state: 'pending' }])
    })
    const end = await untilView(q, id, 'the job done after the retry', isDone)
    await t.test('after retryAt the item is tried again and done; the error is gone', () => {
      assert.deepEqual({ sent: end.sent, failed: end.failed, pending: end.pending, errors: end.errors }, { sent: 3, failed: 0, pending: 0, errors: [] })
      const tries = items.calls.filter((c) => c.index === 1)
      assert.deepEqual(tries.map((c) => c.itemAttempts), [0, 1], 'DueItem.attempts counts the earlier tries')
      assert.ok((tries[1]?.at ?? 0) >= retryAt - 50, `second try ${(tries[1]?.at ?? 0) - retryAt} ms after retryAt`)
      assert.deepEqual(countsByIndex(items.done, id, 3), [1, 1, 1])
    })
    await t.test('the second run is run 2: ctx.attempts and get().attempts count runs', () => {
      assert.deepEqual(items.runs, [1, 2], 'ctx.attempts of each run ("higher after a crash or a retry", handler.ts)')
      assert.equal(end.attempts, 2, 'get().attempts')
    })
  })

  it('a job waiting for an item retry is queued again, not running', async (b) => {
    const q = await b.open()
    const RETRY_MS = 2_500
    const items = itemHandler((call) => call.index === 0 && call.itemAttempts === 0
      ? { state: 'retry', error: '421 4.3.2 busy', retryAt: Date.now() + RETRY_MS }
      : { state: 'done' })
    start(q, { items: items.handler })
    const { id } = await q.add({ type: 'items', payload: {}, items: 2 })
    await untilView(q, id, 'the first pass over', (v) => v.sent === 1 && v.errors.length === 1)
    // Nothing runs the job now: it waits in the queue for its retry, as after a graceful stop.
    const between = await untilView(q, id, 'the job queued between runs', (v) => v.state === 'queued', RETRY_MS - 1_000).catch((err: unknown) => err as Error)
    const stats = await q.stats()
    assert.ok(!(between instanceof Error), between instanceof Error ? between.message : '')
    assert.equal(stats.jobs.running, 0, `stats() between runs: ${JSON.stringify(stats.jobs)}`)
    await untilView(q, id, 'the job done after its retry', isDone)
  })

  it('a failed item is listed in errors with the reply; the job is done', async (b) => {
    const q = await b.open()
    const items = itemHandler((call) => call.index === 2 ? { state: 'failed', error: '550 5.1.1 no such user' } : { state: 'done' })
    start(q, { items: items.handler })
    const { id } = await q.add({ type: 'items', payload: {}, items: 3 })
    const end = await untilView(q, id, 'the job done', isDone)
    assert.deepEqual({ sent: end.sent, failed: end.failed, pending: end.pending }, { sent: 2, failed: 1, pending: 0 })
    assert.deepEqual(end.errors, [{ index: 2, message: '550 5.1.1 no such user', attempts: 1, state: 'failed' }])
    assert.equal(items.calls.length, 3, 'a failed item is not tried again')
    assert.deepEqual((await q.stats()).items, { done: 2, failed: 1, pending: 0 })
  })
})
