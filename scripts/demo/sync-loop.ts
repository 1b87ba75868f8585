// The seed's synchronous loop, measured: what a request handler that sends every e-mail itself
// costs the user. One new SMTP connection per e-mail (nodemailer without a pool, as a plain
// `mail()` loop does), one after the other, to the same sink the worker uses.
import net from 'node:net'
import nodemailer from 'nodemailer'

/** Connections opened to time the server's greeting alone. */
const GREETING_SAMPLES = 3
/** A greeting that does not come within this is an error, not a measurement. */
const GREETING_TIMEOUT_MS = 5_000

/** What the sample cost. */
export interface SyncLoopSample {
  /** E-mails sent in the sample. */
  sample: number
  sampleMs: number
  perEmailMs: number
  /** Of each e-mail's time, the wait from connect to the server's 220 greeting. */
  greetingMs: number
}

/** Connect → first byte of the 220 greeting, on a fresh connection. */
function timeGreeting (port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let connectedAt = 0
    const socket = net.connect(port, host, () => { connectedAt = performance.now() })
    const timer = setTimeout(() => socket.destroy(new Error(`no SMTP greeting from ${host}:${port} within ${GREETING_TIMEOUT_MS} ms`)), GREETING_TIMEOUT_MS)
    socket.once('data', () => {
      const ms = performance.now() - connectedAt
      clearTimeout(timer)
      socket.end('QUIT\r\n')
      resolve(ms)
    })
    socket.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

/** Sends `count` e-mails one by one, a new connection each, and times them. */
export async function measureSyncLoop (smtpUrl: string, count: number): Promise<SyncLoopSample> {
  const { hostname, port } = new URL(smtpUrl)
  let greetingMs = 0
  for (let i = 0; i < GREETING_SAMPLES; i++) greetingMs += await timeGreeting(Number(port), hostname) / GREETING_SAMPLES
  const transport = nodemailer.createTransport({ url: smtpUrl, pool: false })
  try {
    const start = performance.now()
    for (let i = 1; i <= count; i++) {
      await transport.sendMail({
        from: 'rawtrigger demo <demo@example.org>',
        to: { name: `Sync ${i}`, address: `sync${i}@example.org` },
        subject: `Hello Sync ${i} (synchronous loop sample)`,
        text: `Hi Sync ${i},\n\nthis one was sent inside the request, before the user got an answer.\n`,
      })
    }
    const sampleMs = performance.now() - start
    return { sample: count, sampleMs, perEmailMs: sampleMs / count, greetingMs }
  } finally {
    transport.close()
  }
}
