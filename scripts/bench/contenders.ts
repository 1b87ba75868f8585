// What the benchmark compares: one function per way of sending the same job to the receiver.
// Each returns what the timing loop awaits; the caller is blocked until then.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import type { Library } from './library.ts'

/** A small job, like one e-mail to one recipient. */
export const JOB = {
  type: 'email',
  to: ['ada@example.com'],
  subject: 'Welcome aboard',
  template: 'welcome',
  data: { name: 'Ada Lovelace', plan: 'free' },
} as const

/** Names accepted by `--only`, in the order they run. */
export const CONTENDERS = ['trigger', 'trigger-unix', 'trigger-net', 'http-close', 'http-keepalive', 'fetch', 'spawn', 'php', 'php-unix', 'php-client'] as const
export type ContenderName = typeof CONTENDERS[number]

/** The label printed in the table. */
export const LABELS: Record<ContenderName, string> = {
  'trigger': 'rawtrigger trigger()',
  'trigger-unix': 'rawtrigger trigger(), Unix socket',
  'trigger-net': 'rawtrigger trigger(), node:net path',
  'http-close': 'http.request, agent:false (new conn, awaits 202)',
  'http-keepalive': 'http.request, keep-alive agent (awaits 202)',
  'fetch': 'fetch, keep-alive (awaits 202)',
  'spawn': 'spawn detached + unref (until spawn returns)',
  'php': 'PHP fsockopen+fwrite+fclose',
  'php-unix': 'PHP fsockopen unix://+fwrite+fclose',
  'php-client': 'PHP RawTrigger::fire (clients/php)',
}

/** Contenders that need `php` on PATH. */
export const PHP_CONTENDERS: ReadonlySet<ContenderName> = new Set(['php', 'php-unix', 'php-client'])

export function makeFireTrigger (trigger: Library['trigger'], socketPath?: string): (url: string) => Promise<unknown> {
  if (socketPath !== undefined) return (url) => trigger(url, { body: JOB, socketPath })
  return (url) => trigger(url, { body: JOB })
}

// The JSON is built per call in every contender, as trigger() builds it per call.
function httpPost (url: string, agent: http.Agent | false): Promise<void> {
  const body = JSON.stringify(JOB)
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      res.on('error', reject)
      res.on('end', resolve)
      res.resume()
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** A fresh TCP connection per request (`agent: false` sends `Connection: close`). */
export function httpClose (url: string): Promise<void> {
  return httpPost(url, false)
}

/** One reused connection: what `http.request(url)` does by default on Node ≥ 19 (keep-alive global agent). */
export function makeHttpKeepAlive (): { call: (url: string) => Promise<void>, close: () => void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  return { call: (url) => httpPost(url, agent), close: () => { agent.destroy() } }
}

/** Node's fetch (undici, keep-alive by default), reading the empty 202 body to free the connection. */
export async function fetchPost (url: string): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(JOB) })
  await res.arrayBuffer()
}

/**
 * The popen("… &") analogue: a detached child Node process that sends the request bytes and
 * exits. Only spawn() itself is timed; {@link awaitChild} then waits for the child, untimed, so
 * that children do not pile up on a 2-core machine (which makes this spawn's best case).
 */
export function makeSpawn (port: number, request: Buffer): () => ChildProcess {
  const code = `require('node:net').connect(${port}, '127.0.0.1').end(Buffer.from('${request.toString('base64')}', 'base64'))`
  return () => {
    const child = spawn(process.execPath, ['-e', code], { detached: true, stdio: 'ignore' })
    child.unref()
    return child
  }
}

export async function awaitChild (value: unknown): Promise<void> {
  const child = value as ChildProcess
  if (child.exitCode !== null || child.signalCode !== null) return
  await once(child, 'exit')
}
