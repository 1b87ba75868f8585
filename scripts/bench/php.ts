// Runs scripts/bench/fsockopen.php: the bare fsockopen+fwrite+fclose loop (TCP or unix://), or
// the same loop of clients/php RawTrigger::fire; one PHP process doing every iteration and timing
// each itself. The benchmark and the load test's PHP phase both run it.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { addError } from '../kit/stats.ts'
import { errnoName, stats, type Measurement } from './measure.ts'

const SCRIPT = fileURLToPath(new URL('./fsockopen.php', import.meta.url))
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024 // the durations as JSON: ~10 bytes per call
const PHP_TIMEOUT_MS = 10 * 60_000 // the whole PHP loop

interface PhpOutput {
  durations_ns: number[]
  baseline_ns?: number[]
  errors: Record<string, number>
  calls: number
  cpu_us_per_call: number
  seconds: number
}

/** One PHP loop: each successful call's duration, the failures by errno name or code, the loop's length. */
export interface PhpRun { durationsNs: number[], baselineNs: number[], errors: Record<string, number>, calls: number, cpuUsPerCall: number, seconds: number, wallMs: number }

async function runPhp (args: string[]): Promise<PhpRun> {
  args = [SCRIPT, ...args]
  const wallStart = performance.now()
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('php', args, { encoding: 'utf8', maxBuffer: MAX_OUTPUT_BYTES, timeout: PHP_TIMEOUT_MS }, (err, out, stderr) => {
      if (err !== null) reject(new Error(`php ${args[0] ?? ''} failed: ${err.message}${stderr === '' ? '' : `\n${stderr}`}`, { cause: err }))
      else resolve(out)
    })
  })
  const wallMs = performance.now() - wallStart
  const output = JSON.parse(stdout) as PhpOutput
  const errors: Record<string, number> = {}
  for (const [key, count] of Object.entries(output.errors)) {
    addError(errors, /^\d+$/.test(key) ? errnoName(Number(key)) : key, count)
  }
  return { durationsNs: output.durations_ns, baselineNs: output.baseline_ns ?? [], errors, calls: output.calls, cpuUsPerCall: output.cpu_us_per_call, seconds: output.seconds, wallMs }
}

function measurement (run: PhpRun): Measurement {
  const m: Measurement = { stats: stats(run.durationsNs), errors: run.errors, calls: run.calls, wallMs: run.wallMs, cpuUsPerCall: run.cpuUsPerCall }
  if (run.baselineNs.length > 0) m.baseline = stats(run.baselineNs)
  return m
}

/** Where the bare loop connects: TCP to 127.0.0.1, or PHP's `unix://` transport. */
export type PhpTarget = { port: number, host?: string } | { socketPath: string }

/** The bare fsockopen+fwrite+fclose loop, writing `request` (bytes built by buildRequest). */
export function phpLoop (target: PhpTarget, request: Buffer, warmup: number, iterations: number, pauseMs = 0): Promise<PhpRun> {
  const [host, port] = 'port' in target ? [target.host ?? '127.0.0.1', String(target.port)] : [`unix://${target.socketPath}`, '-1']
  return runPhp(['bare', host, port, String(warmup), String(iterations), request.toString('base64'), String(pauseMs)])
}

/** {@link phpLoop} as the benchmark's measurement. */
export async function measurePhp (target: PhpTarget, request: Buffer, warmup: number, iterations: number, pauseMs: number): Promise<Measurement> {
  return measurement(await phpLoop(target, request, warmup, iterations, pauseMs))
}

/**
 * clients/php `RawTrigger::fire(url, body)` in a loop, building the request per call; each call
 * paired with a bare fsockopen call on the same bytes (`baseline`), the order alternating.
 */
export function measurePhpClient (url: string, body: unknown, warmup: number, iterations: number, pauseMs: number): Promise<Measurement> {
  const json = Buffer.from(JSON.stringify(body)).toString('base64')
  return runPhp(['client', url, '0', String(warmup), String(iterations), json, String(pauseMs)]).then(measurement)
}
