// An in-process receiver on port 0 with its own temp data dir, and small clients for it.
// Everything started here is closed in t.after() (STYLE.md points 11-12).
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { AnyJobHandler } from '../../src/queue/handler.ts'
import type { JobView } from '../../src/queue/types.ts'
import { createReceiver, type ReceiverOptions } from '../../src/receiver-default.ts'
import type { Receiver } from '../../src/server/receiver.ts'
import testHandlers from './handlers.ts'
import { waitFor } from './wait.ts'

export { sleep, waitFor } from './wait.ts'

/** A running receiver and where its data lives. */
export interface TestReceiver {
  url: string
  port: number
  receiver: Receiver
  dataDir: string
  /** Closes the receiver (once); the data dir is removed in t.after(). */
  close (): Promise<void>
}

/** Leases and polls short enough for tests; the rest as `createReceiver` defaults. */
export const TEST_LEASE_MS = 1_000
export const TEST_POLL_MS = 50

/** A fresh temp dir, removed in t.after(). */
export function tempDir (t: TestContext, prefix = 'rawtrigger-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Starts `createReceiver` on 127.0.0.1, port 0, a temp data dir, the test handlers (plus `handlers`),
 * leaseMs 1000, pollMs 50, graceMs 2000, log level silent; closed in t.after().
 */
export async function startReceiver (
  t: TestContext,
  options: ReceiverOptions & { dataDir?: string } = {},
): Promise<TestReceiver> {
  const { dataDir: given, ...rest } = options
  // Also with a store of the test's own: TestReceiver names the dir it lives in.
  const dataDir = given ?? tempDir(t)
  const handlers: Record<string, AnyJobHandler> = { ...testHandlers, ...options.handlers }
  const receiver = await createReceiver({
    host: '127.0.0.1',
    leaseMs: TEST_LEASE_MS,
    pollMs: TEST_POLL_MS,
    graceMs: 2_000,
    logLevel: 'silent',
    ...rest,
    port: options.port ?? 0,
    // The default SQLite store's, unless the test brings its own store or queue.
    ...(options.store === undefined && options.queue === undefined ? { dataDir } : {}),
    handlers,
  })
  let closed: Promise<void> | undefined
  const close = (): Promise<void> => (closed ??= receiver.close())
  t.after(close)
  return { url: receiver.url, port: receiver.port, receiver, dataDir, close }
}

/** A response read in full. */
export interface JsonResponse {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One request on a fresh connection (no keep-alive agent), the response read in full. */
export function request (
  url: string,
  options: { method?: string, headers?: Record<string, string>, body?: string | Buffer, agent?: http.Agent } = {},
): Promise<JsonResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      headers: options.headers ?? {},
      agent: options.agent ?? false,
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try { json = JSON.parse(text) } catch { json = undefined }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer from ${url} within 10 s`)))
    req.end(options.body)
  })
}

/** POSTs a JSON body to `${base}/jobs/${type}`. */
export function postJob (base: string, type: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return request(`${base}/jobs/${type}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

/** `GET /jobs/:id`, asserted 200. */
export async function getJob (base: string, id: string, headers: Record<string, string> = {}): Promise<JobView> {
  const res = await request(`${base}/jobs/${id}`, { headers })
  assert.equal(res.status, 200, `GET /jobs/${id}: ${res.text}`)
  return res.json as JobView
}

/** The body of `GET /stats`. */
export interface StatsBody {
  accepted: number
  duplicates: number
  rejected: number
  jobs: { queued: number, running: number, done: number, failed: number }
  emails: { sent: number, failed: number, pending: number }
}

/** `GET /stats`, asserted 200. */
export async function getStats (base: string): Promise<StatsBody> {
  const res = await request(`${base}/stats`)
  assert.equal(res.status, 200, `GET /stats: ${res.text}`)
  return res.json as StatsBody
}

/** Waits until `GET /jobs/:id` shows `state`; returns the view. */
export function waitForState (base: string, id: string, state: string, timeoutMs = 10_000, headers: Record<string, string> = {}): Promise<JobView> {
  return waitFor(`job ${id} to be ${state}`, async () => {
    const view = await getJob(base, id, headers)
    return view.state === state ? view : undefined
  }, timeoutMs, 50)
}

/** The lines of a record file, `[jobId, index]` each; [] when it does not exist yet. */
export function readRecords (file: string): Array<[string, number]> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  return text.split('\n').filter((l) => l !== '').map((line) => {
    const [id, index] = line.split(' ')
    return [id as string, Number(index)]
  })
}

/** The HTTP/1.1 bytes of a `POST /jobs/<type>` with a JSON body, as a fire-and-forget client writes it. */
export function rawPost (port: number, type: string, body: unknown, extraHeaders = ''): Buffer {
  const json = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))
  return Buffer.concat([
    Buffer.from(`POST /jobs/${type} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${json.length}\r\nConnection: close\r\n${extraHeaders}\r\n`),
    json,
  ])
}

/** What came back on a raw socket. */
export interface RawExchange {
  /** Everything the server sent. */
  response: string
  /** The server closed (FIN or RST) before `timeoutMs`. */
  closed: boolean
  /** The socket error, if any (ECONNRESET when the server reset). */
  error?: string
  /** From the first write to the close (or the timeout). */
  elapsedMs: number
}

/**
 * Writes `bytes` on a raw socket (without ending it) and collects the answer until the server
 * closes the connection or `timeoutMs` passes; then destroys the socket.
 */
export function rawExchange (port: number, bytes: Buffer | string, timeoutMs = 5_000): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const started = Date.now()
    let error: string | undefined
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ response: Buffer.concat(chunks).toString('latin1'), closed, elapsedMs: Date.now() - started, ...(error === undefined ? {} : { error }) })
    }
    const timer = setTimeout(() => finish(false), timeoutMs)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', (err: NodeJS.ErrnoException) => { error = err.code ?? err.message })
    socket.on('close', () => finish(true))
    socket.on('end', () => finish(true))
    socket.write(bytes)
  })
}

/** The status code of a raw HTTP response, or undefined when nothing (or no status line) came back. */
export function statusOf (response: string): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(response)
  return m === null ? undefined : Number(m[1])
}

/** The JSON body of a raw HTTP response. */
export function jsonOf (response: string): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  const at = response.indexOf('\r\n\r\n')
  return JSON.parse(response.slice(at + 4))
}
