// autocannon, run programmatically, in two modes: keep-alive, and a new connection per request.
//
// Verified in node_modules/autocannon (9.0.0), lib/httpClient.js: `reconnectRate: N` makes each
// connection close and reconnect after its N-th response, so `reconnectRate: 1` is a new TCP
// connection per request, closed by the client after reading the answer (the fsockopen shape). But
// on that path kOnMessageComplete returns before `emit('response')`, so autocannon's own result
// counts no responses at all (0 req/s, empty latency histogram). The other way, a `Connection:
// close` header, is sent next to the `Connection: keep-alive` that autocannon always writes, and
// the stale request it writes to the closing socket skews its latencies. So: `reconnectRate: 1`,
// with the counting done here through `setupClient` hooks ('request' before each write,
// 'headers' on each status line) — the same hooks in both modes, so both are measured alike.
//
// Stop: at the end of the duration every client finishes the request it has in flight and then
// stops (its `responseMax` is set to what it has sent), so nothing is left unanswered and
// sent = answered exactly; autocannon's own duration is only the hard limit behind that.
import { createRequire } from 'node:module'
import { rank, sorted as sortedOf } from '../kit/stats.ts'

const STOP_GRACE_S = 10 // hard limit after the soft stop: autocannon destroys what is left
const REQUEST_TIMEOUT_S = 10 // autocannon's per-request timeout (counted in `errors`)
const PROGRESS_MS = 1_000

/** The parts of autocannon's Client this uses (lib/httpClient.js). */
interface Client {
  on (event: 'request', fn: () => void): void
  on (event: 'headers', fn: (h: { statusCode: number }) => void): void
  reqsMade: number
  responseMax?: number
}

interface AutocannonResult { errors: number }
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

export type CannonMode = 'keep-alive' | 'new-connection'

/** Latency percentiles, ms (request written → status line read). */
export interface Latency { p50: number, p975: number, p99: number, max: number }

export interface CannonResult {
  /** Requests written. */
  sent: number
  /** Status lines read that were 2xx, and the others. */
  ok: number
  non2xx: number
  /** autocannon's errors (connection errors and timeouts). */
  errors: number
  /** First request → last answer. */
  seconds: number
  /** 2xx answers per second. */
  rate: number
  latency: Latency
}

export interface CannonOptions {
  mode: CannonMode
  connections: number
  durationS: number
  body: string
  /** Called about once a second with the answers so far. */
  onProgress?: (answered: number, elapsedS: number) => void
}

/** Nearest-rank percentiles of a list of milliseconds. */
export function percentiles (values: number[]): Latency {
  const sorted = sortedOf(values)
  return { p50: rank(sorted, 50), p975: rank(sorted, 97.5), p99: rank(sorted, 99), max: rank(sorted, 100) }
}

export async function cannon (url: string, options: CannonOptions): Promise<CannonResult> {
  const clients: Client[] = []
  const latencies: number[] = []
  let sent = 0
  let responses = 0
  let ok = 0
  let first = Infinity
  let last = 0

  function setupClient (client: Client): void {
    clients.push(client)
    let t0 = 0
    client.on('request', () => {
      t0 = performance.now()
      if (t0 < first) first = t0
      sent++
    })
    client.on('headers', ({ statusCode }) => {
      last = performance.now()
      latencies.push(last - t0)
      responses++
      if (statusCode >= 200 && statusCode < 300) ok++
    })
  }

  const start = performance.now()
  const progress = setInterval(() => options.onProgress?.(responses, (performance.now() - start) / 1000), PROGRESS_MS)
  const softStop = setTimeout(() => {
    for (const c of clients) c.responseMax = Math.max(1, c.reqsMade)
  }, options.durationS * 1000)
  let result: AutocannonResult
  try {
    result = await autocannon({
      url,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: options.body,
      connections: options.connections,
      duration: options.durationS + STOP_GRACE_S,
      timeout: REQUEST_TIMEOUT_S,
      ...(options.mode === 'new-connection' ? { reconnectRate: 1 } : {}),
      setupClient,
    })
  } finally {
    clearInterval(progress)
    clearTimeout(softStop)
  }
  const seconds = Math.max(0, last - (Number.isFinite(first) ? first : last)) / 1000
  return { sent, ok, non2xx: responses - ok, errors: result.errors, seconds, rate: seconds > 0 ? ok / seconds : 0, latency: percentiles(latencies) }
}
