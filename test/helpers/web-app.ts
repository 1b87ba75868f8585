// The web page and its app routes wired as `rawtrigger serve` wires them (src/cli/serve.ts), in
// this process, with one difference: the page's triggers go through a relay that holds each one
// until released, then hands the bytes on to the receiver. So a test can see the page poll a job
// whose trigger is on its way, as on a slow network, without timing luck.
import net, { type AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'
import { createReceiver, startEmailService, type Receiver } from 'rawtrigger'
import { createLogger } from '../../src/log.ts'
import { createWebRoutes } from '../../src/web/routes.ts'
import { tempDir } from './receiver.ts'

/** A running app whose triggers wait in the relay. */
export interface HeldWebApp {
  /** The receiver's URL: the page is at `${url}/`. */
  readonly url: string
  readonly receiver: Receiver
  /** Triggers that reached the relay and wait there. */
  readonly held: number
  /** Resolves once `count` triggers wait in the relay. */
  waitForHeld (count: number, timeoutMs?: number): Promise<void>
  /** Hands every waiting trigger on to the receiver, and every later one at once. */
  release (): void
}

/** Starts the app with the embedded SMTP sink on port 0; everything is closed in t.after(). */
export async function startHeldWebApp (t: TestContext): Promise<HeldWebApp> {
  const log = createLogger('silent')
  const email = await startEmailService({ sinkPort: 0, retryBaseMs: 50, log })
  let receiver: Receiver | undefined
  let released = false
  const waiting: Buffer[] = []
  const waiters = new Set<() => void>()

  function forward (bytes: Buffer): void {
    const upstream = net.connect((receiver as Receiver).port, '127.0.0.1')
    upstream.on('error', () => {}) // the receiver closing after its 202 is normal here
    upstream.resume() // nobody reads the answer: a trigger does not
    upstream.end(bytes)
  }

  // Reads a whole trigger (the client half-closes after its last byte), then holds it.
  const relay = net.createServer((socket) => {
    const chunks: Buffer[] = []
    socket.on('error', () => {}) // the trigger hangs up without reading: normal
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('end', () => {
      socket.end()
      const bytes = Buffer.concat(chunks)
      if (released) {
        forward(bytes)
        return
      }
      waiting.push(bytes)
      for (const waiter of waiters) waiter()
    })
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
  const relayUrl = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`

  const web = createWebRoutes({ target: () => receiver && { url: relayUrl, jobs: receiver.queue }, log })
  receiver = await createReceiver({
    port: 0,
    dataDir: tempDir(t, 'rawtrigger-web-app-'),
    pollMs: 50,
    logLevel: 'silent',
    handlers: { email: email.handler },
    routes: (req, res) => web(req, res) || email.routes(req, res),
  })
  const app = receiver
  t.after(async () => {
    await new Promise<void>((resolve) => relay.close(() => resolve()))
    await app.close()
    await email.close()
  })

  return {
    url: app.url,
    receiver: app,
    get held () { return waiting.length },
    waitForHeld (count, timeoutMs = 10_000) {
      if (waiting.length >= count) return Promise.resolve()
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`${waiting.length} of ${count} triggers reached the relay after ${timeoutMs} ms`))
        }, timeoutMs)
        const check = (): void => {
          if (waiting.length < count) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve()
        }
        waiters.add(check)
      })
    },
    release () {
      released = true
      for (const bytes of waiting.splice(0)) forward(bytes)
    },
  }
}
