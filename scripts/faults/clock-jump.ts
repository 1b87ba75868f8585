// Fault 8: the receiver's clock jumps while signed triggers pour in. The receiver runs in the
// harness's own process (createReceiver with `now`, the signature check's clock, off by the jump),
// on SQLite, with a secret; the clients sign every trigger with the right time. The clock jumps
// 10 minutes ahead (every signature looks stale), then 10 minutes back (from the future), then
// 4 minutes ahead (inside the 5-minute tolerance), then back to true time. Refusals must be 401
// naming the tolerance, never a crash or another status; jobs signed within tolerance are taken.
import { createReceiver, generateSecret, sign, startEmailService, TIMESTAMP_TOLERANCE_S, type Logger } from 'rawtrigger'
import { createLogger } from '../../src/log.ts'
import { jobBody, type ClientMode, type Flood, type Outcome } from './flood.ts'
import type { Fault, FaultContext } from './options.ts'
import { RowBuilder, type Row } from './row.ts'
import { sleep } from '../kit/scope.ts'
import { startSmtpSink } from './smtp-sink.ts'
import { floodAround, verifyStore } from './verify.ts'

/** How long each clock stays, mid-flood. */
const STEP_MS = 800
const MINUTE_MS = 60_000
/** The jumps, in order: outside the tolerance both ways, then inside it. */
const STEPS = [
  { name: 'ahead 10 min', skewMs: 10 * MINUTE_MS, accepted: false },
  { name: 'back 10 min', skewMs: -10 * MINUTE_MS, accepted: false },
  { name: 'ahead 4 min', skewMs: 4 * MINUTE_MS, accepted: true },
] as const

/** One signed trigger through fetch, with its answer read whole (the flood keeps only codes). */
async function probe (url: string, secret: string, id: string): Promise<{ id: string, status: number, code: string, message: string }> {
  const payload = JSON.stringify(jobBody(1))
  const res = await fetch(`${url}/jobs/email`, {
    method: 'POST', body: payload, signal: AbortSignal.timeout(5_000),
    headers: { 'content-type': 'application/json', ...sign(secret, payload, { id }) },
  })
  const json = await res.json().catch(() => ({})) as { error?: { code?: string, message?: string } }
  return { id, status: res.status, code: json.error?.code ?? '', message: json.error?.message ?? '' }
}

async function run (ctx: FaultContext, fault: string, mode: ClientMode): Promise<Row> {
  const row = new RowBuilder(fault, `the receiver's signature clock jumps ±10 min, then +4 min, during a signed ${mode} flood (SQLite, in-process)`, ctx.command(fault))
  try {
    const sink = await startSmtpSink()
    ctx.scope.defer(() => sink.close())
    const secret = generateSecret()
    const log: Logger = createLogger('silent')
    const email = await startEmailService({ smtpUrl: sink.url, log, maxConnections: ctx.options.poolSize, retryBaseMs: 500 })
    ctx.scope.defer(() => email.close())
    let skewMs = 0
    const receiver = await createReceiver({
      port: 0, dataDir: ctx.scope.tempDir('clock'), secret, logger: log, handlers: { email: email.handler }, now: () => Date.now() + skewMs,
    })
    ctx.scope.defer(() => receiver.close())
    const tolerance = `${TIMESTAMP_TOLERANCE_S} s`
    const probes: string[] = []
    const probed: Outcome[] = []
    const flood = await floodAround(ctx, { mode, targets: [receiver.url], idPrefix: `${fault}-${process.pid}`, secret }, async (f: Flood) => {
      for (const step of STEPS) {
        skewMs = step.skewMs
        const from = f.outcomes().length
        const p = await probe(receiver.url, secret, `${fault}-probe-${process.pid}-${probes.length}`)
        probes.push(`${step.name}: ${p.status}`)
        probed.push({ id: p.id, target: 0, phase: 'fault', status: p.status, ...(p.status === 202 ? { bodyId: p.id } : { code: p.code }) })
        if (step.accepted) {
          row.check(`clock ${step.name} (within ${tolerance}): a signed trigger answered 202`, p.status === 202, `${p.status} ${p.code}: ${p.message}`)
        } else {
          row.check(`clock ${step.name}: 401 RT_ERR_UNAUTHORIZED naming the timestamp check and ${tolerance}`,
            p.status === 401 && p.code === 'RT_ERR_UNAUTHORIZED' && p.message.includes('RT_ERR_SIGNATURE_TIMESTAMP') && p.message.includes(tolerance),
            `${p.status} ${p.code}: ${p.message}`)
        }
        await sleep(STEP_MS)
        const seen = f.outcomes().slice(from + ctx.options.concurrency) // past the requests verified before the jump
        const refused = seen.filter((o) => o.status === 401).length
        const taken = seen.filter((o) => o.status === 202).length
        row.set(`${step.name}: 202/401`, `${taken}/${refused}`)
        row.check(`clock ${step.name}: the flood ${step.accepted ? 'taken' : 'refused'}`, step.accepted ? taken > 0 && refused === 0 : refused > 0 && taken === 0,
          `${taken} × 202, ${refused} × 401 of ${seen.length}`)
      }
      skewMs = 0
    })
    const others = flood.outcomes.filter((o) => o.status !== 202 && o.status !== 401)
    row.check('only 202 or 401 answers, no client error', others.length === 0,
      `${others.length} others: ${[...new Set(others.map((o) => o.status ?? o.error))].slice(0, 5).join(', ')}`)
    const wrong401 = flood.outcomes.filter((o) => o.status === 401 && o.code !== 'RT_ERR_UNAUTHORIZED').length
    row.check('every 401 carries RT_ERR_UNAUTHORIZED', wrong401 === 0, `${wrong401} without it`)
    // The probes are triggers too: the one answered 202 must be stored and mailed like the rest.
    await verifyStore(ctx, row, { ...flood, outcomes: [...flood.outcomes, ...probed] }, { url: receiver.url, sink, mode, crashes: 0, secret })
    const health = await fetch(`${receiver.url}/healthz`, { signal: AbortSignal.timeout(5_000) })
    row.check('the receiver stayed up', health.status === 200, `/healthz ${health.status}`)
    row.note(`probes: ${probes.join(', ')}`)
    return row.finish()
  } catch (err) {
    return row.error(err)
  }
}

/** One row: the first client mode. */
export function clockJumpFaults (modes: readonly ClientMode[]): Fault[] {
  const mode = modes[0] ?? 'keep-alive'
  return [{ name: `clock-jump-${mode}`, needs: 'sqlite', run: (ctx) => run(ctx, `clock-jump-${mode}`, mode) }]
}
