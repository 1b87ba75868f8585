// One row of the harness's output: a fault, the figures it produced, the checks on them, and a
// verdict. PASS only when every check held; a fault that could not be set up here (not root, no
// redis-server) is SKIP with the reason, never a PASS.
import type { ClientFigures, MailFigures, StoreFigures } from './check.ts'
import type { Phase, Outcome } from './flood.ts'

export type Verdict = 'PASS' | 'FAIL' | 'SKIP'

/** One check on the figures. */
export interface Check { name: string, ok: boolean, detail: string }

/** The result of one fault. */
export interface Row {
  fault: string
  /** What was done, in a line. */
  title: string
  verdict: Verdict
  seconds: number
  client?: ClientFigures & {
    /** 202s per second of flood while the fault was not on (the flood minus the fault's time). */
    rate: number
    /** Answers (status or error) per phase. */
    byPhase: Record<Phase, Record<string, number>>
  }
  store?: StoreFigures
  mail?: MailFigures
  /** Figures of this fault alone (downtime, retries, the exit code of a refused start, …). */
  extra: Record<string, number | string | boolean>
  checks: Check[]
  /** Why it was skipped, what was seen in serve's stderr, … */
  notes: string[]
  /** The command that runs this row alone. */
  command: string
}

/** Collects a row's figures and checks while a fault runs. */
export class RowBuilder {
  readonly row: Row
  readonly #started = performance.now()

  constructor (fault: string, title: string, command: string) {
    this.row = { fault, title, verdict: 'PASS', seconds: 0, extra: {}, checks: [], notes: [], command }
  }

  check (name: string, ok: boolean, detail: string): boolean {
    this.row.checks.push({ name, ok, detail })
    return ok
  }

  note (text: string): void {
    this.row.notes.push(text)
  }

  set (key: string, value: number | string | boolean): void {
    this.row.extra[key] = value
  }

  /** Client figures plus the answer rate and the per-phase counts. */
  client (figures: ClientFigures, outcomes: readonly Outcome[], upMs: number): void {
    const byPhase: Record<Phase, Record<string, number>> = { before: {}, fault: {}, after: {} }
    for (const o of outcomes) {
      const key = o.status === undefined ? (o.error ?? 'no answer') : String(o.status)
      byPhase[o.phase][key] = (byPhase[o.phase][key] ?? 0) + 1
    }
    this.row.client = { ...figures, rate: upMs > 0 ? Math.round(figures.acked / (upMs / 1000)) : 0, byPhase }
  }

  skip (reason: string): Row {
    this.row.verdict = 'SKIP'
    this.note(reason)
    return this.finish()
  }

  /** An exception of the harness or of serve's start: the row fails with it. */
  error (err: unknown): Row {
    this.check('ran to the end', false, (err as Error).message.split('\n').slice(0, 6).join(' | '))
    return this.finish()
  }

  finish (): Row {
    this.row.seconds = Math.round((performance.now() - this.#started) / 100) / 10
    if (this.row.verdict !== 'SKIP') this.row.verdict = this.row.checks.every((c) => c.ok) ? 'PASS' : 'FAIL'
    return this.row
  }
}

const n = (v: number): string => v.toLocaleString('en-US')

/** The row as one line of figures (and, for a FAIL, the failed checks under it). */
export function formatRow (row: Row): string {
  const parts: string[] = []
  const c = row.client
  if (c !== undefined) parts.push(`sent ${n(c.sent)}`, `202 ${n(c.acked)} (${n(c.rate)}/s)`)
  const s = row.store
  if (s !== undefined) {
    parts.push(`stored ${n(s.stored)}`, `lost ${s.lost}`, `invented ${s.invented}`, `twice ${s.storedTwice}`,
      `unacked-stored ${s.unackedStored}`, `not done ${s.notDone}`)
  }
  const m = row.mail
  if (m !== undefined) parts.push(`mail ${n(m.delivered)}/${n(m.expected)} dup ${m.duplicates}`)
  for (const [k, v] of Object.entries(row.extra)) parts.push(`${k} ${typeof v === 'number' ? n(v) : String(v)}`)
  const head = `${row.verdict.padEnd(4)} ${row.fault.padEnd(30)} ${parts.join(', ')} (${row.seconds} s)`
  const lines = [head]
  for (const check of row.checks) if (!check.ok) lines.push(`       ✗ ${check.name}: ${check.detail}`)
  if (row.verdict !== 'PASS') for (const note of row.notes) lines.push(`       · ${note}`)
  return lines.join('\n')
}
