// php-cli driving clients/php/RawTrigger.php through test/helpers/php-driver.php.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Debian's php-cli, or a local build. */
export const PHP = ['/usr/bin/php', '/usr/local/bin/php'].find((p) => existsSync(p))
const DRIVER = fileURLToPath(new URL('./php-driver.php', import.meta.url))
const PHP_TIMEOUT_MS = 120_000

/** One command of the driver (see php-driver.php). */
export interface PhpCommand {
  op: 'build' | 'fire' | 'sign' | 'many'
  url?: string
  body?: unknown
  options?: Record<string, unknown>
  [more: string]: unknown
}

/** What the driver answered for one command. */
export interface PhpResult {
  ok: boolean
  request?: string
  bytes?: number
  signature?: string
  ms?: number
  code?: string
  message?: string
  errno?: number
}

/** Runs the commands in one php process; resolves with one result per command. */
export function php (commands: PhpCommand[]): Promise<PhpResult[]> {
  if (PHP === undefined) return Promise.reject(new Error('php is not installed'))
  return new Promise((resolve, reject) => {
    const child = execFile(PHP as string, [DRIVER], { encoding: 'utf8', timeout: PHP_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`php failed: ${err.message}\n${stderr}\n${stdout}`, { cause: err }))
        return
      }
      try {
        resolve(JSON.parse(stdout) as PhpResult[])
      } catch (cause) {
        reject(new Error(`php printed no JSON: ${stdout}\n${stderr}`, { cause }))
      }
    })
    child.stdin?.end(JSON.stringify(commands))
  })
}

/** Runs one command. */
export async function php1 (command: PhpCommand): Promise<PhpResult> {
  return (await php([command]))[0] as PhpResult
}

/** The request bytes of a `build` result. */
export function requestOf (result: PhpResult): Buffer {
  if (!result.ok || result.request === undefined) throw new Error(`build failed: ${result.code ?? ''} ${result.message ?? ''}`)
  return Buffer.from(result.request, 'base64')
}
