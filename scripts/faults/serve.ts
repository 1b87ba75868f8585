// `rawtrigger serve` as a child the harness can kill -9: started as
// `node --conditions=rawtrigger-source --import tsx src/cli.ts serve …`, never through the tsx
// binary (that runs the program in a grandchild, and SIGKILL would hit only the wrapper:
// RELIABILITY.md item 16). Loopback only, its own --port (0 or one to come back on), settings from
// the environment cleared so a person's TRIGGER_SECRET or SMTP_URL cannot leak in.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Scope } from '../kit/scope.ts'

/** The repository root: the child's working directory. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** node + tsx + SQLite open take a second or two on a loaded machine; this is a guard. */
const START_TIMEOUT_MS = 30_000
/** serve's own grace is 10 s (--grace-ms); after this a stop becomes SIGKILL. */
const STOP_TIMEOUT_MS = 15_000
/** Stderr kept for the report. */
const STDERR_KEEP = 32 * 1024

const ENV_CLEARED = ['PORT', 'HOST', 'DATA_DIR', 'SMTP_URL', 'TRIGGER_SECRET', 'QUEUE_URL', 'CONCURRENCY', 'SQLITE_WRITER',
  'RETRY_BASE_MS', 'MAX_ATTEMPTS', 'MAX_BODY_BYTES', 'MAIL_FROM', 'LOG_LEVEL', 'RATE_LIMIT', 'METRICS_TOKEN', 'RETAIN']

/** How a child ended. */
export interface Exit { code: number | null, signal: NodeJS.Signals | null }

/** A serve child. */
export interface ServeChild {
  pid: number
  /** The command line, for the report. */
  command: string
  /** Resolves with the URL once it printed `rawtrigger listening on …`; rejects when it exits first. */
  ready: Promise<string>
  exited: Promise<Exit>
  /** True until it exited. */
  alive (): boolean
  stdout (): string
  stderr (): string
  /** SIGKILL to the server process itself; resolves once it is gone. */
  kill9 (): Promise<Exit>
  /** SIGTERM (a graceful stop), SIGKILL after 15 s; resolves once it is gone. */
  stop (): Promise<Exit>
}

/** The node arguments of `rawtrigger serve <args>`. */
export function serveArgv (args: readonly string[]): string[] {
  return ['--conditions=rawtrigger-source', '--import', 'tsx', 'src/cli.ts', 'serve', ...args]
}

/** Spawns serve on 127.0.0.1 with `args`; killed -9 when `scope` closes. Await `ready` for its URL. */
export function spawnServe (scope: Scope, args: readonly string[]): ServeChild {
  const env = { ...process.env }
  for (const name of ENV_CLEARED) delete env[name]
  const argv = serveArgv(['--host', '127.0.0.1', ...args])
  const child = spawn(process.execPath, argv, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  let gone = false
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      gone = true
      resolve({ code, signal })
    })
    child.once('error', () => {
      gone = true
      resolve({ code: null, signal: null })
    })
  })
  scope.defer(async () => {
    if (!gone) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no URL within ${START_TIMEOUT_MS} ms\nstderr: ${stderr.slice(-2000)}`)), START_TIMEOUT_MS)
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s
      const url = /rawtrigger listening on (http:\/\/\S+)/.exec(stdout)?.[1]
      if (url !== undefined) {
        clearTimeout(timer)
        resolve(url)
      }
    })
    void exited.then((exit) => {
      clearTimeout(timer)
      reject(new Error(`serve exited (${exit.signal ?? `code ${exit.code}`}) before listening\nstderr: ${stderr.slice(-2000)}`))
    })
  })
  ready.catch(() => {}) // a caller that expects a failed start reads `exited` instead
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_KEEP) })

  const killWith = async (signal: NodeJS.Signals): Promise<Exit> => {
    if (!gone) child.kill(signal)
    const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    const exit = await exited
    clearTimeout(timer)
    return exit
  }
  return {
    pid: child.pid ?? -1,
    command: `node ${argv.join(' ')}`,
    ready,
    exited,
    alive: () => !gone,
    stdout: () => stdout,
    stderr: () => stderr,
    kill9: () => killWith('SIGKILL'),
    stop: () => killWith('SIGTERM'),
  }
}

/** Spawns serve and waits until it listens. */
export async function startServe (scope: Scope, args: readonly string[]): Promise<ServeChild & { url: string }> {
  const child = spawnServe(scope, args)
  const url = await child.ready
  return { ...child, url }
}
