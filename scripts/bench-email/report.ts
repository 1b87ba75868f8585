// What bench-email prints: the medians per size, the naive loop, the worker CPU, the peak RSS,
// and issue 14's targets (bar and goal) judged on them.
import { aligned } from '../kit/table.ts'

/** One size, medians over the runs. */
export interface SizeResult {
  mails: number
  runs: number
  serveSeconds: number
  serveRate: number
  triggerMs: number
  rawSeconds: number
  rawRate: number
  /** Median of the per-run ratios serve rate ÷ raw pool rate. */
  ratio: number
}

export interface RssResult { recipients: number, startRssMb: number, peakRssMb: number, sent: number, seconds: number, finished: boolean }

/** serve's CPU over a job sent to a sink outside it, ÷ its e-mails. */
export interface CpuResult { mails: number, runs: number, msPerMail: number }

export interface Target { figure: string, value: string, bar: string, goal: string, verdict: string }

function verdict (value: number, bar: number, goal: number, higherIsBetter: boolean): string {
  const meets = (limit: number): boolean => (higherIsBetter ? value >= limit : value <= limit)
  if (Number.isNaN(value)) return 'not measured'
  return meets(goal) ? 'met (goal too)' : meets(bar) ? 'bar met, goal not' : 'NOT met'
}

/** Issue 14's targets, and the peak RSS bar of issue 11. */
export function targets (sizes: readonly SizeResult[], cpu: CpuResult | undefined, rss: RssResult | undefined): Target[] {
  const one = sizes.find((r) => r.mails === 1000)
  const out: Target[] = []
  if (one !== undefined) {
    out.push({ figure: '1,000 e-mails, trigger → last 250 at the embedded sink', value: `${one.serveSeconds.toFixed(2)} s`, bar: '≤ 0.7 s', goal: '≤ 0.5 s', verdict: verdict(one.serveSeconds, 0.7, 0.5, false) })
  }
  if (cpu !== undefined) {
    out.push({ figure: `worker CPU per e-mail (${cpu.mails.toLocaleString('en')}-recipient job)`, value: `${cpu.msPerMail.toFixed(3)} ms`, bar: '≤ 0.35 ms', goal: '≤ 0.25 ms', verdict: verdict(cpu.msPerMail, 0.35, 0.25, false) })
  }
  for (const r of sizes) {
    out.push({ figure: `job rate ÷ raw nodemailer pool, ${r.mails.toLocaleString('en')} e-mails`, value: `${r.ratio.toFixed(2)}×`, bar: '≥ 1.5×', goal: '≥ 2×', verdict: verdict(r.ratio, 1.5, 2, true) })
  }
  if (rss !== undefined) {
    const value = rss.finished ? rss.peakRssMb : NaN
    out.push({ figure: `peak RSS of serve, ${rss.recipients.toLocaleString('en')}-recipient job (issue 11)`, value: `${rss.peakRssMb.toFixed(0)} MB${rss.finished ? '' : ' (job unfinished)'}`, bar: '≤ 200 MB', goal: '≤ 200 MB', verdict: verdict(value, 200, 200, false) })
  }
  return out
}

export interface Report {
  header: string[]
  sizes: SizeResult[]
  naive: { count: number, seconds: number }
  cpu: CpuResult | undefined
  rss: RssResult | undefined
  targets: Target[]
}

/** The text report. */
export function render (r: Report): string {
  const rows: string[][] = [['', 'mails', 'time', 'mails/s', 'vs raw pool']]
  for (const s of r.sizes) {
    rows.push(['rawtrigger: trigger → last 250', s.mails.toLocaleString('en'), `${s.serveSeconds.toFixed(2)} s`, Math.round(s.serveRate).toLocaleString('en'), `${s.ratio.toFixed(2)}×`])
    rows.push(['raw nodemailer pool (same connections)', s.mails.toLocaleString('en'), `${s.rawSeconds.toFixed(2)} s`, Math.round(s.rawRate).toLocaleString('en'), '1.00×'])
  }
  const naiveRate = r.naive.count / r.naive.seconds
  const ref = r.sizes[0]
  rows.push(['naive loop, measured', String(r.naive.count), `${r.naive.seconds.toFixed(2)} s`, naiveRate.toFixed(1), ref === undefined ? '' : `${(naiveRate / ref.rawRate).toFixed(3)}×`])
  rows.push(['naive loop, EXTRAPOLATED', '1,000', `${(1000 / naiveRate).toFixed(1)} s`, naiveRate.toFixed(1), ''])
  const goals: string[][] = [['figure', 'measured', 'bar', 'goal', 'verdict'], ...r.targets.map((t) => [t.figure, t.value, t.bar, t.goal, t.verdict])]
  return [
    ...r.header,
    '',
    ...aligned(rows, (c) => c > 0, '   '),
    '',
    ...r.sizes.map((s) => `trigger() blocked the caller ${s.triggerMs.toFixed(1)} ms for the ${s.mails.toLocaleString('en')}-recipient job`),
    ...(r.cpu === undefined ? [] : [`worker CPU: ${r.cpu.msPerMail.toFixed(3)} ms per e-mail (serve's CPU over a ${r.cpu.mails.toLocaleString('en')}-recipient job sent to this process's sink, median of ${r.cpu.runs})`]),
    ...(r.rss === undefined ? [] : [`peak RSS of serve, ${r.rss.recipients.toLocaleString('en')}-recipient job: ${r.rss.peakRssMb.toFixed(0)} MB (${r.rss.startRssMb.toFixed(0)} MB at start); ` +
      `${r.rss.sent.toLocaleString('en')} sent in ${r.rss.seconds.toFixed(0)} s${r.rss.finished ? '' : ' — stopped waiting, job unfinished'}`]),
    '',
    'Targets (issue 14; medians of the runs)',
    ...aligned(goals, () => false, '  ').map((l) => `  ${l}`),
  ].join('\n') + '\n'
}
