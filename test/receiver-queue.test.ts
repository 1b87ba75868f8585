// The SQLite store and the worker, directly and through the receiver: work after the response,
// concurrency, per-item progress and retries, run retries with backoff, durability before 202,
// group commit, dedup keys, leases, and store failures → 503 (RELIABILITY.md item 18).
import assert from 'node:assert/strict'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import Database from 'better-sqlite3'
import { StoreError } from '../src/errors.ts'
import { createLogger } from '../src/log.ts'
import type { JobHandler } from '../src/queue/handler.ts'
import { SqliteStore } from '../src/queue/sqlite-store.ts'
import type { AddResult, JobStore, NewJob } from '../src/queue/types.ts'
import { MAX_RUNS, RUN_RETRY_BASE_MS, Worker } from '../src/queue/worker.ts'
import testHandlers, { sleep } from './helpers/handlers.ts'
import {
  getJob, getStats, postJob, readRecords, request, startReceiver, tempDir, waitFor, waitForState,
} from './helpers/receiver.ts'

const silent = createLogger('silent')

/** A SqliteStore in a temp dir, closed in t.after(). */
function openStore (t: TestContext, dataDir = tempDir(t)): SqliteStore {
  const store = new SqliteStore(dataDir)
  t.after(() => store.close())
  return store
}

/** Delegates every JobStore method to `inner`, with `overrides` in front. */
function wrapStore (inner: JobStore, overrides: Partial<JobStore>): JobStore {
  return {
    add: (job) => inner.add(job),
    get: (id) => inner.get(id),
    stats: () => inner.stats(),
    claim: (types, leaseMs) => inner.claim(types, leaseMs),
    renew: (id, attempts, leaseMs) => inner.renew(id, attempts, leaseMs),
    dueItems: (id, after, limit) => inner.dueItems(id, after, limit),
    markItems: (id, marks) => inner.markItems(id, marks),
    finishRun: (id, attempts) => inner.finishRun(id, attempts),
    failRun: (id, attempts, message, retryAt) => inner.failRun(id, attempts, message, retryAt),
    release: (id, attempts) => inner.release(id, attempts),
    itemPending: (id, index) => inner.itemPending(id, index),
    list: (query) => inner.list(query),
    retry: (id) => inner.retry(id),
    cancel: (id) => inner.cancel(id),
    purge: (before) => inner.purge(before),
    keyedList: (name) => inner.keyedList(name),
    close: () => inner.close(),
    ...overrides,
  }
}

test('the job runs after the 202: the answer does not wait for the work', async (t) => {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  let started = 0
  const gate: JobHandler<Record<string, never>> = {
    parse: () => ({ payload: {}, items: 0 }),
    async run () {
      started++
      await released
    },
  }
  const r = await startReceiver(t, { handlers: { gate } })
  const res = await postJob(r.url, 'gate', {})
  assert.equal(res.status, 202, res.text)
  const id = res.json.id as string
  // The handler holds the job: the 202 above came while it was queued or running, never done.
  const view = await waitForState(r.url, id, 'running')
  assert.equal(view.finishedAt, undefined)
  assert.equal(started, 1)
  release()
  await waitForState(r.url, id, 'done')
})

test('concurrency N is never exceeded, and is used', async (t) => {
  let active = 0
  let maxActive = 0
  const track: JobHandler<Record<string, never>> = {
    parse: () => ({ payload: {}, items: 0 }),
    async run () {
      active++
      maxActive = Math.max(maxActive, active)
      await sleep(60)
      active--
    },
  }
  const r = await startReceiver(t, { handlers: { track }, concurrency: 3 })
  const posted = await Promise.all(Array.from({ length: 12 }, () => postJob(r.url, 'track', {})))
  assert.deepEqual(posted.map((p) => p.status), Array(12).fill(202))
  await waitFor('12 jobs done', async () => ((await getStats(r.url)).jobs.done === 12 ? true : undefined), 15_000)
  assert.ok(maxActive <= 3, `${maxActive} jobs ran at once with concurrency 3`)
  assert.ok(maxActive >= 2, `at most ${maxActive} job ran at once with concurrency 3 and 12 queued`)
})

test('concurrency 0 stores only: nothing runs until a worker starts on the same data dir', async (t) => {
  const file = join(tempDir(t), 'records')
  const idle = await startReceiver(t, { concurrency: 0 })
  const res = await postJob(idle.url, 'record', { n: 2, file })
  assert.equal(res.status, 202)
  assert.equal((await getJob(idle.url, res.json.id as string)).state, 'queued')
  await idle.close() // waits for every run it started: none may have written a record
  assert.deepEqual(readRecords(file), [])
  const r = await startReceiver(t, { dataDir: idle.dataDir })
  await waitForState(r.url, res.json.id as string, 'done')
  assert.equal(readRecords(file).length, 2)
})

test('per-item progress: sent grows item by item, pending = total - sent - failed, ends done', async (t) => {
  const r = await startReceiver(t)
  const file = join(tempDir(t), 'records')
  const res = await postJob(r.url, 'record', { n: 20, ms: 25, file })
  assert.equal(res.status, 202)
  const id = res.json.id as string
  const seen: number[] = []
  const deadline = Date.now() + 15_000
  for (;;) {
    const view = await getJob(r.url, id)
    assert.equal(view.total, 20)
    assert.equal(view.pending, view.total - view.sent - view.failed, JSON.stringify(view))
    assert.ok(seen.length === 0 || view.sent >= (seen[seen.length - 1] as number), `sent went back: ${seen.join(',')} then ${view.sent}`)
    seen.push(view.sent)
    if (view.state === 'done') break
    assert.ok(Date.now() < deadline, `job not done after 15 s: ${JSON.stringify(view)}`)
    await sleep(20)
  }
  assert.equal(seen[seen.length - 1], 20)
  assert.ok(seen.some((s) => s > 0 && s < 20), `no partial progress seen: ${seen.join(',')}`)
  assert.deepEqual(readRecords(file).map(([, i]) => i), Array.from({ length: 20 }, (_, i) => i))
})

test('per-item retry: an item asks for a retry at retryAt, shows pending with its error meanwhile, then is done', async (t) => {
  const r = await startReceiver(t)
  const file = join(tempDir(t), 'records')
  const retryMs = 400
  const res = await postJob(r.url, 'flaky', { n: 3, file, retryMs })
  assert.equal(res.status, 202)
  const id = res.json.id as string
  const waiting = await waitFor('the items to wait for their retry', async () => {
    const view = await getJob(r.url, id)
    return view.errors.length === 3 ? view : undefined
  }, 5_000, 10)
  assert.equal(waiting.sent, 0)
  assert.equal(waiting.pending, 3)
  assert.notEqual(waiting.state, 'done')
  assert.deepEqual(waiting.errors.map((e) => [e.index, e.state, e.attempts, e.message]),
    [0, 1, 2].map((i) => [i, 'pending', 1, `item ${i}: try again`]))

  const done = await waitForState(r.url, id, 'done')
  assert.equal(done.sent, 3)
  assert.deepEqual(done.errors, [], 'errors of items that succeeded later')
  // Each item ran twice, the second time not before its retryAt.
  const lines = readRecords(file).length
  assert.equal(lines, 6)
  const runs = new Map<number, number[]>()
  for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
    const [, index, attempt, at] = line.split(' ').map(Number) as [number, number, number, number]
    runs.set(index, [...(runs.get(index) ?? []), at])
    assert.ok(attempt === 1 || attempt === 2)
  }
  for (const [index, [first, second]] of runs) {
    assert.ok(second !== undefined && first !== undefined)
    assert.ok(second - first >= retryMs, `item ${index} retried after ${second - first} ms, before its retryAt (${retryMs} ms)`)
  }
})

test('a failing run is retried with exponential backoff, then the job fails for good', async (t) => {
  const r = await startReceiver(t)
  const file = join(tempDir(t), 'records')
  // Succeeds on its third run: two backoffs, 1 s then 2 s.
  const recovering = await postJob(r.url, 'fail', { failRuns: 2, file: file + '.recovering' })
  // Never succeeds: MAX_RUNS runs (1 + 2 + 4 + 8 s of backoff), then failed.
  const hopeless = await postJob(r.url, 'fail', { failRuns: 1_000, file })
  assert.equal(recovering.status, 202)
  assert.equal(hopeless.status, 202)

  const ok = await waitForState(r.url, recovering.json.id as string, 'done', 10_000)
  assert.equal(ok.attempts, 3)
  const view = await waitForState(r.url, hopeless.json.id as string, 'failed', 30_000)
  assert.equal(view.attempts, MAX_RUNS)
  assert.ok(view.errors.some((e) => e.message === `run ${MAX_RUNS} failed on purpose`), JSON.stringify(view.errors))
  assert.ok(view.finishedAt !== undefined)

  const runs = readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number) as [unknown, number, number])
  assert.deepEqual(runs.map(([, attempt]) => attempt), Array.from({ length: MAX_RUNS }, (_, i) => i + 1))
  for (let i = 1; i < runs.length; i++) {
    const gap = (runs[i] as [unknown, number, number])[2] - (runs[i - 1] as [unknown, number, number])[2]
    const backoff = RUN_RETRY_BASE_MS * 2 ** (i - 1)
    assert.ok(gap >= backoff, `run ${i + 1} came ${gap} ms after run ${i}, before its backoff of ${backoff} ms`)
  }
  // Failed for good: not run again. A job posted now runs once the worker has passed the failed one.
  const after = await postJob(r.url, 'record', { n: 1, file: `${file}-after` })
  await waitForState(r.url, after.json.id as string, 'done')
  assert.equal(readRecords(file).length, MAX_RUNS)
  const stats = await getStats(r.url)
  assert.equal(stats.jobs.failed, 1)
  assert.equal(stats.jobs.done, 2, 'the recovering job and the one posted after')
})

test('durable before 202: every answered id is already in the file, seen by a fresh SqliteStore', async (t) => {
  const file = join(tempDir(t), 'records')
  const r = await startReceiver(t, { concurrency: 0 })
  const fresh = openStore(t, r.dataDir)
  const count = 50
  const missing: string[] = []
  await Promise.all(Array.from({ length: count }, async () => {
    const res = await postJob(r.url, 'record', { n: 1, file })
    assert.equal(res.status, 202, res.text)
    // Checked the moment the answer is in: another connection to the same file must see the row.
    if (await fresh.get(res.json.id as string) === undefined) missing.push(res.json.id as string)
  }))
  assert.deepEqual(missing, [], 'answered 202 but not committed')
  assert.equal((await fresh.stats()).jobs.queued, count)
})

/** WAL frames written to `dataDir`'s database so far (header 32 bytes, each frame 24 + page size). */
function walFrames (dataDir: string): number {
  const size = statSync(join(dataDir, 'rawtrigger.db-wal')).size
  return size <= 32 ? 0 : (size - 32) / (24 + 4096)
}

test('group commit: adds of one event-loop turn share a transaction, each with its own id', async (t) => {
  const count = 100
  const job = (i: number): NewJob => ({ type: 'record', payload: { i }, items: 1 })

  const batched = tempDir(t)
  const together = openStore(t, batched)
  const before = walFrames(batched)
  const ids = await Promise.all(Array.from({ length: count }, (_, i) => together.add(job(i))))
  const framesTogether = walFrames(batched) - before
  assert.equal(new Set(ids.map((r) => r.id)).size, count, 'distinct ids')
  assert.ok(ids.every((r) => !r.duplicate))
  assert.equal((await together.stats()).jobs.queued, count)

  const serial = tempDir(t)
  const oneByOne = openStore(t, serial)
  const beforeSerial = walFrames(serial)
  for (let i = 0; i < count; i++) await oneByOne.add(job(i))
  const framesSerial = walFrames(serial) - beforeSerial

  // Each commit appends at least one WAL frame: one by one that is >= count frames, together a handful.
  t.diagnostic(`WAL frames for ${count} adds: ${framesTogether} in one turn, ${framesSerial} one by one`)
  assert.ok(framesSerial >= count, `one-by-one adds wrote ${framesSerial} frames for ${count} commits`)
  assert.ok(framesTogether * 5 < framesSerial, `adds of one turn wrote ${framesTogether} frames (one by one: ${framesSerial}): not grouped`)
})

test('a duplicate dedupKey returns the first job\'s id and creates nothing, in one batch and across batches', async (t) => {
  const store = openStore(t)
  const job: NewJob = { type: 'record', payload: { a: 1 }, items: 2, dedupKey: 'hook.1/with spaces' }
  const [a, b] = await Promise.all([store.add(job), store.add({ ...job, payload: { a: 2 } })]) as [AddResult, AddResult]
  assert.equal(b.id, a.id)
  assert.deepEqual([a.duplicate, b.duplicate], [false, true])
  const c = await store.add(job)
  assert.deepEqual(c, { id: a.id, duplicate: true })
  const other = await store.add({ ...job, dedupKey: 'hook-2' })
  assert.notEqual(other.id, a.id)
  assert.equal((await store.stats()).jobs.queued, 2)
  // The first payload is kept.
  const claimed = await store.claim(['record'], 10_000)
  assert.deepEqual(claimed?.payload, { a: 1 })
})

test('leases: a claimed job is not claimed twice; once its lease lapses another worker takes it over and the old owner loses it', async (t) => {
  const store = openStore(t)
  const { id } = await store.add({ type: 'record', payload: {}, items: 3 })
  const first = await store.claim(['record'], 200)
  assert.equal(first?.id, id)
  assert.equal(first?.attempts, 1)
  assert.equal(await store.claim(['record'], 200), undefined, 'claimed twice while the lease holds')
  assert.equal(await store.claim(['other'], 200), undefined, 'claimed for a type it is not')
  assert.equal(await store.renew(id, 1, 200), true)
  await sleep(350)
  const second = await store.claim(['record'], 10_000)
  assert.equal(second?.id, id)
  assert.equal(second?.attempts, 2)
  assert.equal(await store.renew(id, 1, 200), false, 'the old owner still renews a lease taken over')
  // Item outcomes are idempotent: a repeat after a takeover changes nothing.
  await store.markItem(id, 0, { state: 'done' })
  await store.markItem(id, 0, { state: 'done' })
  await store.markItem(id, 1, { state: 'failed', error: 'bad address' })
  assert.deepEqual((await store.dueItems(id, 0, 10)).map((d) => d.index), [2])
  const view = await store.get(id)
  assert.deepEqual([view?.sent, view?.failed, view?.pending, view?.state], [1, 1, 1, 'running'])
  // The old run cannot finish a job it lost.
  await store.finishRun(id, 1)
  assert.equal((await store.get(id))?.state, 'running')
  await store.markItem(id, 2, { state: 'done' })
  assert.equal(await store.finishRun(id, 2), 'done')
  const end = await store.get(id)
  assert.equal(end?.state, 'done')
  assert.deepEqual(end?.errors.map((e) => [e.index, e.state, e.message]), [[1, 'failed', 'bad address']])
})

test('Worker.stop: a handler that ignores the abort is released after the grace period, not left running', async (t) => {
  const dataDir = tempDir(t)
  const store = new SqliteStore(dataDir)
  t.after(() => store.close())
  const file = join(dataDir, 'records')
  const handlers = new Map<string, JobHandler<unknown>>([['stubborn', testHandlers.stubborn as JobHandler<unknown>]])
  const worker = new Worker({ store, handlers, concurrency: 1, log: silent, leaseMs: 10_000, pollMs: 50 })
  const { id } = await store.add({ type: 'stubborn', payload: { n: 50, ms: 40, file, retryMs: 0 }, items: 50 })
  worker.start()
  t.after(() => worker.stop(0))
  await waitFor('a few items done', () => (readRecords(file).length >= 3 ? true : undefined), 5_000)
  await worker.stop(200)
  const view = await store.get(id)
  assert.equal(view?.state, 'queued', `after stop: ${JSON.stringify(view)}`)
  assert.ok((view?.sent ?? 0) < 50)
  // As the receiver does after stop: close the store, which cuts the stubborn handler off.
  await store.close()
  await sleep(100)

  // A new worker on the same file resumes it from the pending items.
  const again = openStore(t, dataDir)
  const next = new Worker({ store: again, handlers, concurrency: 1, log: silent, pollMs: 50 })
  next.start()
  t.after(() => next.stop(0))
  await waitFor('the job done after resume', async () => ((await again.get(id))?.state === 'done' ? true : undefined), 15_000)
  const indexes = readRecords(file).map(([, i]) => i)
  assert.deepEqual([...new Set(indexes)].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i))
  // The item in flight at the cut may run twice (recorded, not yet marked).
  assert.ok(indexes.length - 50 <= 1, `duplicates: ${indexes.length - 50}`)
})

test('store errors → 503 RT_ERR_STORE, nothing half-written: a real SQLITE_BUSY lock held by another connection', async (t) => {
  const file = join(tempDir(t), 'records')
  const r = await startReceiver(t, { concurrency: 0 })
  const other = new Database(join(r.dataDir, 'rawtrigger.db'))
  t.after(() => { if (other.open) other.close() })
  other.exec('BEGIN IMMEDIATE') // holds the write lock: the receiver's insert waits its busy timeout, then fails
  const res = await postJob(r.url, 'record', { n: 1, file })
  assert.equal(res.status, 503, res.text)
  assert.equal(res.json.error.code, 'RT_ERR_STORE')
  assert.match(res.json.error.message, /SQLITE_BUSY/)
  // Readers still work under WAL, and nothing was stored.
  const stats = await getStats(r.url)
  assert.equal(stats.accepted, 0)
  other.exec('ROLLBACK')
  other.close()
  assert.deepEqual((await getStats(r.url)).jobs, { queued: 0, running: 0, done: 0, failed: 0 })
  const after = await postJob(r.url, 'record', { n: 1, file })
  assert.equal(after.status, 202, after.text)
})

test('store errors → 503 RT_ERR_STORE: a store whose add() rejects with StoreError (disk full)', async (t) => {
  // A mock, on purpose: a disk cannot be filled on demand in a test (and chmod does not stop root).
  const dataDir = tempDir(t)
  const inner = new SqliteStore(dataDir)
  let full = true
  const store = wrapStore(inner, {
    add: (job) => (full
      ? Promise.reject(new StoreError('SQLite insert failed (SQLITE_FULL)', { cause: Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }) }))
      : inner.add(job)),
  })
  const r = await startReceiver(t, { store, dataDir, concurrency: 0 })
  const file = join(dataDir, 'records')
  const res = await postJob(r.url, 'record', { n: 1, file })
  assert.equal(res.status, 503, res.text)
  assert.equal(res.json.error.code, 'RT_ERR_STORE')
  assert.equal((await getStats(r.url)).accepted, 0)
  full = false
  assert.equal((await postJob(r.url, 'record', { n: 1, file })).status, 202)
  assert.equal((await getStats(r.url)).accepted, 1)
})

test('a store closed under the receiver answers 503, not 500 and not a crash', async (t) => {
  const dataDir = tempDir(t)
  const inner = new SqliteStore(dataDir)
  const r = await startReceiver(t, { store: inner, dataDir, concurrency: 0 })
  await inner.close()
  const res = await postJob(r.url, 'record', { n: 1, file: join(dataDir, 'records') })
  assert.equal(res.status, 503, res.text)
  assert.equal(res.json.error.code, 'RT_ERR_STORE')
  assert.equal((await request(`${r.url}/healthz`)).status, 200)
})

test('the queue boundary: the receiver needs a queue or a store; the package\'s createReceiver opens SQLite under dataDir, and refuses dataDir beside a store', async (t) => {
  const { createReceiver: onQueue } = await import('../src/server/receiver.ts')
  const { createReceiver } = await import('../src/receiver-default.ts')
  await assert.rejects(onQueue({ port: 0, logLevel: 'silent' }), (err: Error & { code?: string }) => err.code === 'RT_ERR_CONFIG' && /needs a queue or a store/.test(err.message))
  const store = openStore(t)
  await assert.rejects(createReceiver({ port: 0, logLevel: 'silent', store, dataDir: tempDir(t) }), (err: Error & { code?: string }) => err.code === 'RT_ERR_CONFIG' && /not both/.test(err.message))
  const dataDir = tempDir(t)
  const receiver = await createReceiver({ port: 0, logLevel: 'silent', dataDir, concurrency: 0 })
  t.after(() => receiver.close())
  assert.ok(statSync(join(dataDir, 'rawtrigger.db')).isFile(), 'the default store is SQLite under dataDir')
})
