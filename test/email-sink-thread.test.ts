// serve's embedded sink on a worker thread (src/smtp/sink-on-thread.ts): the same Sink as
// startSink(), answering while the main thread is busy, refusing a busy port, gone after close().
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import net, { type AddressInfo } from 'node:net'
import { test } from 'node:test'
import nodemailer from 'nodemailer'
import { startSinkOnThread } from '../src/smtp/sink-on-thread.ts'
import { waitFor } from './helpers/wait.ts'

/** The SMTP banner read by a child process, while this thread is blocked in execFileSync. */
function bannerWhileBlocked (port: number): string {
  const client = `const s = require('node:net').connect(${port}, '127.0.0.1'); s.once('data', (d) => { process.stdout.write(String(d)); s.destroy() });` +
    "setTimeout(() => { process.stdout.write('no banner'); process.exit(0) }, 3000)"
  return execFileSync(process.execPath, ['-e', client], { encoding: 'utf8' })
}

test('the sink thread catches messages, keeps the last `keep`, counts them all, and answers while the main thread is blocked', async (t) => {
  const sink = await startSinkOnThread({ port: 0, keep: 5 })
  t.after(() => sink.close())
  assert.match(bannerWhileBlocked(sink.port), /^220 .*rawtrigger sink/, 'the banner came from the thread while this one was blocked')
  const transport = nodemailer.createTransport({ url: sink.url, pool: true, maxConnections: 1 })
  t.after(() => transport.close())
  for (let k = 0; k < 8; k++) await transport.sendMail({ from: 'a@x.org', to: `r${k}@x.org`, subject: `Nr ${k}`, text: 'x', messageId: `<m.${k}@x.org>` })
  await waitFor('all 8 counted on the main thread', () => sink.received() === 8 || undefined, 5_000)
  assert.deepEqual(sink.messages().map((m) => m.messageId), [7, 6, 5, 4, 3].map((k) => `<m.${k}@x.org>`))
  assert.equal(sink.messages()[0]?.subject, 'Nr 7')
})

test('the sink thread refuses a port in use with RT_ERR_CONFIG, and close() frees its port', async (t) => {
  const busy = net.createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.after(() => busy.close())
  const port = (busy.address() as AddressInfo).port
  // The sink tries the next ports after a busy one unless it was given 0; a busy explicit port
  // with every next one taken is hard to arrange, so the refusal is seen through a bad host.
  await assert.rejects(startSinkOnThread({ port, host: '203.0.113.1' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'RT_ERR_CONFIG')
    assert.match(err.message, /SMTP sink cannot listen on 203\.0\.113\.1/)
    return true
  })
  const sink = await startSinkOnThread({ port: 0 })
  await sink.close()
  await assert.rejects(new Promise((resolve, reject) => {
    const s = net.connect(sink.port, '127.0.0.1', () => { s.destroy(); resolve(undefined) })
    s.once('error', reject)
  }), /ECONNREFUSED/)
})
