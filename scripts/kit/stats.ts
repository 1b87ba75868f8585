// Figures out of measurements: nearest-rank percentiles, medians over runs, failures counted by
// error code, and a timed loop of sequential calls (each call's caller-blocking time).
import type { OnProgress } from './progress.ts'

/** Sorted ascending, for {@link rank}. */
export function sorted (values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort()
}

/** Nearest-rank percentile `p` (0–100) of sorted values; NaN when there are none. */
export function rank (values: Float64Array, p: number): number {
  const n = values.length
  return n === 0 ? NaN : values[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))] ?? NaN
}

/** The median of a list of numbers, NaN entries left out (NaN when none is left). */
export function median (values: readonly number[]): number {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = s.length >> 1
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2
}

/** `TriggerError` code plus the OS code on its cause, or the plain OS code: `RT_ERR_CONNECT/EADDRNOTAVAIL`. */
export function errorCode (err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err)
  const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined
  const cause = 'cause' in err ? err.cause : undefined
  const causeCode = typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string'
    ? cause.code
    : undefined
  if (code !== undefined && causeCode !== undefined && causeCode !== code) return `${code}/${causeCode}`
  return code ?? causeCode ?? (err instanceof Error ? err.name : 'unknown')
}

/** Adds `by` failures of `code`. */
export function addError (errors: Record<string, number>, code: string, by = 1): void {
  errors[code] = (errors[code] ?? 0) + by
}

/** What {@link timeLoop} measured. */
export interface Loop {
  /** Caller-blocking time of each successful call, µs. */
  blockingUs: number[]
  /** Failed calls by {@link errorCode}. */
  errors: Record<string, number>
  /** First call → last call returned. */
  seconds: number
}

const PROGRESS_EVERY = 1_000 // calls between progress reports

/** `n` calls of `fn` one after another, each timed from the call until its promise resolves. */
export async function timeLoop (n: number, fn: () => Promise<unknown>, onProgress: OnProgress): Promise<Loop> {
  const blockingUs: number[] = []
  const errors: Record<string, number> = {}
  const start = performance.now()
  for (let i = 0; i < n; i++) {
    if (i % PROGRESS_EVERY === 0) onProgress(i, n)
    const t0 = process.hrtime.bigint()
    try {
      await fn()
      blockingUs.push(Number(process.hrtime.bigint() - t0) / 1_000)
    } catch (err) {
      addError(errors, errorCode(err))
    }
  }
  return { blockingUs, errors, seconds: (performance.now() - start) / 1000 }
}

/** `n` copies of `item` for fireMany, reporting progress every 1,000. */
export function * repeat<T> (item: T, n: number, onProgress: OnProgress): Generator<T> {
  for (let i = 0; i < n; i++) {
    if (i % PROGRESS_EVERY === 0) onProgress(i, n)
    yield item
  }
}
