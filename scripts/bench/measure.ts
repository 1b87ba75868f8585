// Timing loops and statistics: sequential calls, each timed with process.hrtime.bigint().
import { constants } from 'node:os'
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import type { OnProgress } from '../kit/progress.ts'
import { addError, errorCode, median, rank, sorted as sortedOf } from '../kit/stats.ts'

/** Percentiles of one contender's caller-blocking times, in microseconds. */
export interface Stats {
  /** Successful measured calls (warm-up and failed calls excluded). */
  n: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}

/** One contender's measurements in one run. */
export interface Measurement {
  stats: Stats
  /** Failed calls (warm-up included), by error code: `RT_ERR_CONNECT/EADDRNOTAVAIL`, `ECONNRESET`, … */
  errors: Record<string, number>
  /** Calls made, warm-up included: what the receiver should have counted. */
  calls: number
  wallMs: number
  /** CPU time (user + system) of the calling process per measured call, µs: its own work, not waiting. */
  cpuUsPerCall: number
  /** What the slowest 1 % of calls ran into (Node contenders only). */
  tail?: Tail
  /** The PHP client only: its interleaved bare fsockopen calls, the ratio's baseline. */
  baseline?: Stats
}

/**
 * Where the slowest calls (those above the run's p99) lost their time: a garbage collection of
 * the calling process that overlapped the call, or the kernel taking the CPU away from it
 * (involuntary context switches during the call: another process, such as the receiver, ran).
 */
export interface Tail {
  /** Calls above p99. */
  slow: number
  /** Of them: overlapped a GC pause of the caller. */
  gc: number
  /** Of them: at least one involuntary context switch of the caller during the call. */
  preempted: number
  /** Of them: neither (timers, the event loop, the kernel's own work). */
  other: number
  /** Share of all measured calls with an involuntary context switch, for comparison. */
  preemptedShareAll: number
}

const PROGRESS_EVERY = 250 // calls between progress reports

// errno numbers to names (PHP reports numbers): 99 → EADDRNOTAVAIL on Linux.
const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, number]) => [number, name]))

export function errnoName (errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`
}

/** Nearest-rank percentiles of durations in nanoseconds, returned in microseconds. */
export function stats (durationsNs: ArrayLike<number>): Stats {
  const sorted = sortedOf(durationsNs)
  const n = sorted.length
  if (n === 0) return { n: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN }
  const at = (p: number): number => rank(sorted, p) / 1_000
  let sum = 0
  for (const d of sorted) sum += d
  return { n, p50: at(50), p90: at(90), p99: at(99), max: (sorted[n - 1] ?? NaN) / 1_000, mean: sum / n / 1_000 }
}

/** Optional parts of {@link measure}. */
export interface MeasureOptions {
  /** Runs after each call, untimed (the spawn contender waits there for its child to exit). */
  after?: (value: unknown) => Promise<void>
  /**
   * Pause before each call, untimed, in ms: the receiver then goes idle between calls, as it does
   * when a web app fires one trigger per page view, instead of being kept busy by back-to-back calls.
   * @default 0
   */
  pauseMs?: number
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Calls `fn` `warmup + iterations` times in sequence and times each call, from the call until its
 * promise resolves (or, for a synchronous `fn`, until it returns).
 */
export async function measure (
  fn: () => unknown,
  warmup: number,
  iterations: number,
  onProgress: OnProgress,
  options: MeasureOptions = {},
): Promise<Measurement> {
  const { after, pauseMs = 0 } = options
  const durations = new Float64Array(iterations)
  const starts = new Float64Array(iterations) // performance.now() at each call, ms
  const switches = new Uint8Array(iterations) // 1: preempted during the call
  const gcs: PerformanceEntry[] = []
  const observer = new PerformanceObserver((list) => { gcs.push(...list.getEntries()) })
  observer.observe({ entryTypes: ['gc'] })
  const errors: Record<string, number> = {}
  let n = 0
  const total = warmup + iterations
  const wallStart = performance.now()
  let cpuStart = process.cpuUsage()
  for (let i = 0; i < total; i++) {
    if (i === warmup) cpuStart = process.cpuUsage()
    if (i % PROGRESS_EVERY === 0) onProgress(i, total)
    if (pauseMs > 0) await sleep(pauseMs)
    let value: unknown
    const switchesBefore = process.resourceUsage().involuntaryContextSwitches
    const start = performance.now()
    const t0 = process.hrtime.bigint()
    try {
      value = fn()
      if (value instanceof Promise) value = await value
    } catch (err) {
      addError(errors, errorCode(err))
      continue
    }
    const t1 = process.hrtime.bigint()
    if (i >= warmup) {
      starts[n] = start
      switches[n] = process.resourceUsage().involuntaryContextSwitches > switchesBefore ? 1 : 0
      durations[n++] = Number(t1 - t0)
    }
    if (after !== undefined) {
      try {
        await after(value)
      } catch (err) {
        addError(errors, errorCode(err))
      }
    }
  }
  const cpu = process.cpuUsage(cpuStart)
  onProgress(total, total)
  await sleep(0) // the observer's last entries arrive on a later turn
  observer.disconnect()
  const s = stats(durations.subarray(0, n))
  return {
    stats: s,
    errors,
    calls: total,
    wallMs: performance.now() - wallStart,
    cpuUsPerCall: (cpu.user + cpu.system) / iterations,
    tail: tailOf(s.p99, durations.subarray(0, n), starts, switches, gcs),
  }
}

function tailOf (p99Us: number, durations: Float64Array, starts: Float64Array, switches: Uint8Array, gcs: readonly PerformanceEntry[]): Tail {
  const tail: Tail = { slow: 0, gc: 0, preempted: 0, other: 0, preemptedShareAll: 0 }
  let preemptedAll = 0
  for (let i = 0; i < durations.length; i++) {
    preemptedAll += switches[i] ?? 0
    const d = durations[i] ?? 0
    if (d / 1_000 <= p99Us) continue
    tail.slow++
    const from = starts[i] ?? 0
    const to = from + d / 1e6
    const gc = gcs.some((g) => g.startTime < to && g.startTime + g.duration > from)
    if (gc) tail.gc++
    if (switches[i] === 1) tail.preempted++
    if (!gc && switches[i] !== 1) tail.other++
  }
  tail.preemptedShareAll = durations.length === 0 ? 0 : preemptedAll / durations.length
  return tail
}

/** The median of each statistic over several runs (the run-to-run noise of a shared box). */
export function medianStats (runs: readonly Stats[]): Stats {
  return {
    n: runs.reduce((sum, s) => sum + s.n, 0),
    p50: median(runs.map((s) => s.p50)),
    p90: median(runs.map((s) => s.p90)),
    p99: median(runs.map((s) => s.p99)),
    max: median(runs.map((s) => s.max)),
    mean: median(runs.map((s) => s.mean)),
  }
}
