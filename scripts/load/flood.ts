// Raw triggers at a target: fireMany (a new connection per trigger, fire-and-forget), the
// keep-alive trigger pool, a sequential trigger() loop, and PHP's fsockopen loop, each timed here.
import net from 'node:net'
import { buildRequest, createTriggerPool, fireMany, trigger } from 'rawtrigger'
import type { OnProgress } from '../kit/progress.ts'
import { phpLoop } from '../bench/php.ts'
import { addError, errorCode, repeat, timeLoop, type Loop } from '../kit/stats.ts'
import { percentiles, type Latency } from './cannon.ts'

/** The job every load phase sends: one e-mail to one recipient. */
export const JOB = { subject: 's', text: 't', recipients: ['a@example.org'] } as const

export type { OnProgress }

export interface FloodResult {
  kind: 'fireMany' | 'pool' | 'trigger' | 'net' | 'php'
  /** Calls made; `sent` of them were handed to the kernel without an error. */
  calls: number
  sent: number
  failed: number
  errors: Record<string, number>
  /** First call → last call released (pool: last fire resolved). */
  seconds: number
  /** sent / seconds. */
  rate: number
  /** Caller-blocking time per call, µs (call → promise resolved); fireMany has none. */
  blockingUs?: Latency
  /** Pool only: first fire → every answer read (drain), and the answers by status. */
  drainSeconds?: number
  drainRate?: number
  statuses?: Record<string, number>
  resent?: number
}

/** A sequential loop's result. */
function looped (kind: 'trigger' | 'net', n: number, loop: Loop): FloodResult {
  const sent = loop.blockingUs.length
  return { kind, calls: n, sent, failed: n - sent, errors: loop.errors, seconds: loop.seconds, rate: sent / loop.seconds, blockingUs: percentiles(loop.blockingUs) }
}

/** `n` triggers through fireMany at `concurrency`. */
export async function floodFireMany (url: string, n: number, concurrency: number, onProgress: OnProgress): Promise<FloodResult> {
  const summary = await fireMany(url, repeat(JOB, n, onProgress), { concurrency })
  const errors: Record<string, number> = {}
  for (const e of summary.errors) addError(errors, errorCode(e.error))
  return {
    kind: 'fireMany', calls: n, sent: summary.sent, failed: summary.failed, errors,
    seconds: summary.totalMs / 1000, rate: summary.perSecond,
  }
}

/** `n` fires through a keep-alive pool, each awaited (its caller-blocking time), then drain(). */
export async function floodPool (url: string, n: number, connections: number, onProgress: OnProgress): Promise<FloodResult> {
  const pool = createTriggerPool(url, { connections })
  const start = performance.now()
  const { blockingUs, errors, seconds } = await timeLoop(n, () => pool.fire({ body: JOB }), onProgress)
  const sent = blockingUs.length
  await pool.drain()
  const drainSeconds = (performance.now() - start) / 1000
  const stats = pool.stats()
  await pool.close().catch((err: unknown) => { addError(errors, errorCode(err)) })
  // A request given up after its resends was written but never answered: counted as failed.
  return {
    kind: 'pool', calls: n, sent: sent - stats.failed, failed: n - sent + stats.failed, errors,
    seconds, rate: sent / seconds, blockingUs: percentiles(blockingUs),
    drainSeconds, drainRate: (sent - stats.failed) / drainSeconds,
    statuses: { ...stats.statuses }, resent: stats.resent,
  }
}

/** `n` trigger() calls one after another, each timed. */
export async function floodTrigger (url: string, n: number, onProgress: OnProgress): Promise<FloodResult> {
  return looped('trigger', n, await timeLoop(n, () => trigger(url, { body: JOB }), onProgress))
}

/**
 * Node's floor for a fire-and-forget trigger: `net.connect()` then `end(bytes)`, released at the
 * write callback — what trigger() does, without its checks, timers and result. `n` calls in a row.
 */
export async function floodNet (url: string, n: number, onProgress: OnProgress): Promise<FloodResult> {
  const u = new URL(url)
  const bytes = buildRequest(url, { body: JOB })
  const once = (): Promise<void> => new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname)
    socket.once('error', reject)
    socket.end(bytes, () => {
      socket.destroy()
      resolve()
    })
  })
  return looped('net', n, await timeLoop(n, once, onProgress))
}

/** `n` fsockopen + fwrite + fclose in one php process (scripts/bench/fsockopen.php), sending the bytes trigger() sends. */
export async function floodPhp (url: string, n: number): Promise<FloodResult> {
  const u = new URL(url)
  const run = await phpLoop({ host: u.hostname, port: Number(u.port) }, buildRequest(url, { body: JOB }), 0, n)
  const sent = run.durationsNs.length
  return {
    kind: 'php', calls: n, sent, failed: n - sent, errors: run.errors,
    seconds: run.seconds, rate: sent / run.seconds, blockingUs: percentiles(run.durationsNs.map((v) => v / 1_000)),
  }
}
