// Fault 6: the SMTP server gone in the middle of a big e-mail job. The harness's sink takes the
// first fifth of the recipients, then stops (port closed, open connections cut) for
// --smtp-outage-ms and comes back on the same port. Every recipient must be delivered once it is
// back, none failed, duplicates no more than the messages in flight when it went (the pool size),
// and the tries while it was gone bounded by the backoff (no tight loop).
import { startServe } from './serve.ts'
import { fireOnce } from './flood.ts'
import type { Fault, FaultContext } from './options.ts'
import { RowBuilder, type Row } from './row.ts'
import { freePort, sleep, until } from '../kit/scope.ts'
import { startSmtpSink } from './smtp-sink.ts'
import { sqliteArgs } from './sqlite-kill.ts'

/** serve's first retry wait after a failed send in this row; doubled per try, ±25 % jitter. */
const RETRY_BASE_MS = 1_000
/** Share of the recipients delivered before the server goes. */
const BEFORE_SHARE = 0.2
const POLL_MS = 250

interface JobView { state: string, total: number, sent: number, failed: number }

async function job (url: string, id: string): Promise<JobView> {
  const res = await fetch(`${url}/jobs/${id}`, { signal: AbortSignal.timeout(10_000) })
  if (res.status !== 200) throw new Error(`GET /jobs/${id} answered ${res.status}`)
  return await res.json() as JobView
}

/** Failed sends so far (retried or failed for good), from serve's /metrics. */
async function failedTries (url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  let n = 0
  for (const outcome of ['retry', 'failed']) {
    const m = new RegExp(`^rawtrigger_emails_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)
    n += Number(m?.[1] ?? 0)
  }
  return n
}

/**
 * Tries one recipient can make in `ms` when every try fails at once: the first, then one after
 * each backoff wait, the shortest being 0.75 × base × 2^(k-1).
 */
export function maxTries (ms: number, baseMs: number): number {
  return 1 + Math.floor(Math.log2(ms / (0.75 * baseMs) + 1))
}

async function run (ctx: FaultContext, fault: string): Promise<Row> {
  const { bigJob, smtpOutageMs, settleMs, poolSize } = ctx.options
  const row = new RowBuilder(fault, `the SMTP server gone for ${smtpOutageMs} ms in the middle of a ${bigJob}-recipient job, back on the same port`, ctx.command(fault))
  try {
    const sink = await startSmtpSink()
    ctx.scope.defer(() => sink.close())
    // Enough tries that the backoff outlasts the outage twice over: nothing fails for good.
    const attempts = maxTries(2 * smtpOutageMs, RETRY_BASE_MS) + 1
    const args = sqliteArgs(ctx, ctx.scope.tempDir('smtp'), await freePort(), sink.url, 'thread')
    args.push('--retry-base-ms', String(RETRY_BASE_MS), '--max-attempts', String(attempts)) // the later flag wins
    const serve = await startServe(ctx.scope, args)
    const id = `big-${process.pid}`
    const [answer] = await fireOnce('new-connection', serve.url, [id], 1, bigJob)
    if (answer?.status !== 202) throw new Error(`the job was not accepted: ${JSON.stringify(answer)}`)
    ctx.progress(`${bigJob}-recipient job ${id} accepted; waiting for ${Math.round(bigJob * BEFORE_SHARE)} deliveries`)
    const started = await until(() => sink.tally().accepted >= bigJob * BEFORE_SHARE, settleMs, 20)
    if (!started) throw new Error(`only ${sink.tally().accepted} of ${bigJob} delivered within ${settleMs} ms`)
    const triesBefore = await failedTries(serve.url)
    await sink.stop()
    const atStop = await job(serve.url, id)
    row.set('delivered before', sink.tally().accepted)
    ctx.progress(`SMTP server stopped at ${atStop.sent} sent; back in ${smtpOutageMs} ms`)
    await sleep(smtpOutageMs)
    const triesDuring = await failedTries(serve.url) - triesBefore
    await sink.start()
    const back = performance.now()
    const done = await until(async () => (await job(serve.url, id)).state === 'done', settleMs, POLL_MS)
    const end = await job(serve.url, id)
    const recoveredMs = Math.round(performance.now() - back)
    const waiting = Math.max(1, atStop.total - atStop.sent - atStop.failed)
    const perRecipient = Math.round(triesDuring / waiting * 10) / 10
    const bound = maxTries(smtpOutageMs, RETRY_BASE_MS)
    let delivered = 0
    let duplicates = 0
    for (const [messageId, n] of sink.counts) {
      if (!messageId.startsWith(`${id}.`)) continue
      delivered++
      duplicates += n - 1
    }
    row.row.mail = { expected: bigJob, delivered, duplicates, invented: sink.counts.size - delivered }
    row.set('failed tries while down', triesDuring)
    row.set('per waiting recipient', perRecipient)
    row.set('done ms after it came back', recoveredMs)
    row.set('--max-attempts', attempts)
    row.check('the job finished', done && end.state === 'done', `state ${end.state} after ${recoveredMs} ms`)
    row.check('every recipient sent, none failed', end.sent === bigJob && end.failed === 0, `sent ${end.sent}, failed ${end.failed} of ${bigJob}`)
    row.check('every recipient delivered at the server', delivered === bigJob, `${delivered} of ${bigJob} distinct messages`)
    row.check(`duplicates ≤ pool size ${poolSize}`, duplicates <= poolSize, `${duplicates} extra copies`)
    row.check(`no tight loop: tries per waiting recipient ≤ ${bound} (the backoff's most in ${smtpOutageMs} ms)`, perRecipient <= bound,
      `${triesDuring} failed tries for ${waiting} waiting recipients`)
    return row.finish()
  } catch (err) {
    return row.error(err)
  }
}

/** The SMTP outage row. */
export function smtpOutageFaults (): Fault[] {
  return [{ name: 'smtp-outage', needs: 'sqlite', run: (ctx) => run(ctx, 'smtp-outage') }]
}
