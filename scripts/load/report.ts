// Medians over runs, ratios to the bare baseline, the trigger side's checks judged on the
// measurements, and the tables a person reads. A ratio is the median over runs of each run's own
// ratio: both sides of it were measured minutes apart at most, in the same run.
import { median } from '../kit/stats.ts'
import type { Latency } from './cannon.ts'
import type { Mode, Row } from './run.ts'
import { LABELS, type TargetName } from './targets.ts'

/** One row per target and mode: medians of rates, latencies and costs; sums of the counts. */
export interface Summary extends Omit<Row, 'run'> {
  runs: number
  /** Rate over the bare baseline's rate in the same mode and run, median over runs (null: no baseline for this mode). */
  ratio: number | null
}

export interface Check {
  target: string
  measured: string
  /** null: not measured in this run (a target or mode was left out). */
  met: boolean | null
}

/** Each run's `ours / theirs` for one mode, where both were measured in that run. */
export function perRunRatios (rows: readonly Row[], ours: TargetName, theirs: TargetName, mode: Mode): number[] {
  const out: number[] = []
  for (const r of rows) {
    if (r.target !== ours || r.mode !== mode) continue
    const other = rows.find((o) => o.target === theirs && o.mode === mode && o.run === r.run)
    if (other !== undefined && other.rate > 0) out.push(r.rate / other.rate)
  }
  return out
}

function medianLatency (list: Array<Latency | undefined>): Latency | undefined {
  const xs = list.filter((l): l is Latency => l !== undefined)
  if (xs.length === 0) return undefined
  return { p50: median(xs.map((l) => l.p50)), p975: median(xs.map((l) => l.p975)), p99: median(xs.map((l) => l.p99)), max: median(xs.map((l) => l.max)) }
}

const sum = (xs: ReadonlyArray<number | undefined>): number => xs.reduce<number>((a, b) => a + (b ?? 0), 0)

export function summarise (rows: readonly Row[]): Summary[] {
  const groups = new Map<string, Row[]>()
  for (const r of rows) {
    const key = `${r.mode}|${r.target}`
    groups.set(key, [...(groups.get(key) ?? []), r])
  }
  const out: Summary[] = []
  for (const list of groups.values()) {
    const first = list[0] as Row
    const s: Summary = {
      target: first.target, mode: first.mode, runs: list.length, ratio: null, against: first.against,
      rate: median(list.map((r) => r.rate)), seconds: median(list.map((r) => r.seconds)),
      sent: sum(list.map((r) => r.sent)), errors: sum(list.map((r) => r.errors)), non2xx: sum(list.map((r) => r.non2xx)),
      stored: sum(list.map((r) => r.stored)), lost: sum(list.map((r) => r.lost)),
      serverUs: median(list.map((r) => r.serverUs)), clientUs: median(list.map((r) => r.clientUs)),
      serverCpu: median(list.map((r) => r.serverCpu)), clientCpu: median(list.map((r) => r.clientCpu)),
    }
    const latencyMs = medianLatency(list.map((r) => r.latencyMs))
    if (latencyMs !== undefined) s.latencyMs = latencyMs
    const blockingUs = medianLatency(list.map((r) => r.blockingUs))
    if (blockingUs !== undefined) s.blockingUs = blockingUs
    if (first.ok !== undefined) s.ok = sum(list.map((r) => r.ok))
    if (first.accepted !== undefined) s.accepted = sum(list.map((r) => r.accepted))
    if (first.duplicates !== undefined) s.duplicates = sum(list.map((r) => r.duplicates))
    if (first.drainRate !== undefined) s.drainRate = median(list.map((r) => r.drainRate ?? NaN))
    if (first.resent !== undefined) s.resent = sum(list.map((r) => r.resent))
    if (first.jobsPerCommit !== undefined) {
      s.commits = sum(list.map((r) => r.commits))
      s.committedJobs = sum(list.map((r) => r.committedJobs))
      s.jobsPerCommit = median(list.map((r) => r.jobsPerCommit ?? NaN))
    }
    const codes: Record<string, number> = {}
    for (const r of list) for (const [c, n] of Object.entries(r.errorCodes ?? {})) codes[c] = (codes[c] ?? 0) + n
    if (Object.keys(codes).length > 0) s.errorCodes = codes
    out.push(s)
  }
  for (const s of out) {
    const ratios = perRunRatios(rows, s.target, 'bare', s.mode)
    s.ratio = ratios.length === 0 ? null : median(ratios)
  }
  return out
}

export const n0 = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–')
export const f1 = (v: number | undefined): string => (v !== undefined && Number.isFinite(v) ? v.toFixed(1) : '–')
const f2 = (v: number | undefined): string => (v !== undefined && Number.isFinite(v) ? v.toFixed(2) : '–')
const pct = (v: number): string => (Number.isFinite(v) ? `${Math.round(v * 100)}%` : '–')
export const x2 = (v: number | null): string => (v === null || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`)

function find (s: readonly Summary[], target: TargetName, mode: Mode): Summary | undefined {
  return s.find((r) => r.target === target && r.mode === mode)
}

/** The trigger side's checks (the pool's rate, trigger() and the pool against PHP); serve's figures are in goals.ts. */
export function checkTriggers (s: readonly Summary[]): Check[] {
  const checks: Check[] = []
  const pool = find(s, 'sqlite', 'pool')
  const php = find(s, 'sqlite', 'php')
  const trig = find(s, 'sqlite', 'trigger')
  const POOL_RATE = 50_000
  if (pool === undefined) {
    checks.push({ target: `Keep-alive trigger pool ≥ ${n0(POOL_RATE)} triggers/s with 0 lost`, measured: 'not measured', met: null })
  } else {
    checks.push({
      target: `Keep-alive trigger pool ≥ ${n0(POOL_RATE)} triggers/s with 0 lost — caller side (fire() resolved, into serve SQLite)`,
      measured: `${n0(pool.rate)} triggers/s, ${pool.lost} lost`,
      met: pool.rate >= POOL_RATE && pool.lost === 0,
    })
    checks.push({
      target: `Keep-alive trigger pool ≥ ${n0(POOL_RATE)} triggers/s with 0 lost — end to end (until every 202 was read: stored)`,
      measured: `${n0(pool.drainRate ?? NaN)} triggers/s, ${pool.lost} lost`,
      met: (pool.drainRate ?? 0) >= POOL_RATE && pool.lost === 0,
    })
  }
  const vsPhp = (what: string, ours: number | undefined, theirs: number | undefined, max: number): Check => {
    if (ours === undefined || theirs === undefined) return { target: what, measured: 'not measured', met: null }
    return { target: what, measured: `${f1(ours)} µs vs PHP ${f1(theirs)} µs (${x2(ours / theirs)})`, met: ours <= max * theirs }
  }
  checks.push(vsPhp('Pool caller-blocking p50 ≤ 0.5× PHP fsockopen p50', pool?.blockingUs?.p50, php?.blockingUs?.p50, 0.5))
  checks.push(vsPhp('trigger() p50 ≤ 1.5× PHP fsockopen p50', trig?.blockingUs?.p50, php?.blockingUs?.p50, 1.5))
  checks.push(vsPhp('trigger() p99 ≤ 5× PHP fsockopen p99', trig?.blockingUs?.p99, php?.blockingUs?.p99, 5))
  return checks
}

const HOW: Record<Mode, string> = {
  'keep-alive': 'keep-alive',
  'new-connection': 'new connection per request',
  fireMany: 'fireMany (new connection, fire-and-forget)',
  pool: 'createTriggerPool (keep-alive), fire() awaited',
  trigger: 'trigger() one after another',
  net: 'net.connect()+end() one after another (the Node floor)',
  php: 'PHP fsockopen+fwrite+fclose loop',
}

export function formatTables (s: readonly Summary[]): string {
  const http = s.filter((r) => r.mode === 'keep-alive' || r.mode === 'new-connection')
  const raw = s.filter((r) => r.mode !== 'keep-alive' && r.mode !== 'new-connection')
  const out: string[] = []
  if (http.length > 0) {
    out.push('HTTP load (autocannon): 2xx answers per second, latency request → status line',
      '',
      '| target | mode | req/s | × bare | p50 ms | p97.5 ms | p99 ms | errors | non-2xx | sent | 2xx | stored | lost | jobs/commit | server µs/req | server CPU | client CPU |',
      '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
    for (const r of http) {
      out.push(`| ${LABELS[r.target]} | ${HOW[r.mode]} | ${n0(r.rate)} | ${x2(r.ratio)} | ${f2(r.latencyMs?.p50)} | ${f2(r.latencyMs?.p975)} | ` +
        `${f2(r.latencyMs?.p99)} | ${r.errors} | ${r.non2xx} | ${r.sent} | ${r.ok ?? '–'} | ${r.stored} | ${r.lost} | ${f1(r.jobsPerCommit)} | ${f1(r.serverUs)} | ` +
        `${pct(r.serverCpu)} | ${pct(r.clientCpu)} |`)
    }
  }
  if (raw.length > 0) {
    if (out.length > 0) out.push('')
    out.push('Raw triggers: triggers handed to the kernel per second; blocking = call → promise resolved (PHP: fsockopen → fclose)',
      '',
      '| target | how | triggers/s | × bare | until stored /s | blocking p50 µs | p99 µs | sent | failed | stored | lost | jobs/commit | server µs/trigger | client µs/trigger |',
      '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
    for (const r of raw) {
      out.push(`| ${LABELS[r.target]} | ${HOW[r.mode]} | ${n0(r.rate)} | ${x2(r.ratio)} | ${r.drainRate === undefined ? '–' : n0(r.drainRate)} | ` +
        `${f1(r.blockingUs?.p50)} | ${f1(r.blockingUs?.p99)} | ${r.sent} | ${r.errors} | ${r.stored} | ${r.lost} | ${f1(r.jobsPerCommit)} | ${f1(r.serverUs)} | ${f1(r.clientUs)} |`)
    }
  }
  return out.join('\n')
}

export function formatChecks (checks: readonly Check[]): string {
  return checks.map((c) => `- ${c.met === null ? '[not measured]' : c.met ? '[met]' : '[NOT met]'} ${c.target}: ${c.measured}`).join('\n')
}
