// Runs scripts/bench/fsockopen.php: the bare fsockopen+fwrite+fclose loop (TCP or unix://), or
// the same loop of clients/php RawTrigger::fire; one PHP process doing every iteration and timing
// each itself.
import { execFile, execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { addError, errnoName, stats, type Measurement } from './measure.ts'

const SCRIPT = fileURLToPath(new URL('./fsockopen.php', import.meta.url))
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024 // the durations as JSON: ~10 bytes per call
const PHP_TIMEOUT_MS = 10 * 60_000 // the whole PHP loop

/** PHP's version, or undefined when `php` is not on PATH. */
export function phpVersion (): string | undefined {
  try {
    return execFileSync('php', ['-r', 'echo PHP_VERSION;'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return undefined
  }
}

interface PhpOutput {
  durations_ns: number[]
  errors: Record<string, number>
  calls: number
  cpu_us_per_call: number
}

async function runPhp (args: string[]): Promise<Measurement> {
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
  return { stats: stats(output.durations_ns), errors, calls: output.calls, wallMs, cpuUsPerCall: output.cpu_us_per_call }
}

/** Where the bare loop connects: TCP to 127.0.0.1, or PHP's `unix://` transport. */
export type PhpTarget = { port: number } | { socketPath: string }

/** The bare fsockopen+fwrite+fclose loop, writing `request` (bytes built by buildRequest). */
export function measurePhp (target: PhpTarget, request: Buffer, warmup: number, iterations: number, pauseMs: number): Promise<Measurement> {
  const [host, port] = 'port' in target ? ['127.0.0.1', String(target.port)] : [`unix://${target.socketPath}`, '-1']
  return runPhp(['bare', host, port, String(warmup), String(iterations), request.toString('base64'), String(pauseMs)])
}

/** clients/php `RawTrigger::fire(url, body)` in a loop, building the request per call. */
export function measurePhpClient (url: string, body: unknown, warmup: number, iterations: number, pauseMs: number): Promise<Measurement> {
  const json = Buffer.from(JSON.stringify(body)).toString('base64')
  return runPhp(['client', url, '0', String(warmup), String(iterations), json, String(pauseMs)])
}
