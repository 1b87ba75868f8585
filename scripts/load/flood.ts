// Raw triggers at a target: fireMany (a new connection per trigger, fire-and-forget), the
// keep-alive trigger pool, a sequential trigger() loop, and PHP's fsockopen loop, each timed here.
import { execFile } from 'node:child_process'
import net from 'node:net'
import { buildRequest, createTriggerPool, fireMany, trigger } from 'rawtrigger'
import { percentiles, type Latency } from './cannon.ts'

/** The job every load phase sends: one e-mail to one recipient. */
export const JOB = { subject: 's', text: 't', recipients: ['a@example.org'] } as const

const PROGRESS_EVERY = 1_000
const PHP_TIMEOUT_MS = 5 * 60_000
const PHP_MAX_OUTPUT_BYTES = 64 * 1024 * 1024

export type OnProgress = (done: number, total: number) => void

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

function code (err: unknown): string {
  const e = err as { code?: unknown, cause?: { code?: unknown } }
  const own = typeof e.code === 'string' ? e.code : 'unknown'
  return typeof e.cause?.code === 'string' && e.cause.code !== own ? `${own}/${e.cause.code}` : own
}

function count (errors: Record<string, number>, key: string): void {
  errors[key] = (errors[key] ?? 0) + 1
}

/** `n` triggers through fireMany at `concurrency`. */
export async function floodFireMany (url: string, n: number, concurrency: number, onProgress: OnProgress): Promise<FloodResult> {
  function * bodies (): Generator<typeof JOB> {
    for (let i = 0; i < n; i++) {
      if (i % PROGRESS_EVERY === 0) onProgress(i, n)
      yield JOB
    }
  }
  const summary = await fireMany(url, bodies(), { concurrency })
  const errors: Record<string, number> = {}
  for (const e of summary.errors) count(errors, code(e.error))
  return {
    kind: 'fireMany', calls: n, sent: summary.sent, failed: summary.failed, errors,
    seconds: summary.totalMs / 1000, rate: summary.perSecond,
  }
}

/** `n` fires through a keep-alive pool, each awaited (its caller-blocking time), then drain(). */
export async function floodPool (url: string, n: number, connections: number, onProgress: OnProgress): Promise<FloodResult> {
  const pool = createTriggerPool(url, { connections })
  const blocking = new Array<number>(n)
  const errors: Record<string, number> = {}
  let sent = 0
  const start = performance.now()
  for (let i = 0; i < n; i++) {
    if (i % PROGRESS_EVERY === 0) onProgress(i, n)
    const t0 = process.hrtime.bigint()
    try {
      await pool.fire({ body: JOB })
      blocking[sent++] = Number(process.hrtime.bigint() - t0) / 1_000
    } catch (err) {
      count(errors, code(err))
    }
  }
  const fired = performance.now()
  await pool.drain()
  const drained = performance.now()
  const stats = pool.stats()
  await pool.close().catch((err: unknown) => { count(errors, code(err)) })
  const seconds = (fired - start) / 1000
  const drainSeconds = (drained - start) / 1000
  // A request given up after its resends was written but never answered: counted as failed.
  return {
    kind: 'pool', calls: n, sent: sent - stats.failed, failed: n - sent + stats.failed, errors,
    seconds, rate: sent / seconds, blockingUs: percentiles(blocking.slice(0, sent)),
    drainSeconds, drainRate: (sent - stats.failed) / drainSeconds,
    statuses: { ...stats.statuses }, resent: stats.resent,
  }
}

/** `n` trigger() calls one after another, each timed. */
export async function floodTrigger (url: string, n: number, onProgress: OnProgress): Promise<FloodResult> {
  const blocking: number[] = []
  const errors: Record<string, number> = {}
  const start = performance.now()
  for (let i = 0; i < n; i++) {
    if (i % PROGRESS_EVERY === 0) onProgress(i, n)
    const t0 = process.hrtime.bigint()
    try {
      await trigger(url, { body: JOB })
      blocking.push(Number(process.hrtime.bigint() - t0) / 1_000)
    } catch (err) {
      count(errors, code(err))
    }
  }
  const seconds = (performance.now() - start) / 1000
  return {
    kind: 'trigger', calls: n, sent: blocking.length, failed: n - blocking.length, errors,
    seconds, rate: blocking.length / seconds, blockingUs: percentiles(blocking),
  }
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
  const blocking: number[] = []
  const errors: Record<string, number> = {}
  const start = performance.now()
  for (let i = 0; i < n; i++) {
    if (i % PROGRESS_EVERY === 0) onProgress(i, n)
    const t0 = process.hrtime.bigint()
    try {
      await once()
      blocking.push(Number(process.hrtime.bigint() - t0) / 1_000)
    } catch (err) {
      count(errors, code(err))
    }
  }
  const seconds = (performance.now() - start) / 1000
  return {
    kind: 'net', calls: n, sent: blocking.length, failed: n - blocking.length, errors,
    seconds, rate: blocking.length / seconds, blockingUs: percentiles(blocking),
  }
}

// The classic PHP trigger, timed around fsockopen + fwrite + fclose with hrtime(true).
// argv: host port count base64-request. Prints {"ns": [...], "errors": {...}, "seconds": S}.
const PHP_LOOP = `
[, $host, $port, $n, $b64] = $argv;
$req = base64_decode($b64); $ns = []; $errors = []; $start = hrtime(true);
for ($i = 0; $i < (int) $n; $i++) {
  $t0 = hrtime(true);
  $fp = @fsockopen($host, (int) $port, $errno, $errstr, 5);
  if ($fp === false) { $errors["errno $errno"] = ($errors["errno $errno"] ?? 0) + 1; continue; }
  $w = fwrite($fp, $req); fclose($fp);
  if ($w !== strlen($req)) { $errors['fwrite'] = ($errors['fwrite'] ?? 0) + 1; continue; }
  $ns[] = hrtime(true) - $t0;
}
echo json_encode(['ns' => $ns, 'errors' => (object) $errors, 'seconds' => (hrtime(true) - $start) / 1e9]);
`

/** `n` fsockopen + fwrite + fclose in one php process, sending the bytes trigger() sends. */
export async function floodPhp (url: string, n: number): Promise<FloodResult> {
  const u = new URL(url)
  const request = buildRequest(url, { body: JOB })
  const args = ['-r', PHP_LOOP, '--', u.hostname, u.port, String(n), request.toString('base64')]
  const out = await new Promise<string>((resolve, reject) => {
    execFile('php', args, { encoding: 'utf8', timeout: PHP_TIMEOUT_MS, maxBuffer: PHP_MAX_OUTPUT_BYTES }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`php failed: ${err.message}\n${stderr}`, { cause: err }))
      else resolve(stdout)
    })
  })
  const parsed = JSON.parse(out) as { ns: number[], errors: Record<string, number>, seconds: number }
  const sent = parsed.ns.length
  return {
    kind: 'php', calls: n, sent, failed: n - sent, errors: parsed.errors,
    seconds: parsed.seconds, rate: sent / parsed.seconds, blockingUs: percentiles(parsed.ns.map((v) => v / 1_000)),
  }
}
