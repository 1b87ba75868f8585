// Unix-domain socket helpers: a path in a temp dir, HTTP over a socket, a raw recording server
// on a socket, and `rawtrigger serve --socket` as a child process.
import { spawn } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { tempDir } from './receiver.ts'
import { HANDLERS_MODULE, ROOT, serveArgs, type Exit } from './serve-process.ts'

const START_TIMEOUT_MS = 20_000

/** A socket path in a new temp dir (short: sun_path holds 107 bytes). */
export function socketPathIn (t: TestContext, name = 'rt.sock'): string {
  return join(tempDir(t, 'rt-sock-'), name)
}

/** One HTTP request over a Unix socket; JSON bodies parsed. */
export function socketRequest (socketPath: string, method: string, path: string, options: { body?: unknown, headers?: Record<string, string> } = {}): Promise<{ status: number, json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
    const headers: Record<string, string> = { ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers }
    const req = http.request({ socketPath, method, path, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (s: string) => { text += s })
      res.on('end', () => {
        let json: unknown
        try { json = JSON.parse(text) } catch { json = text }
        resolve({ status: res.statusCode ?? 0, json })
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** A server on a Unix socket that records what each connection sent, and whether its FIN came. */
export interface RawUnixServer {
  path: string
  /** Resolves with everything connection `index` sent, once it has ended. */
  ended (index: number): Promise<Buffer>
  close (): Promise<void>
}

export async function startRawUnixServer (t: TestContext): Promise<RawUnixServer> {
  const path = socketPathIn(t, 'raw.sock')
  const got: Array<Promise<Buffer>> = []
  const waiters: Array<() => void> = []
  const server = net.createServer((socket) => {
    got.push(new Promise((resolve) => {
      const chunks: Buffer[] = []
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.on('end', () => { resolve(Buffer.concat(chunks)); socket.end() })
      socket.on('error', () => {}) // the client hangs up as it likes: what arrived is what counts
    }))
    for (const w of waiters.splice(0)) w()
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  const close = (): Promise<void> => new Promise((resolve) => server.close(() => resolve()))
  t.after(close)
  return {
    path,
    async ended (index) {
      while (got.length <= index) await new Promise<void>((resolve) => waiters.push(resolve))
      return got[index] as Promise<Buffer>
    },
    close,
  }
}

/** A running `rawtrigger serve --socket` child. */
export interface SocketServe {
  socketPath: string
  child: ReturnType<typeof spawn>
  stdout (): string
  stderr (): string
  exited: Promise<Exit>
  kill (signal: NodeJS.Signals): void
}

/** Spawns serve; `ready` false returns at once (for a start that must fail), else once it printed its line. */
export async function startServeOnSocket (t: TestContext, dataDir: string, socketPath: string, args: string[] = [], ready = true): Promise<SocketServe> {
  const child = spawn(process.execPath, serveArgs([
    '--socket', socketPath, '--data-dir', dataDir, '--handlers', HANDLERS_MODULE, '--sink-port', '0', '--log-level', 'warn', ...args,
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
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const serve: SocketServe = {
    socketPath, child, exited, stdout: () => stdout, stderr: () => stderr, kill: (signal) => { child.kill(signal) },
  }
  if (!ready) return serve
  const deadline = Date.now() + START_TIMEOUT_MS
  while (!stdout.includes('rawtrigger listening on')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`serve --socket did not start\nstdout: ${stdout}\nstderr: ${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return serve
}
