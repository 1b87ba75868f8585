import { InvalidOptionError } from '../errors.ts'
import { parseTarget, type Body } from './request-bytes.ts'
import { checkTriggerOptions, trigger, type TriggerOptions } from './trigger.ts'

/** Sockets open at once by default. */
export const FIRE_MANY_CONCURRENCY = 64
// Errors kept in the summary; the rest are only counted in `failed`.
const MAX_ERRORS_KEPT = 100
// Triggers on the native fast path (native-fire.ts) complete before they return, so a run would
// never give the event loop a turn: a worker yields once this long has passed without one, and
// the process's own servers and timers keep running.
const YIELD_EVERY_MS = 1
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Options of {@link fireMany}: every trigger option but `body`, plus the concurrency. */
export interface FireManyOptions extends Omit<TriggerOptions, 'body'> {
  /** Triggers in flight at once; never more sockets than this. @default 64 */
  concurrency?: number
}

/** One failed trigger of a {@link fireMany} run. */
export interface FireManyError {
  /** Position of the body in the input. */
  index: number
  error: Error
}

/** What a {@link fireMany} run did. */
export interface FireManySummary {
  sent: number
  failed: number
  /** The first 100 failures. */
  errors: FireManyError[]
  totalMs: number
  /** Triggers sent per second of `totalMs`. */
  perSecond: number
}

/**
 * Fires one trigger per body with bounded concurrency and never throws for a single failure:
 * each one is counted in the summary. Bodies may come from an iterable or an async iterable.
 */
export async function fireMany (
  url: string | URL,
  bodies: Iterable<Body> | AsyncIterable<Body>,
  options: FireManyOptions = {},
): Promise<FireManySummary> {
  const { concurrency = FIRE_MANY_CONCURRENCY, ...triggerOptions } = options
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new InvalidOptionError(`concurrency must be a positive integer (got ${String(concurrency)})`)
  }
  // Invalid URL, headers, method or timeouts reject the whole run, before any connection.
  checkTriggerOptions(parseTarget(url), triggerOptions)
  const target = typeof url === 'string' ? new URL(url) : url // parsed once, not per trigger
  const start = performance.now()
  const iterator = Symbol.asyncIterator in bodies
    ? (bodies as AsyncIterable<Body>)[Symbol.asyncIterator]()
    : (bodies as Iterable<Body>)[Symbol.iterator]()
  const summary: FireManySummary = { sent: 0, failed: 0, errors: [], totalMs: 0, perSecond: 0 }
  let next = 0
  let lastTurn = start

  async function worker (): Promise<void> {
    for (;;) {
      const item = await iterator.next()
      if (item.done === true) return
      const index = next++
      try {
        await trigger(target, { ...triggerOptions, body: item.value })
        summary.sent++
      } catch (error) {
        summary.failed++
        if (summary.errors.length < MAX_ERRORS_KEPT) summary.errors.push({ index, error: error as Error })
      }
      if (performance.now() - lastTurn >= YIELD_EVERY_MS) {
        await turn()
        lastTurn = performance.now()
      }
    }
  }

  await Promise.all(Array.from({ length: concurrency }, worker))
  summary.totalMs = performance.now() - start
  summary.perSecond = summary.totalMs > 0 ? (summary.sent / summary.totalMs) * 1000 : 0
  return summary
}
