// Unix-domain socket helpers: a path in a temp dir, HTTP over a socket, a raw recording server
// on a socket. `rawtrigger serve --socket` as a child: spawnServe in serve-process.ts.
import http from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { tempDir } from './receiver.ts'

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
