// The receiver's figures from project issue 11, each measured in this run and judged against the
// issue's bar (the least it must reach) and its goal. Ratios are the median over runs of each run's
// own ratio; CPU per job is the median over runs; lost jobs are summed over every phase of every run.
//
// The issue's table, with the "now" column as it stood when the issue was written (the history;
// not printed):
//
//   | figure                                                    | now           | bar      | goal     |
//   |-----------------------------------------------------------|---------------|----------|----------|
//   | serve SQLite, keep-alive, × bare node:http                | 0.20–0.25×    | ≥ 0.5×   | ≥ 0.8×   |
//   | serve SQLite, new connection per request, × bare          | 0.39–0.53×    | ≥ 0.85×  | ≥ 0.95×  |
//   | serve SQLite, fireMany triggers, × bare                   | 0.55×         | ≥ 0.85×  | ≥ 0.95×  |
//   | serve SQLite vs fastify + BullMQ, keep-alive              | 0.85×         | ≥ 2×     | ≥ 3×     |
//   | serve Redis vs fastify + BullMQ, keep-alive and new conn. | 0.34× / 0.51× | ≥ 1.0×   | ≥ 1.5×   |
//   | server CPU per job, SQLite keep-alive                     | 59 µs         | ≤ 25 µs  | ≤ 16 µs  |
//   | lost jobs                                                 | 0             | 0        | 0        |
import { median } from '../kit/stats.ts'
import { f1, n0, perRunRatios, x2, type Summary } from './report.ts'
import type { Mode, Row } from './run.ts'
import type { TargetName } from './targets.ts'

export const VERDICTS = ['goal met', 'bar met, goal not', 'NOT met', 'not measured'] as const
export type Verdict = typeof VERDICTS[number]

/** One figure of the issue's table, as measured. */
export interface Goal {
  /** The figure, named as in the issue. */
  name: string
  /** The value judged; with two figures (Redis), the lower one. null: not measured in this run. */
  measured: number | null
  /** The measured column as printed: the figure(s) and what they were computed from. */
  shown: string
  unit: '×' | 'µs' | 'jobs'
  /** `higher`: passes at measured ≥ bar; `lower`: at measured ≤ bar. */
  better: 'higher' | 'lower'
  bar: number
  goal: number
  /** The bar and the goal as the issue writes them. */
  barText: string
  goalText: string
  verdict: Verdict
}

type Limits = Pick<Goal, 'name' | 'unit' | 'better' | 'bar' | 'goal' | 'barText' | 'goalText'>

/** Judges one value: the goal passes the bar too; NaN and null are not measured. */
export function judge (measured: number | null, better: Goal['better'], bar: number, goal: number): Verdict {
  if (measured === null || Number.isNaN(measured)) return 'not measured'
  const passes = (limit: number): boolean => (better === 'higher' ? measured >= limit : measured <= limit)
  return passes(goal) ? 'goal met' : passes(bar) ? 'bar met, goal not' : 'NOT met'
}

function goalOf (limits: Limits, measured: number | null, shown: string): Goal {
  return { ...limits, measured, shown: measured === null ? 'not measured' : shown, verdict: judge(measured, limits.better, limits.bar, limits.goal) }
}

const higher = (name: string, bar: number, goal: number, barText: string, goalText: string): Limits =>
  ({ name, unit: '×', better: 'higher', bar, goal, barText, goalText })

function rate (s: readonly Summary[], target: TargetName, mode: Mode): number {
  return s.find((r) => r.target === target && r.mode === mode)?.rate ?? NaN
}

/** The median over runs of ours / theirs in one mode, and the line that shows it. */
function ratio (rows: readonly Row[], s: readonly Summary[], ours: TargetName, theirs: TargetName, mode: Mode): { value: number | null, shown: string } {
  const ratios = perRunRatios(rows, ours, theirs, mode)
  if (ratios.length === 0) return { value: null, shown: '–' }
  const value = median(ratios)
  const unit = mode === 'keep-alive' || mode === 'new-connection' ? 'req/s' : 'triggers/s'
  return { value, shown: `${x2(value)} (${n0(rate(s, ours, mode))} vs ${n0(rate(s, theirs, mode))} ${unit})` }
}

/** The issue's table, measured: `rows` are every phase of every run, `s` their medians. */
export function goals (rows: readonly Row[], s: readonly Summary[]): Goal[] {
  const out: Goal[] = []
  const toBare: Array<[string, Mode, number, number, string, string]> = [
    ['serve SQLite, keep-alive, × bare node:http', 'keep-alive', 0.5, 0.8, '≥ 0.5×', '≥ 0.8×'],
    ['serve SQLite, new connection per request, × bare', 'new-connection', 0.85, 0.95, '≥ 0.85×', '≥ 0.95×'],
    ['serve SQLite, fireMany triggers, × bare', 'fireMany', 0.85, 0.95, '≥ 0.85×', '≥ 0.95×'],
  ]
  for (const [name, mode, bar, goal, barText, goalText] of toBare) {
    const r = ratio(rows, s, 'sqlite', 'bare', mode)
    out.push(goalOf(higher(name, bar, goal, barText, goalText), r.value, r.shown))
  }

  const sqlite = ratio(rows, s, 'sqlite', 'fastify', 'keep-alive')
  out.push(goalOf(higher('serve SQLite vs fastify + BullMQ, keep-alive', 2, 3, '≥ 2×', '≥ 3×'), sqlite.value, sqlite.shown))

  // Both modes must pass; with one of them missing the figure is not measured.
  const ka = ratio(rows, s, 'redis', 'fastify', 'keep-alive')
  const nc = ratio(rows, s, 'redis', 'fastify', 'new-connection')
  const redis = ka.value === null || nc.value === null ? null : Math.min(ka.value, nc.value)
  out.push({
    ...goalOf(higher('serve Redis vs fastify + BullMQ, keep-alive and new connection', 1, 1.5, '≥ 1.0×', '≥ 1.5×'), redis, ''),
    shown: ka.value === null && nc.value === null ? 'not measured' : `keep-alive ${ka.shown} / new connection ${nc.shown}`,
  })

  const cpu = rows.filter((r) => r.target === 'sqlite' && r.mode === 'keep-alive').map((r) => r.serverUs)
  const cpuUs = cpu.length === 0 || Number.isNaN(median(cpu)) ? null : median(cpu)
  const share = s.find((r) => r.target === 'sqlite' && r.mode === 'keep-alive')?.serverCpu ?? NaN
  out.push(goalOf({ name: 'server CPU per job, SQLite keep-alive', unit: 'µs', better: 'lower', bar: 25, goal: 16, barText: '≤ 25 µs', goalText: '≤ 16 µs' },
    cpuUs, `${f1(cpuUs ?? NaN)} µs (serve at ${Number.isFinite(share) ? Math.round(share * 100) : '–'}% of a core)`))

  // Every phase at a rawtrigger target must account for every job: stored = 2xx (keep-alive) or
  // = sent. More stored than that is counted too: the accounting itself is then wrong.
  const ours = rows.filter((r) => r.target === 'sqlite' || r.target === 'redis')
  const bad = ours.filter((r) => r.lost !== 0)
  const lost = ours.reduce((a, r) => a + Math.abs(r.lost), 0)
  const stored = ours.reduce((a, r) => a + r.stored, 0)
  out.push(goalOf({ name: 'lost jobs', unit: 'jobs', better: 'lower', bar: 0, goal: 0, barText: '0', goalText: '0' },
    ours.length === 0 ? null : lost,
    bad.length === 0
      ? `0 (${n0(stored)} jobs stored in ${ours.length} phases)`
      : `${n0(lost)}: ${bad.map((r) => `run ${r.run} ${r.mode} ${r.target} ${r.lost > 0 ? `${r.lost} lost` : `${-r.lost} more stored than ${r.against}`}`).join('; ')}`))
  return out
}

/** The table a person reads. */
export function formatGoals (list: readonly Goal[]): string {
  return [
    '| figure | measured | bar | goal | verdict |',
    '|---|---|---|---|---|',
    ...list.map((g) => `| ${g.name} | ${g.shown} | ${g.barText} | ${g.goalText} | ${g.verdict} |`),
  ].join('\n')
}
