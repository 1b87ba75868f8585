// `rawtrigger serve` as a child process, for kill -9, SIGTERM and SIGINT tests.
// Started as `node --import tsx src/cli.ts serve …`, never through the `tsx` binary: that runs the
// program in a grandchild and cannot pass SIGKILL on, so a kill would hit only the wrapper and the
// test would pass for the wrong reason (RELIABILITY.md item 16).
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'

/** The repository root: the child's working directory. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** The test handlers module, relative to ROOT. */
export const HANDLERS_MODULE = 'test/helpers/handlers.ts'
/** Starting node + tsx and opening SQLite takes about a second; this is a guard, not a claim. */
const START_TIMEOUT_MS = 20_000

/** How a child ended. */
export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** A running `rawtrigger serve` child. */
export interface ServeProcess {
  /** `http://127.0.0.1:PORT`, or `http://localhost` for a child on a Unix socket ('' until it listens). */
  url: string
  /** The TCP port; 0 on a Unix socket or before it listens. */
  port: number
  /** The socket it was told to listen on, if any. */
  socketPath?: string
  child: ChildProcess
  pid: number
  /** Everything the child wrote so far. */
  stdout (): string
  stderr (): string
  /** Resolves when the child has exited. */
  exited: Promise<Exit>
  /** Sends a signal to the server process itself. */
  kill (signal: NodeJS.Signals): void
  /** Resolves once stderr contains `text` (e.g. a log message); rejects after `timeoutMs` or on exit. */
  waitForStderr (text: string, timeoutMs?: number): Promise<void>
}

/** Options of {@link spawnServe}. */
export interface SpawnServeOptions {
  /** `--data-dir`. */
  dataDir: string
  /** More flags, after the ones this helper sets. */
  args?: readonly string[]
  /** `--socket <path> --sink-port 0 --log-level warn` instead of `--port 0 --host 127.0.0.1`. */
  socket?: string
  /** Resolve once it printed its listening line; false resolves at once (a start that must fail). @default true */
  ready?: boolean
}

/** The command line of `rawtrigger serve` (node + tsx loader + src/cli.ts). */
export function serveArgs (args: string[]): string[] {
  return ['--import', 'tsx', 'src/cli.ts', 'serve', ...args]
}

/** The CLI from source: node + tsx loader + src/cli.ts. */
export const CLI_FROM_SOURCE = ['--import', 'tsx', 'src/cli.ts'] as const
/** The CLI as installed: bin/rawtrigger.js (what `npx rawtrigger` runs). */
export const CLI_BIN = ['bin/rawtrigger.js'] as const

/**
 * Runs `rawtrigger <args>` to its end (a command that must fail at start, or a short command), from
 * source unless `cli` says otherwise; killed after `timeoutMs`.
 */
export function runCli (
  t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 20_000, cli: readonly string[] = CLI_FROM_SOURCE,
): Promise<Exit & { stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [...cli, ...args], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/**
 * Spawns `node --import tsx src/cli.ts serve --data-dir <dataDir> --handlers test/helpers/handlers.ts`
 * on 127.0.0.1:0 (or `socket`), with no secret, port, host or socket from this process's
 * environment, and resolves once it printed `rawtrigger listening on http://…`. A child still alive
 * at the end of the test is killed -9.
 */
export async function spawnServe (t: TestContext, options: SpawnServeOptions): Promise<ServeProcess> {
  const listen = options.socket === undefined
    ? ['--port', '0', '--host', '127.0.0.1']
    : ['--socket', options.socket, '--sink-port', '0', '--log-level', 'warn']
  const child = spawn(process.execPath, serveArgs([
    ...listen, '--data-dir', options.dataDir, '--handlers', HANDLERS_MODULE, ...(options.args ?? []),
  ]), { cwd: ROOT, env: { ...process.env, TRIGGER_SECRET: '', LOG_LEVEL: '', SOCKET_PATH: '', PORT: '', HOST: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  let stdout = ''
  let stderr = ''
  const watchers = new Set<() => void>()
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { stdout += s; for (const w of watchers) w() })
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr += s; for (const w of watchers) w() })

  const until = (what: string, found: () => boolean, timeoutMs: number): Promise<void> => new Promise((resolve, reject) => {
    const check = (): void => {
      if (found()) {
        cleanup()
        resolve()
      }
    }
    const cleanup = (): void => {
      clearTimeout(timer)
      watchers.delete(check)
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`serve: no ${what} within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    watchers.add(check)
    exited.then((exit) => {
      if (!found()) {
        cleanup()
        reject(new Error(`serve exited (${exit.code ?? exit.signal}) before ${what}\nstdout: ${stdout}\nstderr: ${stderr}`))
      }
    }, () => {})
    check()
  })

  const serve: ServeProcess = {
    url: '',
    port: 0,
    ...(options.socket === undefined ? {} : { socketPath: options.socket }),
    child,
    pid: child.pid as number,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    kill: (signal) => { child.kill(signal) },
    waitForStderr: (text, timeoutMs = 10_000) => until(JSON.stringify(text), () => stderr.includes(text), timeoutMs),
  }
  if (options.ready === false) return serve
  await until('"rawtrigger listening on" line', () => /rawtrigger listening on http:\/\/\S+/.test(stdout), START_TIMEOUT_MS)
  serve.url = (/rawtrigger listening on (http:\/\/\S+)/.exec(stdout) as RegExpExecArray)[1] as string
  serve.port = options.socket === undefined ? Number(new URL(serve.url).port) : 0
  return serve
}

/** `spawnServe` on 127.0.0.1:0, the short form: `startServe(t, dataDir, args)`. */
export function startServe (t: TestContext, dataDir: string, args: string[] = []): Promise<ServeProcess> {
  return spawnServe(t, { dataDir, args })
}
