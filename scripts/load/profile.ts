// CPU profiles of the load phases, summarised with scripts/bench/cpuprofile.ts (the code behind
// scripts/cpuprofile-summary.ts): the serve child runs under `node --cpu-prof`, and its profile is
// cut to the load window; the client's trigger loops run under the same V8 profiler through
// node:inspector, started and stopped around the loop alone.
import { readFileSync } from 'node:fs'
import { formatSummary, newestProfile as newestFile, profileHere as profile, summarise, type CpuProfile, type ProfileSummary } from '../bench/cpuprofile.ts'

const SAMPLING_INTERVAL_US = 100
const TOP = 12

/** Monotonic microseconds: the clock V8's profiler stamps its samples with (CLOCK_MONOTONIC). */
export function monotonicUs (): number {
  return Number(process.hrtime.bigint() / 1_000n)
}

/**
 * The samples of `profile` taken between `fromUs` and `toUs` (monotonic µs). A profile that does
 * not cover the window is returned whole, with `trimmed: false`.
 */
export function trimProfile (profile: CpuProfile, fromUs: number, toUs: number): { profile: CpuProfile, trimmed: boolean } {
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  if (profile.startTime > toUs || profile.endTime < fromUs) return { profile, trimmed: false }
  let t = profile.startTime
  let first = -1
  let last = -1
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0
    if (t < fromUs) continue
    if (t > toUs) break
    if (first === -1) first = i
    last = i
  }
  if (first === -1) return { profile, trimmed: false }
  // summarise() counts sample i as lasting deltas[i + 1]: keep one delta past the last sample.
  return {
    profile: { ...profile, samples: samples.slice(first, last + 1), timeDeltas: deltas.slice(first, last + 2) },
    trimmed: true,
  }
}

/** The newest main-thread .cpuprofile in a directory, read. */
export function newestProfile (dir: string): CpuProfile {
  const newest = newestFile(dir)
  if (newest === undefined) throw new Error(`no .cpuprofile in ${dir}`)
  return JSON.parse(readFileSync(newest, 'utf8')) as CpuProfile
}

/** Runs `fn` under the V8 CPU profiler of this process. */
export function profileHere<T> (fn: () => Promise<T>): Promise<{ value: T, profile: CpuProfile }> {
  return profile(fn, SAMPLING_INTERVAL_US)
}

export interface ProfileReport {
  what: string
  /** Requests or calls made in the profiled span. */
  calls: number
  /** Profile time over the calls, µs: what one costs this process, busy and idle. */
  usPerCall: number
  /** Busy (not idle) time per call, µs. */
  busyUsPerCall: number
  summary: Pick<ProfileSummary, 'totalMs' | 'samples' | 'idleMs' | 'areas'> & { functions: ProfileSummary['functions'] }
  /** The two tables of scripts/cpuprofile-summary.ts, in µs per call. */
  text: string
}

export function report (what: string, profile: CpuProfile, calls: number): ProfileReport {
  const s = summarise(profile)
  return {
    what,
    calls,
    usPerCall: (s.totalMs * 1_000) / calls,
    busyUsPerCall: ((s.totalMs - s.idleMs) * 1_000) / calls,
    summary: { totalMs: s.totalMs, samples: s.samples, idleMs: s.idleMs, areas: s.areas.slice(0, TOP), functions: s.functions.slice(0, TOP) },
    text: formatSummary(s, TOP, calls),
  }
}
