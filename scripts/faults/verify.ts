// The two halves every flood fault shares: a flood with the fault injected in its middle, and the
// standard checks on what came out — nothing acknowledged lost, nothing invented, nothing stored
// twice, every stored job done, every recipient of a stored job mailed (duplicates bounded).
import type { Secret } from 'rawtrigger'
import { clientFigures, mailFigures, storeFigures, waitSettled } from './check.ts'
import { fireOnce, startFlood, type ClientMode, type Flood, type Outcome } from './flood.ts'
import type { FaultContext } from './options.ts'
import type { RowBuilder } from './row.ts'
import { sleep } from '../kit/scope.ts'
import type { SmtpSink } from './smtp-sink.ts'

/** What {@link floodAround} saw. */
export interface FloodRun {
  outcomes: Outcome[]
  /** Flood length, fault included. */
  floodMs: number
  /** Time the fault itself took (kill and restart, Redis away, the disk full). */
  faultMs: number
}

/**
 * Floods `targets` for half of `floodMs`, runs `fault` (answers meanwhile count as phase
 * `fault`), floods the other half, then stops and waits for what is in flight.
 */
export async function floodAround (ctx: FaultContext, flood: { mode: ClientMode, targets: readonly string[], idPrefix: string, secret?: Secret },
  fault: (flood: Flood) => Promise<void>): Promise<FloodRun> {
  const { options } = ctx
  const started = performance.now()
  const f = startFlood({ ...flood, concurrency: options.concurrency, recipients: options.recipients })
  try {
    await sleep(options.floodMs / 2)
    ctx.progress(`${f.settled()} triggers answered; fault`)
    f.phase('fault')
    const t0 = performance.now()
    await fault(f)
    const faultMs = Math.round(performance.now() - t0)
    f.phase('after')
    ctx.progress(`fault over after ${faultMs} ms; flooding on`)
    await sleep(options.floodMs / 2)
    const outcomes = await f.stop()
    return { outcomes, floodMs: Math.round(performance.now() - started), faultMs }
  } catch (err) {
    await f.stop()
    throw err
  }
}

/** Options of {@link verifyStore}. */
export interface VerifyOptions {
  /** A serve that answers for the whole store once the fault is over. */
  url: string
  sink: SmtpSink
  /** The flood's client, also used to resend what was not acknowledged. */
  mode: ClientMode
  /** Crashes of a sending serve: each may resend what was in flight (the pool size). */
  crashes: number
  /** Extra copies allowed on top of `crashes` × pool size. */
  extraDuplicates?: number
  /** serve's secret: the checker's reads and the resends are signed with it. */
  secret?: Secret
}

function states (counts: Record<string, number>): string {
  return Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'
}

/**
 * Waits for the store to settle, then adds the client, store and mail figures and their checks.
 * When stored jobs are left unfinished, the clients then do what a sender with an idempotency key
 * does: resend every unacknowledged trigger once, same webhook-id. Whether that mends the store
 * is a check of its own; the row still fails for the jobs that were stuck without it.
 */
export async function verifyStore (ctx: FaultContext, row: RowBuilder, run: FloodRun, v: VerifyOptions): Promise<void> {
  const client = clientFigures(run.outcomes)
  row.client(client, run.outcomes, run.floodMs - run.faultMs)
  const byPhase = row.row.client?.byPhase
  row.check('the flood was acknowledged before and after the fault', (byPhase?.before['202'] ?? 0) > 0 && (byPhase?.after['202'] ?? 0) > 0,
    `202 before ${byPhase?.before['202'] ?? 0}, after ${byPhase?.after['202'] ?? 0}`)
  row.check('202s name their own webhook-id', client.wrongAnswers === 0, `${client.wrongAnswers} 202s with another id or duplicate: true`)
  ctx.progress(`${client.sent} fired, ${client.acked} acknowledged; waiting for every stored job to finish`)
  const settle = await waitSettled(v.url, ctx.options.settleMs)
  let { figures, jobs } = await storeFigures(v.url, run.outcomes, v.secret)
  row.row.store = figures
  row.set('settled ms', settle.waitedMs)
  row.check('lost = acknowledged − stored = 0', figures.lost === 0, `${figures.lost} of ${client.acked} acknowledged jobs are not stored${figures.lostIds.length > 0 ? ` (${figures.lostIds.join(', ')})` : ''}`)
  row.check('no job invented', figures.invented === 0, `${figures.invented} stored jobs under ids no client sent`)
  row.check('no job stored twice', figures.storedTwice === 0, `${figures.storedTwice} ids listed twice`)
  row.check('every stored job done', figures.notDone === 0,
    `${figures.notDone} of ${figures.stored} not done (${states(figures.notDoneStates)}), ${figures.notDoneUnacked} of them never acknowledged` +
    `${figures.notDoneAckedIds.length > 0 ? ` (acknowledged: ${figures.notDoneAckedIds.join(', ')})` : ''}; ` +
    `gave up after ${settle.waitedMs} ms${settle.settled ? '' : ' (no progress, or --settle-ms)'}`)
  if (figures.notDone > 0) {
    const acked = new Set(run.outcomes.filter((o) => o.status === 202).map((o) => o.id))
    const unacked = [...new Set(run.outcomes.filter((o) => !acked.has(o.id)).map((o) => o.id))]
    ctx.progress(`${figures.notDone} jobs stuck; resending the ${unacked.length} unacknowledged triggers once`)
    const again = await fireOnce(v.mode, v.url, unacked, ctx.options.concurrency, ctx.options.recipients, v.secret)
    const settleAgain = await waitSettled(v.url, ctx.options.settleMs)
    ;({ figures, jobs } = await storeFigures(v.url, [...run.outcomes, ...again], v.secret))
    row.set('resent', unacked.length)
    row.set('not done after the resend', figures.notDone)
    row.check('after resending the unacknowledged triggers once, every stored job done', figures.notDone === 0 && figures.lost === 0,
      `${figures.notDone} of ${figures.stored} not done (${states(figures.notDoneStates)}) after ${settleAgain.waitedMs} ms, lost ${figures.lost}`)
  }
  const mail = mailFigures(v.sink, jobs)
  row.row.mail = mail
  const allowed = v.crashes * ctx.options.poolSize + (v.extraDuplicates ?? 0)
  row.check('no recipient failed', figures.failedItems === 0, `${figures.failedItems} recipients failed`)
  row.check('every recipient of a stored job mailed', mail.delivered === mail.expected, `${mail.delivered} of ${mail.expected} delivered`)
  row.check('no mail for a job nobody stored', mail.invented === 0, `${mail.invented} messages of unknown jobs`)
  row.check(`duplicates ≤ ${allowed}`, mail.duplicates <= allowed, `${mail.duplicates} extra copies (${v.crashes} crash(es) × pool ${ctx.options.poolSize})`)
}
