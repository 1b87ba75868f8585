// Job types for the receiver tests. This is a handlers MODULE: imported in-process by
// test/helpers/receiver.ts, and loaded by a child process with
// `node --import tsx src/cli.ts serve --handlers test/helpers/handlers.ts`.
// It imports src/ by relative path (not 'rawtrigger'): the child runs without the
// `rawtrigger-source` condition, and the in-process receiver resolves to the same files anyway.
import { appendFileSync } from 'node:fs'
import { ValidationError } from '../../src/errors.ts'
import type { AnyJobHandler, JobContext, JobHandler, ParsedJob } from '../../src/queue/handler.ts'

/** Payload of `record`, `stubborn` and `flaky`. */
export interface RecordPayload {
  /** Items of the job. */
  n: number
  /** Sleep per item. @default 0 */
  ms: number
  /** Every processed item appends `${jobId} ${index}\n` here (flaky: `${jobId} ${index} ${attempt} ${epochMs}\n`). */
  file: string
  /** flaky only: an item's first try is retried this much later. @default 200 */
  retryMs: number
}

/** Payload of `fail`. */
export interface FailPayload {
  /** Runs that throw before one succeeds; a huge number fails every run. */
  failRuns: number
  /** Each run appends `${jobId} ${attempts} ${Date.now()}\n` here. */
  file: string
}

function object (body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('body', 'must be a JSON object')
  return body as Record<string, unknown>
}

function int (o: Record<string, unknown>, field: string, min: number, max: number, fallback?: number): number {
  const v = o[field]
  if (v === undefined && fallback !== undefined) return fallback
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ValidationError(field, `must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`)
  }
  return v
}

function path (o: Record<string, unknown>, field: string): string {
  const v = o[field]
  if (typeof v !== 'string' || v.length === 0) throw new ValidationError(field, 'must be a non-empty file path')
  return v
}

function parseRecord (body: unknown): ParsedJob<RecordPayload> {
  const o = object(body)
  const payload: RecordPayload = {
    n: int(o, 'n', 0, 100_000),
    ms: int(o, 'ms', 0, 60_000, 0),
    file: path(o, 'file'),
    retryMs: int(o, 'retryMs', 0, 60_000, 200),
  }
  return { payload, items: payload.n, summary: { n: payload.n } }
}

/** Sleeps `ms`; resolves false at once when `signal` fires (or has fired). */
export function sleep (ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted === true) return Promise.resolve(false)
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve(true)
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Goes through the due items one at a time: sleep, append a line, mark done. The line is appended
 * before the item is marked, so a kill -9 between the two leaves at most one duplicate line.
 */
const record: JobHandler<RecordPayload> = {
  parse: parseRecord,
  async run (ctx: JobContext<RecordPayload>): Promise<void> {
    for await (const item of ctx.dueItems()) {
      if (ctx.payload.ms > 0 && !(await sleep(ctx.payload.ms, ctx.signal))) return
      if (ctx.signal.aborted) return
      appendFileSync(ctx.payload.file, `${ctx.id} ${item.index}\n`)
      await ctx.markItem(item.index, { state: 'done' })
    }
  },
}

/**
 * Like `record`, but ignores ctx.signal: it lists the due items once, then works through them
 * whatever happens, so a graceful stop has to hand the job back after the grace period. Once the
 * store is closed under it, markItem() rejects and the run ends.
 */
const stubborn: JobHandler<RecordPayload> = {
  parse: parseRecord,
  async run (ctx: JobContext<RecordPayload>): Promise<void> {
    const due: number[] = []
    for await (const item of ctx.dueItems()) due.push(item.index)
    for (const index of due) {
      await sleep(ctx.payload.ms)
      appendFileSync(ctx.payload.file, `${ctx.id} ${index}\n`)
      await ctx.markItem(index, { state: 'done' })
    }
  },
}

/** Every item's first try asks for a retry `retryMs` later; the second try is done. */
const flaky: JobHandler<RecordPayload> = {
  parse: parseRecord,
  async run (ctx: JobContext<RecordPayload>): Promise<void> {
    for await (const item of ctx.dueItems()) {
      appendFileSync(ctx.payload.file, `${ctx.id} ${item.index} ${item.attempts + 1} ${Date.now()}\n`)
      if (item.attempts === 0) {
        await ctx.markItem(item.index, { state: 'retry', error: `item ${item.index}: try again`, retryAt: Date.now() + ctx.payload.retryMs })
      } else {
        await ctx.markItem(item.index, { state: 'done' })
      }
    }
  },
}

/** A job of one unit whose first `failRuns` runs throw. */
const fail: JobHandler<FailPayload> = {
  parse (body: unknown): ParsedJob<FailPayload> {
    const o = object(body)
    return { payload: { failRuns: int(o, 'failRuns', 0, 1_000_000), file: path(o, 'file') }, items: 0 }
  },
  async run (ctx: JobContext<FailPayload>): Promise<void> {
    appendFileSync(ctx.payload.file, `${ctx.id} ${ctx.attempts} ${Date.now()}\n`)
    if (ctx.attempts <= ctx.payload.failRuns) throw new Error(`run ${ctx.attempts} failed on purpose`)
  },
}

/** A job that does nothing: for intake tests that only count what was stored. */
const noop: JobHandler<Record<string, unknown>> = {
  parse (body: unknown): ParsedJob<Record<string, unknown>> {
    return { payload: object(body), items: 0 }
  },
  async run (): Promise<void> {},
}

/** The job types of this module, by name. */
const handlers: Record<string, AnyJobHandler> = { record, stubborn, flaky, fail, noop }
/** A handler that marks every due item done and counts, per job id, how often each index ran. */
export function countingHandler (delayMs = 0): { handler: JobHandler<unknown>, ran: Map<string, number[]> } {
  const ran = new Map<string, number[]>()
  return {
    ran,
    handler: {
      parse: (body) => ({ payload: body, items: 0 }),
      async run (ctx) {
        const counts = ran.get(ctx.id) ?? Array.from({ length: ctx.items }, () => 0)
        ran.set(ctx.id, counts)
        for await (const item of ctx.dueItems()) {
          counts[item.index] = (counts[item.index] ?? 0) + 1
          if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
          await ctx.markItem(item.index, { state: 'done' })
        }
      },
    },
  }
}

export default handlers
