// A child process the scripts start and wait on: `rawtrigger serve`, a bare receiver, a peer
// server. Started with this node (never through the tsx binary, which runs the program in a
// grandchild: a SIGKILL would hit only the wrapper), the repository root as its working directory,
// stdout and stderr kept, a line awaited by pattern (`listening on http://…`), stopped with
// SIGTERM and then SIGKILL. Every child is also in `live`, for a Ctrl-C or a crash to kill.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Scope } from './scope.ts'

/** The repository root: the children's working directory. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** node + tsx + SQLite open take a second or two on a loaded 2-core machine; this is a guard. */
const START_TIMEOUT_MS = 30_000
/** serve's own grace is 10 s (--grace-ms); after this a stop becomes SIGKILL. */
const STOP_TIMEOUT_MS = 15_000
/** Stderr kept for error messages and reports. */
const STDERR_KEEP = 32 * 1024

/**
 * Settings serve reads from the environment: the scripts decide them with flags, so a
 * TRIGGER_SECRET or SMTP_URL of the person's shell must not reach a child.
 */
export const SERVE_ENV = ['PORT', 'HOST', 'DATA_DIR', 'SMTP_URL', 'TRIGGER_SECRET', 'QUEUE_URL', 'CONCURRENCY', 'SQLITE_WRITER', 'INTAKE',
  'RETRY_BASE_MS', 'MAX_ATTEMPTS', 'MAX_BODY_BYTES', 'MAIL_FROM', 'LOG_LEVEL', 'RATE_LIMIT', 'METRICS_TOKEN', 'RETAIN']

/** The URL serve prints once it listens. */
export const SERVE_LISTENING = /rawtrigger listening on (http:\/\/\S+)/

/** The node arguments of `rawtrigger serve <args>` from the TypeScript source. */
export function serveArgv (args: readonly string[]): string[] {
  return ['--conditions=rawtrigger-source', '--import', 'tsx', 'src/cli.ts', 'serve', ...args]
}

/** How a child ended. */
export interface Exit { code: number | null, signal: NodeJS.Signals | null }

export interface ChildOptions {
  /** Shown in errors. @default 'child' */
  name?: string
  /** Environment variables removed from this process's for the child. @default SERVE_ENV */
  clearEnv?: readonly string[]
  /** Its own process group: a terminal's Ctrl-C then reaches only this process. @default false */
  detached?: boolean
  /** Killed -9 when the scope closes. */
  scope?: Scope
  /** The program to run. @default process.execPath */
  program?: string
  /** `pipe`: a child that exits when its stdin closes goes with this process. @default 'ignore' */
  stdin?: 'pipe' | 'ignore'
}

export interface Child {
  proc: ChildProcess
  pid: number
  /** The command line, for the report. */
  command: string
  exited: Promise<Exit>
  /** True until it exited. */
  alive (): boolean
  stdout (): string
  stderr (): string
  /** The first match of `pattern` in its stdout; rejects when it exits or `timeoutMs` passes first. */
  waitFor (pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>
  /** SIGKILL; resolves once it is gone. */
  kill9 (): Promise<Exit>
  /** SIGTERM (a graceful stop), SIGKILL after 15 s; resolves once it is gone. */
  stop (): Promise<Exit>
}

/** Every child still running, for {@link killAll}. */
const live = new Set<Child>()

export function spawnChild (argv: readonly string[], options: ChildOptions = {}): Child {
  const { name = 'child', clearEnv = SERVE_ENV, detached = false, scope, program = process.execPath, stdin = 'ignore' } = options
  const env = { ...process.env }
  for (const key of clearEnv) delete env[key]
  const proc = spawn(program, argv, { cwd: ROOT, env, stdio: [stdin, 'pipe', 'pipe'], detached })
  let stdout = ''
  let stderr = ''
  let gone = false
  const exited = new Promise<Exit>((resolve) => {
    const end = (exit: Exit): void => {
      gone = true
      live.delete(child)
      resolve(exit)
    }
    proc.once('exit', (code, signal) => end({ code, signal }))
    proc.once('error', () => end({ code: null, signal: null }))
  })
  proc.stdout?.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_KEEP) })
  const how = (exit: Exit): string => (exit.signal === null ? `code ${String(exit.code)}` : exit.signal)

  const waitFor = (pattern: RegExp, timeoutMs = START_TIMEOUT_MS): Promise<RegExpExecArray> => new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      done()
      reject(new Error(`${name} ${why}\nstdout: ${stdout.slice(-2_000)}\nstderr: ${stderr.slice(-2_000)}`))
    }
    const check = (): void => {
      const match = pattern.exec(stdout)
      if (match === null) return
      done()
      resolve(match)
    }
    const timer = setTimeout(() => fail(`printed no ${String(pattern)} within ${timeoutMs} ms`), timeoutMs)
    const done = (): void => {
      clearTimeout(timer)
      proc.stdout?.off('data', check)
    }
    proc.stdout?.on('data', check)
    void exited.then((exit) => fail(`exited (${how(exit)}) before ${String(pattern)}`))
    check()
  })

  const killWith = async (signal: NodeJS.Signals): Promise<Exit> => {
    if (!gone) proc.kill(signal)
    const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS)
    const exit = await exited
    clearTimeout(timer)
    return exit
  }
  const child: Child = {
    proc,
    pid: proc.pid ?? -1,
    command: `${program === process.execPath ? 'node' : program} ${argv.join(' ')}`,
    exited,
    alive: () => !gone,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor,
    kill9: () => killWith('SIGKILL'),
    stop: () => killWith('SIGTERM'),
  }
  live.add(child)
  scope?.defer(() => child.kill9())
  return child
}

/** Spawns a child and waits for its listening line: `url` is the pattern's first group. */
export async function startChild (argv: readonly string[], options: ChildOptions & { listening?: RegExp } = {}): Promise<Child & { url: string }> {
  const child = spawnChild(argv, options)
  try {
    const match = await child.waitFor(options.listening ?? SERVE_LISTENING)
    return { ...child, url: match[1] as string }
  } catch (err) {
    await child.kill9()
    throw err
  }
}

/** SIGKILL to every child still running (Ctrl-C, a crash); resolves once they are gone. */
export async function killAll (): Promise<void> {
  await Promise.all([...live].map((c) => c.kill9()))
}
