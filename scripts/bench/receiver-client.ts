// Starts the bare receiver (scripts/load/bare.mjs) as a child process and talks to it over IPC.
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const RECEIVER = new URL('../load/bare.mjs', import.meta.url)
const START_TIMEOUT_MS = 10_000 // child start-up and listen()
const COUNT_TIMEOUT_MS = 5_000 // one IPC round trip
const SETTLE_POLL_MS = 50 // between counts while waiting for the receiver to catch up
const SETTLE_QUIET_MS = 500 // a count that has not moved for this long is final

/** What the receiver has seen since it started. */
export interface ReceiverCounts {
  /** Requests whose body was read to the end (and answered 202). */
  requests: number
  bodyBytes: number
  /** Client errors other than a peer hanging up (ECONNRESET, EPIPE); parse errors, say. */
  badRequests: number
  connections: number
  /** The receiver process's CPU time (user + system) since it started, µs. */
  cpuUs: number
}

export interface Receiver {
  url: string
  port: number
  /** The Unix socket the same receiver listens on (same handler, same counts). */
  socketPath: string
  /** The child's process id, for the record. */
  pid: number
  count: () => Promise<ReceiverCounts>
  /**
   * Counts until `requests` reaches `expected`, or stops moving for 500 ms, or `maxMs` passes:
   * the receiver reads on its own core and may be behind the sender.
   */
  settle: (expected: number, maxMs: number) => Promise<ReceiverCounts>
  close: () => Promise<void>
}

function isMessage (value: unknown): value is { type: string, [key: string]: unknown } {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
}

export async function startReceiver (): Promise<Receiver> {
  // execArgv: [] — the child must not inherit --cpu-prof, --import tsx or --conditions.
  const dir = mkdtempSync(join(tmpdir(), 'rawtrigger-bench-'))
  const socketPath = join(dir, 'receiver.sock')
  const child: ChildProcess = fork(RECEIVER, [socketPath], { execArgv: [], stdio: ['pipe', 'ignore', 'inherit', 'ipc'] })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { onDone(new Error(`receiver did not listen within ${START_TIMEOUT_MS} ms`)) }, START_TIMEOUT_MS)
    function onMessage (message: unknown): void {
      if (isMessage(message) && message.type === 'listening' && typeof message.port === 'number') onDone(undefined, message.port)
    }
    function onExit (code: number | null): void { onDone(new Error(`receiver exited with code ${String(code)} before listening`)) }
    function onDone (err: Error | undefined, value?: number): void {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (err !== undefined) reject(err)
      else resolve(value as number)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })

  let nextId = 0
  function count (): Promise<ReceiverCounts> {
    const id = nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.off('message', onMessage)
        reject(new Error(`receiver did not answer a count within ${COUNT_TIMEOUT_MS} ms`))
      }, COUNT_TIMEOUT_MS)
      function onMessage (message: unknown): void {
        if (!isMessage(message) || message.type !== 'count' || message.id !== id) return
        clearTimeout(timer)
        child.off('message', onMessage)
        const { requests, bodyBytes, badRequests, connections, cpuUs } = message as unknown as ReceiverCounts
        resolve({ requests, bodyBytes, badRequests, connections, cpuUs })
      }
      child.on('message', onMessage)
      child.send({ type: 'count', id })
    })
  }

  async function settle (expected: number, maxMs: number): Promise<ReceiverCounts> {
    const deadline = performance.now() + maxMs
    let last = await count()
    let lastMoved = performance.now()
    while (last.requests < expected && performance.now() < deadline && performance.now() - lastMoved < SETTLE_QUIET_MS) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS))
      const now = await count()
      if (now.requests !== last.requests) lastMoved = performance.now()
      last = now
    }
    return last
  }

  async function close (): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.disconnect() // the receiver exits on 'disconnect'
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  }

  return { url: `http://127.0.0.1:${port}/jobs`, port, socketPath, pid: child.pid ?? 0, count, settle, close }
}
