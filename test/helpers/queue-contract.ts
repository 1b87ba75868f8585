// The harness of the JobQueue contract (test/queue-contract*.test.ts): the two backends (StoreQueue
// over SQLite in a temp dir, BullmqQueue on the real Redis with a key prefix per test), handlers
// that record what they were given, and waits on a job's view.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext, type TestOptions } from 'node:test'
import { createLogger } from '../../src/log.ts'
import type { JobContext, JobHandler } from '../../src/queue/handler.ts'
import { SqliteStore } from '../../src/queue/sqlite-store.ts'
import { StoreQueue } from '../../src/queue/store-queue.ts'
import type { ItemOutcome, JobQueue, JobView, StoreStats } from '../../src/queue/types.ts'
import { newBullmq, bullmqConnected, useRedis } from './redis.ts'
import { waitFor } from './wait.ts'

/** Items per BullMQ job in these tests: small, so a 35-item job spans four chunks. */
export const CHUNK_SIZE = 10
const LEASE_MS = 2_000
const POLL_MS = 20
/** Guard on every wait: a hang fails the test instead of stalling the run. */
export const WAIT_MS = 10_000
/** A run that throws is retried 4 times, 1, 2, 4 and 8 s apart (both queues): about 15 s. */
export const FAILING_RUNS_MS = 25_000
const log = createLogger('silent')

/** Where a queue's data lives; `open()` makes another instance over the same data (another "process"). */
export interface Backend {
  /** A new instance, ready for use. Stopped and closed when the test ends. */
  open (): Promise<JobQueue>
  /** A new instance, used at once, as `serve` or an embedder would. */
  openNow (): JobQueue
}
type MakeBackend = (t: TestContext) => Promise<Backend | undefined>

const sqlite: MakeBackend = async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rttest-contract-'))
  const opened: JobQueue[] = []
  t.after(async () => {
    for (const q of opened.reverse()) {
      await q.stop(0).catch(() => {})
      await q.close().catch(() => {})
    }
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
  const openNow = (): JobQueue => newBullmq(redis, { chunkSize: CHUNK_SIZE })
  return {
    openNow,
    async open () {
      const q = newBullmq(redis, { chunkSize: CHUNK_SIZE })
      await bullmqConnected(q)
      return q
    },
  }
}

/** A test given one backend; skipped (or failed with REQUIRE_REDIS=1) without Redis. */
export type ContractTest = (title: string, fn: (b: Backend, t: TestContext) => Promise<void>, options?: TestOptions) => void

/** Runs `tests` once per backend, each in a `JobQueue contract: <backend>` describe block. */
export function contract (topic: string, tests: (it: ContractTest) => void): void {
  for (const [name, makeBackend] of [['StoreQueue (SQLite)', sqlite], ['BullmqQueue (Redis)', bullmq]] as const) {
    const it: ContractTest = (title, fn, options = {}) => {
      test(title, options, async (t) => {
        const b = await makeBackend(t)
        if (b !== undefined) await fn(b, t)
      })
    }
    describe(`JobQueue contract: ${name}${topic === '' ? '' : `, ${topic}`}`, () => tests(it))
  }
}

/** Waits until `get(id)` satisfies `ok`; the last view is in the error when it never does. */
export async function untilView (q: JobQueue, id: string, what: string, ok: (v: JobView) => boolean, timeoutMs = WAIT_MS): Promise<JobView> {
  let last: JobView | undefined
  try {
    return await waitFor(what, async () => {
      last = await q.get(id)
      return last !== undefined && ok(last) ? last : undefined
    }, timeoutMs, 15)
  } catch (err) {
    throw new Error(`${(err as Error).message}; last view: ${JSON.stringify(last)}`)
  }
}

export const isDone = (v: JobView): boolean => v.state === 'done'
/** One item the handler went through. */
export interface ItemCall { id: string, index: number, itemAttempts: number, run: number, at: number }

/** What a test handler decides for an item; undefined leaves it unmarked and ends the run. */
export type Decide = (call: ItemCall, ctx: JobContext<unknown>) => ItemOutcome | undefined | Promise<ItemOutcome | undefined>

/** A handler over items that records every item it starts (`calls`) and every item it marks done (`done`). */
export function itemHandler (decide: Decide = () => ({ state: 'done' })): { handler: JobHandler<unknown>, calls: ItemCall[], done: ItemCall[], runs: number[], active: () => number } {
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
export function unitHandler (fails: (run: number) => boolean = () => false): { handler: JobHandler<unknown>, runs: Array<{ id: string, run: number, at: number }> } {
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

export function start (q: JobQueue, handlers: Record<string, JobHandler<unknown>>, concurrency = 2): void {
  q.start({ handlers: new Map(Object.entries(handlers)), concurrency, log, leaseMs: LEASE_MS, pollMs: POLL_MS })
}

/** How often each index 0..n-1 appears in `calls` of job `id`. */
export function countsByIndex (calls: readonly ItemCall[], id: string, n: number): number[] {
  const counts = Array.from({ length: n }, () => 0)
  for (const c of calls) if (c.id === id && c.index >= 0 && c.index < n) counts[c.index] = (counts[c.index] as number) + 1
  return counts
}

export function unique (label: string): string {
  return `${label}-${Math.random().toString(36).slice(2, 10)}`
}

export const ISO_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

/** The job counts of `stats()`, with `cancelled` as 0 when the store does not count it. */
export function jobCounts (stats: StoreStats): Record<'queued' | 'running' | 'done' | 'failed' | 'cancelled', number> {
  const jobs = stats.jobs as Partial<Record<string, number>>
  return { queued: jobs.queued ?? NaN, running: jobs.running ?? NaN, done: jobs.done ?? NaN, failed: jobs.failed ?? NaN, cancelled: jobs.cancelled ?? 0 }
}
export const counts = (stats: StoreStats): { jobs: ReturnType<typeof jobCounts>, items: StoreStats['items'] } => ({ jobs: jobCounts(stats), items: stats.items })
