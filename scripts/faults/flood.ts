// The client side of the harness: triggers fired without pause at one or more serve URLs, each
// with its own `webhook-id` (so the job id is known without reading the answer), and a ledger of
// what every one of them got back. A trigger is fired once and never resent: an unanswered one is
// simply not acknowledged, which is what the checker needs to tell "lost" from "never promised".
//
// Three clients: `new-connection` is rawtrigger's own `trigger()` with `ack: true` (a TCP connection
// per trigger, the fsockopen shape, status line read); `keep-alive` is node:http with a keep-alive
// agent (one request at a time per connection, `concurrency` connections); `php` is PHP's own
// fsockopen, one php process per slot (php-client.ts), where php is installed.
import http from 'node:http'
import { sign, trigger, TriggerError, type Secret } from 'rawtrigger'
import { startPhpFlood } from './php-client.ts'
import { sleep } from '../kit/scope.ts'

export type ClientMode = 'keep-alive' | 'new-connection' | 'php'
export const CLIENT_MODES: readonly ClientMode[] = ['keep-alive', 'new-connection', 'php']

/** What happened around the fault, for the per-phase counts. */
export type Phase = 'before' | 'fault' | 'after'

/** A trigger's answer, as the client saw it. */
export interface Outcome {
  id: string
  /** Index into the target list. */
  target: number
  /** Phase when it was answered (or failed). */
  phase: Phase
  status?: number
  /** The `error.code` of a refusal's JSON body, or the id of a 202's body. */
  code?: string
  bodyId?: string
  duplicate?: boolean
  /** The client's failure: `RT_ERR_CONNECT/ECONNREFUSED`, `ECONNRESET`, … */
  error?: string
}

/** Options of {@link startFlood}. */
export interface FloodOptions {
  mode: ClientMode
  /** serve URLs; triggers go round-robin over them. */
  targets: readonly string[]
  /** Triggers in flight at once. */
  concurrency: number
  /** Recipients per e-mail job. */
  recipients: number
  /** Prefix of every webhook-id: `<prefix>-<n>`. */
  idPrefix: string
  /** Signs every trigger (Standard Webhooks, the webhook-id as the message id). */
  secret?: Secret
}

/** A running flood. */
export interface Flood {
  /** Sets the phase the next answers are counted in. */
  phase (p: Phase): void
  /** Triggers answered or failed so far. */
  settled (): number
  /** The outcomes so far (a live view). */
  outcomes (): readonly Outcome[]
  /** Stops firing and waits for the triggers in flight to settle; returns every outcome. */
  stop (): Promise<Outcome[]>
}

/** A client that has just failed waits this long before its next trigger (no tight loop at a dead port). */
const ERROR_PAUSE_MS = 20
/** A request not answered within this counts as failed (the server is gone or stuck). */
const ANSWER_TIMEOUT_MS = 8_000
const CONNECT_TIMEOUT_MS = 3_000

/** The e-mail job every trigger carries: `recipients` addresses, a one-line text. */
export function jobBody (recipients: number): Record<string, unknown> {
  return {
    from: 'faults <faults@example.org>',
    subject: 'fault run',
    text: 'x',
    recipients: Array.from({ length: recipients }, (_, i) => `r${i}@example.org`),
  }
}

/** `{"id": …}` or `{"error": {"code": …}}` out of a JSON answer. */
function parseAnswer (text: string): Pick<Outcome, 'code' | 'bodyId' | 'duplicate'> {
  try {
    const json = JSON.parse(text) as { id?: unknown, duplicate?: unknown, error?: { code?: unknown } }
    const out: Pick<Outcome, 'code' | 'bodyId' | 'duplicate'> = {}
    if (typeof json.id === 'string') out.bodyId = json.id
    if (json.duplicate === true) out.duplicate = true
    if (typeof json.error?.code === 'string') out.code = json.error.code
    return out
  } catch {
    return {}
  }
}

function errorName (err: unknown): string {
  const e = err as { code?: unknown, cause?: { code?: unknown } }
  const code = typeof e.code === 'string' ? e.code : 'ERROR'
  const cause = typeof e.cause?.code === 'string' ? `/${e.cause.code}` : ''
  return err instanceof TriggerError || cause !== '' ? `${code}${cause}` : code
}

type Answer = Pick<Outcome, 'status' | 'code' | 'bodyId' | 'duplicate'>
type Fire = (url: string, id: string) => Promise<Answer>

function newConnectionClient (body: Record<string, unknown>, secret: Secret | undefined): Fire {
  return async (url, id) => {
    const result = await trigger(`${url}/jobs/email`, {
      ack: true, body, headers: { 'webhook-id': id }, connectTimeoutMs: CONNECT_TIMEOUT_MS, ackTimeoutMs: ANSWER_TIMEOUT_MS,
      ...(secret === undefined ? {} : { secret }),
    })
    const raw = result.response ?? ''
    const at = raw.indexOf('\r\n\r\n')
    return { ...(result.status === undefined ? {} : { status: result.status }), ...(at === -1 ? {} : parseAnswer(raw.slice(at + 4))) }
  }
}

function keepAliveClient (body: Record<string, unknown>, agent: http.Agent, secret: Secret | undefined): Fire {
  const payload = JSON.stringify(body)
  return (url, id) => new Promise((resolve, reject) => {
    const signed = secret === undefined ? { 'webhook-id': id } : sign(secret, payload, { id })
    const req = http.request(`${url}/jobs/email`, {
      method: 'POST', agent, timeout: ANSWER_TIMEOUT_MS,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...signed },
    }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (s: string) => { text += s })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...parseAnswer(text) }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer in time'), { code: 'ETIMEDOUT' })))
    req.on('error', reject)
    req.end(payload)
  })
}

/** A Node client; `php` resends through trigger(), like `new-connection`. */
function clientFor (mode: ClientMode, recipients: number, agent: http.Agent, secret?: Secret): Fire {
  const body = jobBody(recipients)
  return mode === 'keep-alive' ? keepAliveClient(body, agent, secret) : newConnectionClient(body, secret)
}

/**
 * Fires each of `ids` once at `url` (e.g. a client resending what was never acknowledged, with the
 * same webhook-id), `concurrency` at a time; the answers count as phase `after`.
 */
export async function fireOnce (mode: ClientMode, url: string, ids: readonly string[], concurrency: number, recipients: number, secret?: Secret): Promise<Outcome[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const fire = clientFor(mode, recipients, agent, secret)
  const outcomes: Outcome[] = []
  let next = 0
  const loop = async (): Promise<void> => {
    while (next < ids.length) {
      const id = ids[next++] as string
      try {
        outcomes.push({ id, target: 0, phase: 'after', ...await fire(url, id) })
      } catch (err) {
        outcomes.push({ id, target: 0, phase: 'after', error: errorName(err) })
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, () => loop()))
  agent.destroy()
  return outcomes
}

/** Starts firing at once; `stop()` ends it. */
export function startFlood (options: FloodOptions): Flood {
  if (options.mode === 'php') return startPhpFlood(options.targets, options.concurrency, jobBody(options.recipients), options.idPrefix)
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency })
  const fire = clientFor(options.mode, options.recipients, agent, options.secret)
  const outcomes: Outcome[] = []
  let phase: Phase = 'before'
  let next = 0
  let stopped = false

  const loop = async (): Promise<void> => {
    while (!stopped) {
      const n = next++
      const id = `${options.idPrefix}-${n}`
      const target = n % options.targets.length
      try {
        const answer = await fire(options.targets[target] as string, id)
        outcomes.push({ id, target, phase, ...answer })
      } catch (err) {
        outcomes.push({ id, target, phase, error: errorName(err) })
        await sleep(ERROR_PAUSE_MS)
      }
    }
  }
  const loops = Array.from({ length: options.concurrency }, () => loop())
  return {
    phase: (p) => { phase = p },
    settled: () => outcomes.length,
    outcomes: () => outcomes,
    async stop () {
      stopped = true
      await Promise.all(loops)
      agent.destroy()
      return outcomes
    },
  }
}
