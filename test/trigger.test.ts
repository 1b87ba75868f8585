// trigger() against real servers: fire-and-forget, ack, network faults, timeouts, abort, large
// bodies and TLS (RELIABILITY.md items 4-7). Real sockets on port 0, nothing mocked.
import { randomBytes } from 'node:crypto'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { buildRequest, trigger, TriggerError } from 'rawtrigger'
import { rejectsWith, within } from './helpers/assert-error.ts'
import { refusedPort, startRawServer } from './helpers/raw-server.ts'
import { startReceiver } from './helpers/receiver.ts'
import { testCert } from './helpers/tls-cert.ts'

const ACCEPTED = 'HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'

// ── Fire and forget ───────────────────────────────────────────────────────────

test('fire at a server that never answers: resolves promptly with the timings and the peer', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const options = { body: { event: 'signup', id: 7 } }

  const result = await within(2_000, trigger(server.url, options), 'trigger against a silent server')

  assert.deepEqual(Object.keys(result).sort(), ['bytes', 'connectMs', 'remoteAddress', 'remotePort', 'totalMs'])
  assert.equal(result.bytes, buildRequest(server.url, options).length)
  assert.equal(result.remoteAddress, '127.0.0.1')
  assert.equal(result.remotePort, server.port)
  assert.ok(result.connectMs >= 0 && result.connectMs <= result.totalMs, `connectMs ${result.connectMs} <= totalMs ${result.totalMs}`)
  assert.equal('status' in result, false, 'no status without ack')

  const connection = await server.connection(0)
  await within(5_000, connection.whenClosed, 'server side close')
  assert.equal(connection.ended, true, 'FIN received')
  assert.deepEqual(connection.received, buildRequest(server.url, options))
})

test('fire accepts a URL object as well as a string', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const result = await trigger(new URL('/from-url-object', server.url))
  assert.equal(result.remotePort, server.port)
  const connection = await server.connection(0)
  await connection.whenClosed
  assert.match(connection.received.toString('latin1'), /^GET \/from-url-object HTTP\/1\.1\r\n/)
})

test('fire does not wait for an answer even when the server answers', async (t) => {
  const server = await startRawServer({ answer: ACCEPTED })
  t.after(() => server.close())
  const result = await within(2_000, trigger(server.url, { body: 'x' }), 'trigger')
  assert.equal(result.status, undefined)
  await within(5_000, server.closedCount(1), 'server side close')
  assert.equal(server.connections[0]?.ended, true)
})

// ── ack: true ─────────────────────────────────────────────────────────────────

test('ack: true against a server that answers 202 resolves with status 202', async (t) => {
  const server = await startRawServer({ answer: ACCEPTED })
  t.after(() => server.close())
  const result = await within(5_000, trigger(server.url, { body: { a: 1 }, ack: true }), 'ack trigger')
  assert.equal(result.status, 202)
  assert.equal(result.remotePort, server.port)
  const connection = await server.connection(0)
  assert.deepEqual(connection.received.subarray(0, result.bytes), buildRequest(server.url, { body: { a: 1 } }))
})

test('ack: an error status is a result, not a rejection (status 500)', async (t) => {
  const server = await startRawServer({ answer: 'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n' })
  t.after(() => server.close())
  const result = await trigger(server.url, { ack: true })
  assert.equal(result.status, 500)
})

test('ack: a status line split across TCP segments is reassembled', async (t) => {
  const server = await startRawServer({
    onHead (connection) {
      connection.socket.write('HTTP/1.')
      setTimeout(() => connection.socket.write('1 20'), 20)
      setTimeout(() => connection.socket.end('1 Created\r\n\r\n'), 40)
    },
  })
  t.after(() => server.close())
  const result = await within(5_000, trigger(server.url, { ack: true }), 'ack trigger')
  assert.equal(result.status, 201)
})

test('ack: HTTP/1.0 status line without a reason phrase is accepted', async (t) => {
  const server = await startRawServer({ answer: 'HTTP/1.0 204\r\n\r\n' })
  t.after(() => server.close())
  assert.equal((await trigger(server.url, { ack: true })).status, 204)
})

test('ack against a server that closes without answering rejects RT_ERR_ACK', async (t) => {
  const server = await startRawServer({ onHead: (connection) => connection.socket.end() })
  t.after(() => server.close())
  const err = await within(5_000, rejectsWith(trigger(server.url, { ack: true }), 'RT_ERR_ACK'), 'ack trigger')
  assert.ok(err.message.includes(`127.0.0.1:${server.port}`), err.message)
})

test('ack against a server that answers something that is not HTTP rejects RT_ERR_ACK', async (t) => {
  const server = await startRawServer({ answer: 'SSH-2.0-OpenSSH_9.6\r\n' })
  t.after(() => server.close())
  await rejectsWith(trigger(server.url, { ack: true }), 'RT_ERR_ACK')
})

test('ack against a server that resets the connection rejects RT_ERR_ACK with the OS code on cause', async (t) => {
  const server = await startRawServer({ onHead: (connection) => connection.socket.resetAndDestroy() })
  t.after(() => server.close())
  const err = await within(5_000, rejectsWith(trigger(server.url, { ack: true }), 'RT_ERR_ACK'), 'ack trigger')
  // A reset is reported as ECONNRESET; some stacks report an orderly close first (no cause then).
  if (err.cause !== undefined) assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNRESET')
})

test('ack timeout: a server that never answers rejects RT_ERR_ACK_TIMEOUT naming the limit', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const err = await within(5_000, rejectsWith(trigger(server.url, { ack: true, ackTimeoutMs: 200 }), 'RT_ERR_ACK_TIMEOUT'), 'ack trigger')
  assert.match(err.message, /200 ms/)
  assert.ok(err.message.includes(`127.0.0.1:${server.port}`), err.message)
  // The socket was closed, not leaked.
  await within(5_000, server.closedCount(1), 'server side close after the ack timeout')
})

test('ack: the result carries the response as it arrived with the status line, head and body', async (t) => {
  const answer = 'HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n{"id":"msg_1","note":"ü"}'
  const server = await startRawServer({ answer })
  t.after(() => server.close())
  const result = await within(5_000, trigger(server.url, { body: 'x', ack: true }), 'ack trigger')
  assert.equal(result.status, 202)
  assert.equal(result.response, answer)
})

test('ack: response keeps at most 16 KiB of what arrived', async (t) => {
  const answer = 'HTTP/1.1 200 OK\r\nContent-Length: 40000\r\n\r\n' + 'a'.repeat(40_000)
  const server = await startRawServer({ answer })
  t.after(() => server.close())
  const result = await trigger(server.url, { ack: true })
  assert.equal(result.status, 200)
  assert.ok(result.response !== undefined && result.response.length <= 16_384 && result.response.startsWith('HTTP/1.1 200 OK\r\n'))
})

// A receiver answers 413 from the Content-Length alone and closes without reading the body: the
// rest of the write then fails with EPIPE or ECONNRESET. With ack, the answer is the result.
test('ack: a receiver that answers 413 before reading a 5 MB body resolves with 413, not RT_ERR_WRITE', async (t) => {
  const r = await startReceiver(t, { maxBodyBytes: 1_024 })
  const body = JSON.stringify({ n: 1, file: '/dev/null', pad: 'x'.repeat(5 * 1024 * 1024) })
  for (let i = 0; i < 5; i++) {
    const result = await within(30_000, trigger(`${r.url}/jobs/record`, { body, headers: { 'content-type': 'application/json' }, ack: true }), '413 trigger')
    assert.equal(result.status, 413, `try ${i}`)
    assert.match(result.response ?? '', /"code":"RT_ERR_BODY_TOO_LARGE"/)
  }
})

test('ack: an early answer, then a reset while 16 MB are still unread, resolves with that answer', async (t) => {
  const server = await startRawServer({
    onHead (connection) {
      connection.socket.pause() // read no more: the client's write stalls on full buffers
      connection.socket.write('HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', () => {
        setTimeout(() => connection.socket.resetAndDestroy(), 50)
      })
    },
  })
  t.after(() => server.close())
  const result = await within(30_000, trigger(server.url, { body: randomBytes(16 * 1024 * 1024), ack: true }), 'early answer trigger')
  assert.equal(result.status, 413)
  assert.ok(server.connections[0] !== undefined && server.connections[0].received.length < result.bytes, 'the answer came before the body was read')
})

// ── Network faults ────────────────────────────────────────────────────────────

test('connection refused rejects RT_ERR_CONNECT with ECONNREFUSED on cause and host:port in the message', async () => {
  const port = await refusedPort()
  const err = await within(5_000, rejectsWith(trigger(`http://127.0.0.1:${port}/`, { body: 'x' }), 'RT_ERR_CONNECT'), 'trigger')
  assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED')
  assert.ok(err.message.includes(`127.0.0.1:${port}`), err.message)
  assert.ok(err instanceof TriggerError)
})

test('connection refused on IPv6 names the host in brackets', async () => {
  const port = await refusedPort()
  const err = await rejectsWith(trigger(`http://[::1]:${port}/`), 'RT_ERR_CONNECT')
  assert.ok(err.message.includes(`[::1]:${port}`), err.message)
})

test('unresolvable host (.invalid, RFC 6761) rejects RT_ERR_CONNECT with the resolver code on cause', async () => {
  const err = await within(15_000, rejectsWith(trigger('http://nonexistent.invalid/'), 'RT_ERR_CONNECT'), 'trigger')
  const code = (err.cause as NodeJS.ErrnoException).code
  // ENOTFOUND offline and online; EAI_AGAIN when the resolver itself cannot be reached.
  assert.ok(code === 'ENOTFOUND' || code === 'EAI_AGAIN', `cause.code ${String(code)}`)
  assert.ok(err.message.includes('nonexistent.invalid:80'), err.message)
})

// Connect timeout, offline: a TCP connect to a local listener always succeeds at once (and a full
// listen backlog does not reliably stall a Linux connect), so the stall is put in the TLS handshake,
// which the connect timeout covers for https: a raw TCP server accepts and never writes a byte, so
// the ClientHello is never answered.
test('connect timeout: a TLS handshake that never completes rejects RT_ERR_CONNECT_TIMEOUT naming host:port and the limit', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const url = `https://127.0.0.1:${server.port}/`
  const err = await within(5_000, rejectsWith(trigger(url, { connectTimeoutMs: 200 }), 'RT_ERR_CONNECT_TIMEOUT'), 'trigger')
  assert.ok(err.message.includes(`127.0.0.1:${server.port}`), err.message)
  assert.match(err.message, /\b200 ms\b/)
  // The client sent its ClientHello (TLS record type 22) and, after the timeout, closed the socket.
  const connection = await server.connection(0)
  await within(5_000, connection.whenClosed, 'socket closed after the timeout')
  assert.equal(connection.received[0], 0x16)
})

test('connect timeout above the 32-bit timer limit is refused or honoured, never cut to 1 ms', async (t) => {
  const server = await startRawServer() // never completes a TLS handshake, see above
  t.after(() => server.close())
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), 300)
  t.after(() => clearTimeout(timer))
  // Node's setTimeout turns a delay above 2**31 - 1 into 1 ms; the option must be refused or the
  // handshake waited for (here: until the abort).
  const pending = trigger(`https://127.0.0.1:${server.port}/`, { connectTimeoutMs: 2 ** 31, signal: controller.signal })
  const err = await within(5_000, pending.then(() => assert.fail('a handshake that never completes cannot succeed'), (e: unknown) => e), 'trigger')
  assert.ok(err instanceof TriggerError, String(err))
  assert.ok(
    err.code === 'RT_ERR_INVALID_OPTION' || err.code === 'RT_ERR_ABORTED',
    `connectTimeoutMs 2**31 gave ${err.code}: ${err.message}`,
  )
})

for (const [name, value] of [['connectTimeoutMs', 0], ['connectTimeoutMs', -1], ['connectTimeoutMs', 1.5], ['connectTimeoutMs', '5'],
  ['connectTimeoutMs', Number.NaN], ['connectTimeoutMs', Number.POSITIVE_INFINITY], ['ackTimeoutMs', 0], ['ackTimeoutMs', '100']] as const) {
  test(`invalid ${name} ${String(value)} rejects RT_ERR_INVALID_OPTION naming the option, no connection`, async (t) => {
    const server = await startRawServer()
    t.after(() => server.close())
    const err = await rejectsWith(trigger(server.url, { [name]: value as number }), 'RT_ERR_INVALID_OPTION')
    assert.ok(err.message.includes(name), err.message)
    await trigger(server.url) // sentinel: once it has arrived, a connection from the bad call would have too
    await within(5_000, server.closedCount(1), 'sentinel')
    assert.equal(server.tcpConnections, 1)
  })
}

// ── Abort ─────────────────────────────────────────────────────────────────────

test('an already-aborted signal rejects RT_ERR_ABORTED with the reason on cause and opens no connection', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const reason = new Error('caller gave up')
  const err = await rejectsWith(trigger(server.url, { body: 'x', signal: AbortSignal.abort(reason) }), 'RT_ERR_ABORTED')
  assert.equal(err.cause, reason)
  await trigger(server.url)
  await within(5_000, server.closedCount(1), 'sentinel')
  assert.equal(server.tcpConnections, 1, 'only the sentinel connected')
})

test('abort during a TLS handshake that never completes rejects RT_ERR_ABORTED and closes the socket', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const controller = new AbortController()
  const pending = trigger(`https://127.0.0.1:${server.port}/`, { signal: controller.signal })
  const connection = await within(5_000, server.connection(0), 'connection')
  const reason = new Error('stop')
  controller.abort(reason)
  const err = await within(2_000, rejectsWith(pending, 'RT_ERR_ABORTED'), 'abort')
  assert.equal(err.cause, reason)
  await within(5_000, connection.whenClosed, 'socket closed after abort')
})

test('abort while waiting for the ack rejects RT_ERR_ABORTED', async (t) => {
  let headArrived!: () => void
  const arrived = new Promise<void>((resolve) => { headArrived = resolve })
  const server = await startRawServer({ onHead: () => headArrived() }) // and never answers
  t.after(() => server.close())
  const controller = new AbortController()
  const pending = trigger(server.url, { ack: true, signal: controller.signal })
  await within(5_000, arrived, 'request head')
  controller.abort()
  await within(2_000, rejectsWith(pending, 'RT_ERR_ABORTED'), 'abort')
  await within(5_000, server.closedCount(1), 'socket closed after abort')
})

test('a signal aborted after the trigger resolved changes nothing and throws nothing', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const controller = new AbortController()
  const result = await trigger(server.url, { signal: controller.signal })
  controller.abort()
  assert.equal(result.remotePort, server.port)
})

// ── Large body ────────────────────────────────────────────────────────────────

test('a 5 MB body: the server receives every byte, byte-equal, then the FIN', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const body = randomBytes(5 * 1024 * 1024)
  const expected = buildRequest(server.url, { body })
  const result = await within(30_000, trigger(server.url, { body }), '5 MB trigger')
  assert.equal(result.bytes, expected.length)
  const connection = await server.connection(0)
  await within(30_000, connection.whenClosed, 'server side close')
  assert.equal(connection.ended, true, 'FIN after the last byte')
  assert.equal(connection.received.length, expected.length)
  assert.ok(connection.received.equals(expected), 'byte-equal')
})

// ── TLS ───────────────────────────────────────────────────────────────────────

test('TLS: a self-signed server with tls.ca works; the server decrypts exactly the request bytes', async (t) => {
  const cert = await testCert()
  const server = await startRawServer({ tls: cert })
  t.after(() => server.close())
  const options = { body: { secure: true }, tls: { ca: cert.cert } }
  const result = await within(5_000, trigger(server.url, options), 'TLS trigger')
  assert.equal(result.remotePort, server.port)
  const connection = await server.connection(0)
  await within(5_000, connection.whenClosed, 'server side close')
  assert.deepEqual(connection.received, buildRequest(server.url, { body: { secure: true } }))
  assert.equal(connection.ended, true)
})

test('TLS: SNI is sent for a host name (localhost)', async (t) => {
  const cert = await testCert()
  const server = await startRawServer({ tls: cert })
  t.after(() => server.close())
  await trigger(`https://localhost:${server.port}/`, { tls: { ca: cert.cert } })
  const connection = await server.connection(0)
  assert.equal(connection.servername, 'localhost')
})

test('TLS: no SNI for an IP literal (RFC 6066 §3)', async (t) => {
  const cert = await testCert()
  const server = await startRawServer({ tls: cert })
  t.after(() => server.close())
  await trigger(`https://127.0.0.1:${server.port}/`, { tls: { ca: cert.cert } })
  const connection = await server.connection(0)
  assert.equal(connection.servername, false)
})

test('TLS: no SNI for an IPv6 literal either', async (t) => {
  const cert = await testCert()
  const server = await startRawServer({ tls: cert, host: '::1' })
  t.after(() => server.close())
  await trigger(`https://[::1]:${server.port}/`, { tls: { ca: cert.cert } })
  const connection = await server.connection(0)
  assert.equal(connection.servername, false)
})

test('TLS: without ca the self-signed server is refused with RT_ERR_TLS, the Node code on cause, and gets no request bytes', async (t) => {
  const cert = await testCert()
  const server = await startRawServer({ tls: cert })
  t.after(() => server.close())
  const err = await within(5_000, rejectsWith(trigger(server.url, { body: 'Authorization material' }), 'RT_ERR_TLS'), 'TLS trigger')
  assert.equal((err.cause as NodeJS.ErrnoException).code, 'DEPTH_ZERO_SELF_SIGNED_CERT')
  assert.ok(err.message.includes(`127.0.0.1:${server.port}`), err.message)
  // The untrusted server never completed a handshake, so it never saw a plaintext byte.
  assert.equal(server.tcpConnections, 1)
  assert.equal(server.connections.length, 0)
})

test('TLS: rejectUnauthorized: false is passed through to tls.connect', async (t) => {
  const cert = await testCert()
  const server = await startRawServer({ tls: cert })
  t.after(() => server.close())
  const result = await trigger(server.url, { tls: { rejectUnauthorized: false } })
  assert.equal(result.remotePort, server.port)
})

test('TLS: a 5 MB body arrives byte-equal over TLS before the socket is closed', async (t) => {
  const cert = await testCert()
  const server = await startRawServer({ tls: cert })
  t.after(() => server.close())
  const body = randomBytes(5 * 1024 * 1024)
  const expected = buildRequest(server.url, { body })
  await within(30_000, trigger(server.url, { body, tls: { ca: cert.cert } }), '5 MB TLS trigger')
  const connection = await server.connection(0)
  await within(30_000, connection.whenClosed, 'server side close')
  assert.equal(connection.received.length, expected.length)
  assert.ok(connection.received.equals(expected), 'byte-equal')
})

test('TLS: ack works over TLS', async (t) => {
  const cert = await testCert()
  const server = await startRawServer({ tls: cert, answer: ACCEPTED })
  t.after(() => server.close())
  const result = await trigger(server.url, { ack: true, tls: { ca: cert.cert } })
  assert.equal(result.status, 202)
})
