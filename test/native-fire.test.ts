// The trigger's native fast path (native/fire.c, src/net/native-fire.ts): plain-HTTP triggers to
// a loopback address or a Unix socket are connected, written and closed in one synchronous call.
// Checked here: the same bytes and FIN as node:net, no node:net socket opened, errors as node:net
// reports them, a declined connect (full accept queue) and a partial write finished by node:net,
// and what never takes the path (ack, TLS, other hosts, RAWTRIGGER_NATIVE=0).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import diagnostics from 'node:diagnostics_channel'
import net from 'node:net'
import { after, test, type TestContext } from 'node:test'
import { buildRequest, fireMany, trigger } from 'rawtrigger'
import { nativeAvailable, useNative } from '../src/net/native-fire.ts'
import { rejectsWith, within } from './helpers/assert-error.ts'
import { parseRequest, refusedPort, startRawServer } from './helpers/raw-server.ts'
import { startRawUnixServer } from './helpers/unix-socket.ts'
import { waitFor } from './helpers/wait.ts'

// Built by `npm install` (native/build.js); a machine without a C compiler has no addon. CI must.
const skip = nativeAvailable() ? false : 'the addon native/build/Release/rawtrigger_fire.node is not built (npm run install builds it)'
if (skip !== false && process.env.CI !== undefined) throw new Error(`CI: ${skip}`)
after(() => useNative(true))

/** node:net client sockets this process opens, from Node's `net.client.socket` channel. */
function netSockets (t: TestContext): { readonly opened: number } {
  let opened = 0
  const onSocket = (): void => { opened++ }
  diagnostics.subscribe('net.client.socket', onSocket)
  t.after(() => diagnostics.unsubscribe('net.client.socket', onSocket))
  return { get opened () { return opened } }
}

test('loopback TCP, IPv4 and IPv6: buildRequest\'s bytes, then the FIN, with no node:net socket', { skip }, async (t) => {
  for (const host of ['127.0.0.1', '::1'] as const) {
    const server = await startRawServer({ host })
    t.after(() => server.close())
    const sockets = netSockets(t)
    const url = `${server.url}jobs/email?x=1`
    const options = { body: { to: ['a@example.org'], subject: 'Grüße' }, headers: { 'webhook-id': 'native-1' } }
    const result = await trigger(url, options)
    const connection = await server.connection(0)
    await connection.whenClosed
    assert.equal(sockets.opened, 0, 'node:net opened no socket')
    assert.deepEqual(connection.received, buildRequest(url, options))
    assert.equal(connection.ended, true)
    assert.equal(result.bytes, connection.received.length)
    assert.equal(result.remoteAddress, host)
    assert.equal(result.remotePort, server.port)
    assert.ok(result.connectMs > 0 && result.connectMs <= result.totalMs, JSON.stringify(result))
  }
})

test('a Unix socket: the URL gives path and Host, the bytes arrive whole', { skip }, async (t) => {
  const raw = await startRawUnixServer(t)
  const sockets = netSockets(t)
  const url = 'http://localhost/jobs/noop'
  const result = await trigger(url, { socketPath: raw.path, body: 'x' })
  assert.deepEqual(await raw.ended(0), buildRequest(url, { body: 'x' }))
  assert.equal(sockets.opened, 0)
  assert.equal(result.remoteAddress, raw.path)
})

test('a refused port: RT_ERR_CONNECT with the errno on cause, as node:net reports it', { skip }, async () => {
  const port = await refusedPort()
  const err = await rejectsWith(trigger(`http://127.0.0.1:${port}/`), 'RT_ERR_CONNECT')
  const cause = err.cause as NodeJS.ErrnoException
  assert.equal(cause.code, 'ECONNREFUSED')
  assert.equal(cause.syscall, 'connect')
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}.*ECONNREFUSED`))
})

test('a full accept queue: the connects that would wait for a SYN retransmit go to node:net, every request arrives', { skip, timeout: 20_000 }, async (t) => {
  // A queue of 4 takes 5 connections; the rest of the 8 are declined and connect again through
  // node:net once the sink accepts (more than the queue holds at once would overflow it again).
  const count = 8
  const got: Buffer[] = []
  const sink = net.createServer((socket) => {
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('end', () => { got.push(Buffer.concat(chunks)); socket.end() })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => sink.listen({ port: 0, host: '127.0.0.1', backlog: 4 }, resolve))
  t.after(() => sink.close())
  const sockets = netSockets(t)
  const url = `http://127.0.0.1:${(sink.address() as net.AddressInfo).port}/jobs/noop`
  // Fired in one synchronous loop: the sink cannot accept until it ends, so its queue fills.
  const fired = Array.from({ length: count }, (_, i) => trigger(url, { body: { i } }))
  await within(15_000, Promise.all(fired), 'every trigger settled')
  await waitFor(`all ${count} requests at the sink`, () => (got.length >= count ? true : undefined))
  const indexes = got.map((bytes) => (JSON.parse(parseRequest(bytes).body.toString('utf8')) as { i: number }).i)
  assert.deepEqual(indexes.sort((a, b) => a - b), Array.from({ length: count }, (_, i) => i))
  assert.ok(sockets.opened > 0 && sockets.opened < count, `${sockets.opened} of ${count} went to node:net`)
  t.diagnostic(`${count - sockets.opened} of ${count} on the fast path, ${sockets.opened} declined to node:net`)
})

test('a request larger than the socket buffer: the fast path writes what fits, node:net the rest', { skip }, async (t) => {
  useNative(true, 16 * 1024 * 1024)
  t.after(() => useNative(true))
  const body = 'x'.repeat(4 * 1024 * 1024)
  const raw = await startRawUnixServer(t)
  const url = 'http://localhost/jobs/big'
  const result = await trigger(url, { socketPath: raw.path, body })
  const got = await raw.ended(0)
  assert.equal(got.length, result.bytes)
  assert.ok(got.equals(buildRequest(url, { body })), 'the same bytes, in order')

  const server = await startRawServer()
  t.after(() => server.close())
  await trigger(server.url, { body })
  const connection = await server.connection(0)
  await connection.whenClosed
  assert.ok(connection.received.equals(buildRequest(server.url, { body })))
})

test('never on the fast path: ack, a host name, or a request over 64 KiB', { skip }, async (t) => {
  const server = await startRawServer({ answer: 'HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n' })
  t.after(() => server.close())
  const sockets = netSockets(t)
  const ack = await trigger(server.url, { ack: true })
  assert.equal(ack.status, 202)
  assert.equal(sockets.opened, 1)
  await trigger(`http://localhost:${server.port}/`)
  assert.equal(sockets.opened, 2)
  await trigger(server.url, { body: 'x'.repeat(65_537) })
  assert.equal(sockets.opened, 3)
})

test('fireMany on the fast path: 2,000 triggers to a server of the same process, each request once', { skip, timeout: 30_000 }, async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const summary = await fireMany(server.url, Array.from({ length: 2_000 }, (_, i) => ({ i })), { concurrency: 16 })
  await within(20_000, server.closedCount(2_000), 'the server saw every connection close')
  assert.deepEqual({ sent: summary.sent, failed: summary.failed }, { sent: 2_000, failed: 0 })
  const indexes = server.connections.map((c) => (JSON.parse(parseRequest(c.received).body.toString('utf8')) as { i: number }).i)
  assert.deepEqual(indexes.sort((a, b) => a - b), Array.from({ length: 2_000 }, (_, i) => i))
})

test('RAWTRIGGER_NATIVE=0 turns the fast path off; rawtrigger --version says which path triggers take', { skip }, () => {
  const child = spawnSync(process.execPath, ['--conditions=rawtrigger-source', '--import', 'tsx', '--input-type=module', '-e',
    "import { nativeAvailable } from './src/net/native-fire.ts'; console.log(nativeAvailable())"], {
    encoding: 'utf8', env: { ...process.env, RAWTRIGGER_NATIVE: '0' },
  })
  assert.equal(child.stdout.trim(), 'false', child.stderr)
  const version = (env: NodeJS.ProcessEnv): string => spawnSync(process.execPath, ['bin/rawtrigger.js', '--version'], { encoding: 'utf8', env }).stdout
  assert.match(version(process.env), /^rawtrigger \d+\.\d+\.\d+\ntrigger\(\) path: native /)
  assert.match(version({ ...process.env, RAWTRIGGER_NATIVE: '0' }), /trigger\(\) path: node:net \(RAWTRIGGER_NATIVE=0\)/)
})
