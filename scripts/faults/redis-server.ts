// A Redis of the harness's own: `redis-server` on a free loopback port with its files in a temp
// dir, `appendonly yes` so a restart keeps what it acknowledged, and never the shared 6379. It can
// be killed and started again on the same port and dir, which is the fault.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { Redis } from 'ioredis'
import { freePort, until, type Scope } from '../kit/scope.ts'

/** Loading the append-only file of a few thousand jobs takes well under a second; this is a guard. */
const START_TIMEOUT_MS = 15_000

/** Options of {@link startRedisServer}. */
export interface RedisServerOptions {
  /**
   * `always`: every write is fsynced before Redis answers it, so a kill -9 of Redis loses
   * nothing it acknowledged; `everysec` (the usual setting) may lose the last second.
   * @default 'always'
   */
  appendfsync?: 'always' | 'everysec'
}

/** A redis-server child. */
export interface RedisServer {
  readonly url: string
  readonly port: number
  /** The command line, for the report. */
  readonly command: string
  /** kill -9 (nothing flushed that was not already); resolves once it is gone. */
  kill9 (): Promise<void>
  /** Starts again on the same port and dir; resolves once it answers PING. */
  start (): Promise<void>
  /** True while the process runs. */
  alive (): boolean
}

/** Why no redis-server can be started here, or undefined when one can. */
export function redisServerMissing (): string | undefined {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    return undefined
  } catch {
    return 'redis-server is not installed (apt-get install redis-server)'
  }
}

async function answersPing (url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
  client.on('error', () => {}) // a probe: not up yet
  try {
    await client.connect()
    return await client.ping() === 'PONG'
  } finally {
    client.disconnect()
  }
}

/** Starts redis-server in a temp dir of `scope`; killed when the scope closes. */
export async function startRedisServer (scope: Scope, options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = scope.tempDir('redis')
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes',
    '--appendfsync', options.appendfsync ?? 'always', '--maxmemory-policy', 'noeviction', '--daemonize', 'no', '--loglevel', 'warning']
  const url = `redis://127.0.0.1:${port}`
  let child: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()

  const start = async (): Promise<void> => {
    if (child !== undefined) return
    const c = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    c.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-4096) })
    child = c
    exited = new Promise((resolve) => c.once('exit', () => {
      if (child === c) child = undefined
      resolve()
    }))
    if (!await until(() => answersPing(url), START_TIMEOUT_MS, 50)) {
      throw new Error(`redis-server on port ${port} did not answer PING within ${START_TIMEOUT_MS} ms: ${stderr}`)
    }
  }
  const kill9 = async (): Promise<void> => {
    const c = child
    if (c === undefined) return
    c.kill('SIGKILL')
    await exited
  }
  scope.defer(kill9)
  await start()
  return { url, port, command: `redis-server ${args.map((a) => (a === '' ? '""' : a)).join(' ')}`, kill9, start, alive: () => child !== undefined }
}
