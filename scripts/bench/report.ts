// The benchmark's results, the issue's targets judged on them, and the summary a person reads.
import type { Measurement, Stats } from './measure.ts'
import type { Machine, TimeWait } from '../kit/system.ts'

export interface ContenderResult {
  name: string
  label: string
  /** Median of each statistic over the runs (µs); `n` is the total of measured calls. */
  stats: Stats
  /** Failed calls of all runs, by code. */
  errors: Record<string, number>
  /** Requests sent in all runs (warm-up included, failures excluded) and what the receiver counted of them. */
  sent: number
  received: number
  /** Median over the runs: CPU time of the calling process per measured call, µs. */
  cpuUsPerCall: number
  /** Median over the runs: CPU time of the receiver per request it counted, µs. */
  receiverCpuUsPerRequest: number
  /** The PHP client only: median statistics of its interleaved bare fsockopen calls. */
  baseline?: Stats
  runs: PhaseRun[]
}

/** One contender in one run, with what the receiver saw of it. */
export interface PhaseRun extends Measurement {
  received: number
  receiverCpuUsPerRequest: number
}

export interface FireManyRun {
  sent: number
  failed: number
  /** Codes of the first 100 failures (fireMany keeps no more). */
  errors: Record<string, number>
  totalMs: number
  perSecond: number
  received: number
  /** sent - received: accepted by the kernel for sending but never counted by the receiver. */
  lost: number
  /** Sockets in TIME_WAIT right after the run (all, and those of connections to the receiver). */
  timeWait: TimeWait | null
  /** CPU time of the calling process per trigger, µs. */
  cpuUsPerTrigger: number
  /** CPU time of the receiver per request it counted, µs. */
  receiverCpuUsPerRequest: number
}

export interface FireManyResult {
  count: number
  concurrency: number
  /** Median over the runs. */
  perSecond: number
  sent: number
  failed: number
  lost: number
  runs: FireManyRun[]
}

export interface TargetCheck {
  target: string
  measured: string
  /** null: one side was not measured. */
  met: boolean | null
}

export interface BenchResult {
  machine: Machine
  settings: Record<string, number | string>
  contenders: ContenderResult[]
  fireMany: FireManyResult | null
  targets: TargetCheck[]
  notes: string[]
}

const PHP_FACTOR = 1.5 // trigger p50 ≤ 1.5 × PHP fsockopen p50
const HTTP_FACTOR = 0.25 // trigger p50 ≤ 0.25 × http.request p50
const FIRE_MANY_PER_SECOND = 15_000 // fireMany ≥ 15,000 triggers/s with 0 lost

/** Issue #13: ratios of p50 (or p99) to a PHP figure; `[bar, goal]`. */
const PHP_TARGETS = [
  { a: 'trigger', b: 'php', stat: 'p50', bar: 1.5, goal: 1.2, label: 'trigger() TCP p50 ÷ PHP fsockopen TCP p50' },
  { a: 'trigger', b: 'php', stat: 'p99', bar: 5, goal: 3, label: 'trigger() TCP p99 ÷ PHP fsockopen TCP p99' },
  { a: 'trigger-unix', b: 'php', stat: 'p50', bar: 1.0, goal: 0.7, label: 'trigger() Unix p50 ÷ PHP fsockopen TCP p50' },
  { a: 'trigger-unix', b: 'php-unix', stat: 'p50', bar: 1.5, goal: 1.2, label: 'trigger() Unix p50 ÷ PHP fsockopen unix:// p50' },
  // b 'baseline': the bare fsockopen calls interleaved with the client's own (scripts/bench/php.ts).
  { a: 'php-client', b: 'baseline', stat: 'p50', bar: 1.3, goal: 1.1, label: 'PHP client p50 ÷ bare fsockopen p50, interleaved' },
] as const

const us = (v: number): string => (Number.isNaN(v) ? '-' : v.toFixed(1))
const int = (v: number): string => Math.round(v).toLocaleString('en-US')

export function checkTargets (contenders: readonly ContenderResult[], fire: FireManyResult | null): TargetCheck[] {
  const p50 = (name: string): number | undefined => contenders.find((c) => c.name === name)?.stats.p50
  const trigger = p50('trigger')
  const checks: TargetCheck[] = []
  const versus = (name: string, label: string, factor: number): void => {
    const other = p50(name)
    const target = `trigger p50 ≤ ${factor} × ${label} p50`
    if (trigger === undefined || other === undefined || Number.isNaN(trigger) || Number.isNaN(other)) {
      checks.push({ target, measured: 'not measured', met: null })
      return
    }
    const limit = factor * other
    checks.push({ target, measured: `${us(trigger)} µs vs limit ${us(limit)} µs (${label} p50 ${us(other)} µs)`, met: trigger <= limit })
  }
  for (const t of PHP_TARGETS) {
    const a = contenders.find((c) => c.name === t.a)?.stats[t.stat]
    const b = t.b === 'baseline' ? contenders.find((c) => c.name === t.a)?.baseline?.[t.stat] : contenders.find((c) => c.name === t.b)?.stats[t.stat]
    const target = `#13 ${t.label} ≤ ${t.bar}× (goal ${t.goal}×)`
    if (a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b)) {
      checks.push({ target, measured: 'not measured', met: null })
      continue
    }
    const ratio = a / b
    const goal = ratio <= t.goal ? ', goal met' : ', goal not met'
    checks.push({ target, measured: `${ratio.toFixed(2)}× (${us(a)} vs ${us(b)} µs)${ratio <= t.bar ? goal : ''}`, met: ratio <= t.bar })
  }
  versus('php', 'PHP fsockopen', PHP_FACTOR)
  versus('http-close', 'http.request agent:false', HTTP_FACTOR)
  versus('http-keepalive', 'http.request keep-alive', HTTP_FACTOR)
  const rate = `fireMany ≥ ${int(FIRE_MANY_PER_SECOND)} triggers/s (median of the runs)`
  const none = 'fireMany: 0 lost and 0 failed (all runs)'
  if (fire === null) {
    checks.push({ target: rate, measured: 'not measured', met: null }, { target: none, measured: 'not measured', met: null })
  } else {
    checks.push(
      { target: rate, measured: `${int(fire.perSecond)}/s`, met: fire.perSecond >= FIRE_MANY_PER_SECOND },
      { target: none, measured: `${fire.lost} lost, ${fire.failed} failed of ${fire.sent + fire.failed}`, met: fire.lost === 0 && fire.failed === 0 },
    )
  }
  return checks
}

function table (rows: string[][], rightAligned: ReadonlySet<number>): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => r.map((cell, i) => {
    const w = widths[i] ?? 0
    return rightAligned.has(i) ? cell.padStart(w) : cell.padEnd(w)
  }).join('  ').trimEnd()).join('\n')
}

function errorList (errors: Record<string, number>): string {
  const entries = Object.entries(errors)
  return entries.length === 0 ? 'none' : entries.map(([code, n]) => `${code} ×${n}`).join(', ')
}

export function formatText (r: BenchResult): string {
  const m = r.machine
  const s = r.settings
  const out: string[] = []
  out.push('rawtrigger benchmark — caller-blocking time of sequential calls to one local receiver')
  out.push(`machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.kernel}, Node ${m.node}, PHP ${m.php ?? 'not installed'}`)
  out.push(`tcp_tw_reuse=${m.tcpTwReuse ?? '?'}, local ports ${m.localPortRange ?? '?'}, ` +
    `load average ${m.loadAverage.start.toFixed(2)} at start, ${m.loadAverage.end.toFixed(2)} at end`)
  out.push(`rawtrigger from ${s.build}`)
  out.push(`${s.iterations} measured calls after ${s.warmup} warm-up (spawn: ${s.spawnIterations} after ${s.spawnWarmup}), ` +
    `${Number(s.runs) > 1 ? `medians of ${s.runs} runs, n = calls of all runs` : '1 run'}, ` +
    `${Number(s.pauseMs) > 0 ? `${s.pauseMs} ms untimed pause before each call (receiver idle between calls)` : 'back to back (no pause)'}`)
  out.push('')
  const trigger = r.contenders.find((c) => c.name === 'trigger')?.stats.p50
  const rows = [['contender', 'n', 'p50 µs', 'p90 µs', 'p99 µs', 'max µs', 'p50 ÷ trigger p50', 'CPU µs/call', 'receiver CPU µs/req']]
  for (const c of r.contenders) {
    const ratio = trigger === undefined || Number.isNaN(c.stats.p50) ? '-' : `${(c.stats.p50 / trigger).toFixed(2)}×`
    rows.push([
      c.label, String(c.stats.n), us(c.stats.p50), us(c.stats.p90), us(c.stats.p99), us(c.stats.max), ratio,
      us(c.cpuUsPerCall), us(c.receiverCpuUsPerRequest),
    ])
  }
  if (r.contenders.length > 0) {
    out.push(table(rows, new Set([1, 2, 3, 4, 5, 6, 7, 8])))
    out.push('  p50 ÷ trigger p50: how many times longer than trigger() the caller is blocked (below 1: shorter).')
    out.push('  CPU µs/call: user + system time of the calling process per call (PHP: its own process).')
  }
  for (const c of r.contenders) {
    const tails = c.runs.flatMap((m) => (m.tail === undefined ? [] : [m.tail]))
    const slow = tails.reduce((a, t) => a + t.slow, 0)
    if (slow === 0) continue
    const sum = (k: 'gc' | 'preempted' | 'other'): number => tails.reduce((a, t) => a + t[k], 0)
    const share = tails.reduce((a, t) => a + t.preemptedShareAll, 0) / tails.length
    out.push(`  ${c.name} tail: ${slow} calls above p99; ${sum('gc')} overlapped a GC, ${sum('preempted')} were preempted ` +
      `(an involuntary context switch: ${(share * 100).toFixed(1)} % of all its calls were), ${sum('other')} neither`)
  }
  for (const c of r.contenders) {
    if (c.baseline === undefined) continue
    out.push(`  ${c.name}: each call paired with a bare fsockopen call (order alternating), p50 ${us(c.baseline.p50)} µs, ` +
      `p99 ${us(c.baseline.p99)} µs: the baseline of its #13 ratio; its CPU column counts its own calls only`)
  }
  for (const c of r.contenders) {
    const missing = c.sent - c.received
    if (Object.keys(c.errors).length > 0 || missing !== 0) {
      out.push(`  ${c.name}: errors ${errorList(c.errors)}; receiver counted ${c.received} of ${c.sent} sent`)
    }
  }
  if (r.contenders.length > 0 && r.contenders.every((c) => c.sent === c.received && Object.keys(c.errors).length === 0)) {
    out.push(`  no errors; the receiver counted every request sent (${int(r.contenders.reduce((a, c) => a + c.sent, 0))}, warm-up included)`)
  }
  const f = r.fireMany
  if (f !== null) {
    out.push('')
    out.push(`fireMany: ${int(f.count)} triggers at concurrency ${f.concurrency}`)
    f.runs.forEach((run, i) => {
      out.push(`  run ${i + 1}: ${int(run.perSecond)} triggers/s (${(run.totalMs / 1000).toFixed(2)} s), sent ${run.sent}, failed ${run.failed}, ` +
        `receiver counted ${run.received}, lost ${run.lost}`)
      const tw = run.timeWait
      if (tw !== null) {
        out.push(`    TIME_WAIT after the run: ${tw.total} on the host; of connections to the receiver ` +
          `${tw.clientSide} client-side, ${tw.serverSide} receiver-side`)
      }
      out.push(`    CPU per trigger: caller ${us(run.cpuUsPerTrigger)} µs, receiver ${us(run.receiverCpuUsPerRequest)} µs`)
      if (run.failed > 0) out.push(`    failures (first 100 kept): ${errorList(run.errors)}`)
    })
    if (f.runs.length > 1) out.push(`  median ${int(f.perSecond)} triggers/s; over all runs sent ${f.sent}, failed ${f.failed}, lost ${f.lost}`)
  }
  out.push('')
  out.push('targets (issue #2; #13 where marked)')
  const targetRows = r.targets.map((t) => [t.target, t.measured, t.met === null ? 'not measured' : t.met ? 'met' : 'NOT met'])
  out.push(table(targetRows.map((row) => row.map((cell, i) => (i === 0 ? `  ${cell}` : cell))), new Set()))
  for (const note of r.notes) out.push(`note: ${note}`)
  return out.join('\n')
}
