// `rawtrigger serve` as a child process for the demo: its own process (the worker is visibly not
// the caller), its own process group (a terminal's Ctrl-C reaches only the demo, which then stops
// the child once, gracefully), the embedded SMTP sink, a temp data dir.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The repository root: the child's working directory. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** Starting node + tsx and opening SQLite takes about a second; this is a guard. */
const START_TIMEOUT_MS = 20_000
/** serve's own grace period is 10 s; after that, SIGKILL. */
const STOP_TIMEOUT_MS = 12_000
/** Stderr kept for an error message. */
const STDERR_KEEP = 16 * 1024

// Settings serve reads from the environment: the demo decides them with flags, so a TRIGGER_SECRET
// or SMTP_URL of the person's shell must not send the demo's mail somewhere real.
const ENV_CLEARED = ['PORT', 'HOST', 'DATA_DIR', 'SMTP_URL', 'TRIGGER_SECRET', 'QUEUE_URL', 'CONCURRENCY',
  'RETRY_BASE_MS', 'MAX_ATTEMPTS', 'MAX_BODY_BYTES', 'MAIL_FROM', 'LOG_LEVEL', 'RATE_LIMIT']

/** A running serve child. */
export interface ServeChild {
  pid: number
  /** `http://127.0.0.1:PORT` */
  url: string
  /** `smtp://127.0.0.1:PORT` of its embedded sink. */
  smtpUrl: string
  /** Resolves when the child exited, with a line saying how. */
  exited: Promise<string>
  /** The end of what the child wrote on stderr (JSON log lines). */
  stderr (): string
  /** SIGTERM, then SIGKILL after a while; resolves once it is gone. Safe to call twice. */
  stop (): Promise<void>
}

/** Spawns `node --import tsx src/cli.ts serve --port 0 --data-dir <dataDir> --sink-port 0`. */
export function startServeChild (dataDir: string): Promise<ServeChild> {
  const env = { ...process.env }
  for (const name of ENV_CLEARED) delete env[name]
  const child: ChildProcess = spawn(process.execPath, [
    '--import', 'tsx', 'src/cli.ts', 'serve',
    '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--sink-port', '0', '--log-level', 'info',
  ], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let stdout = ''
  let stderr = ''
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal === null ? `exit code ${code}` : `signal ${signal}`))
  })

  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => (stopping ??= (async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  })())

  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer)
      void stop().then(() => reject(new Error(`serve ${why}\nstdout: ${stdout}\nstderr: ${stderr}`)))
    }
    const timer = setTimeout(() => fail(`printed no URL within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS)
    const check = (): void => {
      const url = /rawtrigger listening on (http:\/\/\S+)/.exec(stdout)?.[1]
      // serve names its embedded sink on the same line: "mail: smtp://127.0.0.1:PORT (embedded sink)"
      const smtpUrl = /mail: (smtp:\/\/\S+)/.exec(stdout)?.[1]
      if (url === undefined || smtpUrl === undefined) return
      clearTimeout(timer)
      resolve({ pid: child.pid as number, url, smtpUrl, exited, stderr: () => stderr, stop })
    }
    const onStdout = (s: string): void => { stdout += s; check() }
    child.stdout?.setEncoding('utf8').on('data', onStdout)
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      stderr = (stderr + s).slice(-STDERR_KEEP)
      check()
    })
    child.once('error', (err) => fail(`could not start: ${err.message}`))
    void exited.then((how) => { if (stopping === undefined) fail(`exited early (${how})`) })
  })
}
