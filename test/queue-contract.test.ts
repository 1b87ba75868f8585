// One contract for both job queues: StoreQueue (SQLite + rawtrigger's leased worker) and
// BullmqQueue (Redis: job records kept by Lua, work as BullMQ jobs of `chunkSize` items). The same
// tests run against each; where they disagree, the test stays red and names the behaviour.
// BullMQ against the real Redis at REDIS_URL (skipped without one, failed with REQUIRE_REDIS=1).
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext, type TestOptions } from 'node:test'
import { createLogger } from '../src/log.ts'
import { BullmqQueue } from '../src/queue/bullmq-queue.ts'
import type { JobContext, JobHandler } from '../src/queue/handler.ts'
import { SqliteStore } from '../src/queue/sqlite-store.ts'
import { StoreQueue } from '../src/queue/store-queue.ts'
import { JOB_ID_RE, type ItemOutcome, type JobQueue, type JobView, type StoreStats } from '../src/queue/types.ts'
import { useRedis } from './helpers/redis.ts'

/** Items per BullMQ job in these tests: small, so a 35-item job spans four chunks. */
const CHUNK_SIZE = 10
const LEASE_MS = 2_000
const POLL_MS = 20
/** Guard on every wait: a hang fails the test instead of stalling the run. */
const WAIT_MS = 10_000
/** A run that throws is retried 4 times, 1, 2, 4 and 8 s apart (both queues): about 15 s. */
const FAILING_RUNS_MS = 25_000
const log = createLogger('silent')

/** Where a queue's data lives; `open()` makes another instance over the same data (another "process"). */
interface Backend {
  /** A new instance, ready for use. Stopped and closed when the test ends. */
  open (): Promise<JobQueue>
  /** A new instance, used at once, as `serve` or an embedder would. */
  openNow (): JobQueue
}
type MakeBackend = (t: TestContext) => Promise<Backend | undefined>

async function closeQuietly (q: JobQueue): Promise<void> {
  await q.stop(0).catch(() => {})
  await q.close().catch(() => {})
}

const sqlite: MakeBackend = async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rttest-contract-'))
  const opened: JobQueue[] = []
  t.after(async () => {
    for (const q of opened.reverse()) await closeQuietly(q)
    rmSync(dir, { recursive: true, force: true })
  })
  const openNow = (): JobQueue => {
    const q = new StoreQueue(new SqliteStore(dir))
    opened.push(q)
    return q
  }
  return { openNow, open: async () => openNow() }
}

const bullmq: MakeBackend = async (t) => {
  const redis = await useRedis(t)
  if (redis === undefined) return undefined
  const openNow = (): JobQueue => {
    const q = new BullmqQueue({ url: redis.url, prefix: redis.prefix, chunkSize: CHUNK_SIZE })
    redis.defer(() => closeQuietly(q))
    return q
  }
  return {
    openNow,
    async open () {
      const q = openNow()
      // A fresh BullmqQueue refuses commands until its connection is up (enableOfflineQueue: false);
      // the test 'add() works right after the queue is made' shows it. Wait for it here.
      await until('the Redis connection', async () => (await q.stats().then(() => true, () => false)) || undefined)
      return q
    },
  }
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `check` until it returns something other than undefined; fails after `timeoutMs`. */
async function until<T> (what: string, check: () => Promise<T | undefined>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(15)
  }
}

/** Waits until `get(id)` satisfies `ok`; the last view is in the error when it never does. */
async function untilView (q: JobQueue, id: string, what: string, ok: (v: JobView) => boolean, timeoutMs = WAIT_MS): Promise<JobView> {
  let last: JobView | undefined
  try {
    return await until(what, async () => {
      last = await q.get(id)
      return last !== undefined && ok(last) ? last : undefined
    }, timeoutMs)
  } catch (err) {
    throw new Error(`${(err as Error).message}; last view: ${JSON.stringify(last)}`)
  }
}

const isDone = (v: JobView): boolean => v.state === 'done'

/** One item the handler went through. */
interface ItemCall { id: string, index: number, itemAttempts: number, run: number, at: number }

/** What a test handler decides for an item; undefined leaves it unmarked and ends the run. */
type Decide = (call: ItemCall, ctx: JobContext<unknown>) => ItemOutcome | undefined | Promise<ItemOutcome | undefined>

/** A handler over items that records every item it starts (`calls`) and every item it marks done (`done`). */
function itemHandler (decide: Decide = () => ({ state: 'done' })): { handler: JobHandler<unknown>, calls: ItemCall[], done: ItemCall[], runs: number[], active: () => number } {
  const calls: ItemCall[] = []
  const done: ItemCall[] = []
  const runs: number[] = []
  let active = 0
  const handler: JobHandler<unknown> = {
    parse: (body) => ({ payload: body, items: 0 }),
    async run (ctx) {
      active++
      runs.push(ctx.attempts)
      try {
        for await (const item of ctx.dueItems()) {
          if (ctx.signal.aborted) return
          const call: ItemCall = { id: ctx.id, index: item.index, itemAttempts: item.attempts, run: ctx.attempts, at: Date.now() }
          calls.push(call)
          const outcome = await decide(call, ctx)
          if (outcome === undefined) return
          await ctx.markItem(item.index, outcome)
          if (outcome.state === 'done') done.push(call)
        }
      } finally {
        active--
      }
    },
  }
  return { handler, calls, done, runs, active: () => active }
}

/** A job of one unit (items: 0) that records each run and throws on the runs `fails` says. */
function unitHandler (fails: (run: number) => boolean = () => false): { handler: JobHandler<unknown>, runs: Array<{ id: string, run: number, at: number }> } {
  const runs: Array<{ id: string, run: number, at: number }> = []
  return {
    runs,
    handler: {
      parse: (body) => ({ payload: body, items: 0 }),
      async run (ctx) {
        runs.push({ id: ctx.id, run: ctx.attempts, at: Date.now() })
        if (fails(ctx.attempts)) throw new Error(`run ${ctx.attempts} failed on purpose`)
      },
    },
  }
}

function start (q: JobQueue, handlers: Record<string, JobHandler<unknown>>, concurrency = 2): void {
  q.start({ handlers: new Map(Object.entries(handlers)), concurrency, log, leaseMs: LEASE_MS, pollMs: POLL_MS })
}

/** How often each index 0..n-1 appears in `calls` of job `id`. */
function countsByIndex (calls: readonly ItemCall[], id: string, n: number): number[] {
  const counts = Array.from({ length: n }, () => 0)
  for (const c of calls) if (c.id === id && c.index >= 0 && c.index < n) counts[c.index] = (counts[c.index] as number) + 1
  return counts
}

function unique (label: string): string {
  return `${label}-${Math.random().toString(36).slice(2, 10)}`
}

const ISO_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

/** The job counts of `stats()`, with `cancelled` as 0 when the store does not count it. */
function jobCounts (stats: StoreStats): Record<'queued' | 'running' | 'done' | 'failed' | 'cancelled', number> {
  const jobs = stats.jobs as Partial<Record<string, number>>
  return { queued: jobs.queued ?? NaN, running: jobs.running ?? NaN, done: jobs.done ?? NaN, failed: jobs.failed ?? NaN, cancelled: jobs.cancelled ?? 0 }
}
const counts = (stats: StoreStats): { jobs: ReturnType<typeof jobCounts>, items: StoreStats['items'] } => ({ jobs: jobCounts(stats), items: stats.items })

function contract (name: string, makeBackend: MakeBackend): void {
  /** A test given this implementation's backend; skipped (or failed with REQUIRE_REDIS=1) without Redis. */
  const it = (title: string, fn: (b: Backend, t: TestContext) => Promise<void>, options: TestOptions = {}): void => {
    test(title, options, async (t) => {
      const b = await makeBackend(t)
      if (b !== undefined) await fn(b, t)
    })
  }

  describe(`JobQueue contract: ${name}`, () => {
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
      await sleep(300) // work beyond the first job's items, if any, shows up now
      const view = await q.get(key)
      assert.deepEqual({ total: view?.total, sent: view?.sent, pending: view?.pending }, { total: 3, sent: 3, pending: 0 }, `at done: ${JSON.stringify(end)}`)
      assert.deepEqual(items.calls.map((c) => c.index).filter((i) => i >= 3), [], 'no item beyond the first job\'s 3')
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

    it('a run that throws is retried with exponential backoff; after 5 runs the job is failed (~15 s)', async (b, t) => {
      const q = await b.open()
      const always = unitHandler(() => true)
      const once = unitHandler((run) => run === 1)
      start(q, { boom: always.handler, once: once.handler })
      const failing = await q.add({ type: 'boom', payload: {}, items: 2 })
      const recovering = await q.add({ type: 'once', payload: {}, items: 0 })
      const recovered = await untilView(q, recovering.id, 'the job that failed once done', isDone)
      const failed = await untilView(q, failing.id, 'the failing job failed', (v) => v.state === 'failed', FAILING_RUNS_MS)
      await sleep(300) // a sixth run, if any, would start now
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
      await sleep(500)
      assert.equal(items.calls.length, 0)
      assert.equal((await q.get(id))?.state, 'queued')
    })

    it('a job of a type this instance has no handler for waits for an instance that has one', async (b) => {
      const q1 = await b.open()
      start(q1, { items: itemHandler().handler })
      const { id } = await q1.add({ type: 'other', payload: {}, items: 2 })
      q1.notify()
      await sleep(1_000)
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
          const timer = setTimeout(resolve, ITEM_MS)
          ctx.signal.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
        })
        return ctx.signal.aborted ? undefined : { state: 'done' }
      }
      const first = itemHandler(slow())
      start(q1, { items: first.handler })
      const { id } = await q1.add({ type: 'items', payload: {}, items: 20 })
      await untilView(q1, id, 'a few items done', (v) => v.sent >= 3)
      const stopped = await Promise.race([q1.stop(2_000).then(() => true), sleep(WAIT_MS).then(() => false)])
      const callsAtStop = first.calls.length
      await sleep(300)
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
      })
    })

    it('a job added while one instance is stopped is run by a second instance', async (b) => {
      const q1 = await b.open()
      const first = itemHandler()
      start(q1, { items: first.handler })
      await q1.stop(1_000)
      const { id } = await q1.add({ type: 'items', payload: {}, items: 12 })
      await sleep(300)
      assert.equal((await q1.get(id))?.state, 'queued', 'a stopped instance runs nothing')
      const q2 = await b.open()
      const second = itemHandler()
      start(q2, { items: second.handler })
      const end = await untilView(q2, id, 'the job done by the second instance', isDone)
      assert.equal(end.sent, 12)
      assert.equal(first.calls.length, 0)
      assert.deepEqual(countsByIndex(second.done, id, 12), Array.from({ length: 12 }, () => 1))
    })
  })
}

contract('StoreQueue (SQLite)', sqlite)
contract('BullmqQueue (Redis)', bullmq)
