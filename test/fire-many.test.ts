// fireMany(): every body fired, never more sockets than `concurrency`, failures counted, not thrown.
// These tests watch node:net's sockets, so they turn the native fast path off; it has its own
// tests in native-fire.test.ts.
import diagnostics from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { fireMany, type Body } from 'rawtrigger'
import { rejectsWith, within } from './helpers/assert-error.ts'
import { parseRequest, refusedPort, startRawServer, type RawConnection, type RawServer } from './helpers/raw-server.ts'
import { useNative } from '../src/net/native-fire.ts'

useNative(false)

/**
 * Counts the client sockets this process opens and the most open at once, from Node's own
 * `net.client.socket` diagnostics channel (published by `net.connect`). A socket counts as open
 * until `destroyed`: destroy() closes the file descriptor at once, while the 'close' event comes a
 * loop turn later (and the server's view lags further), so neither would be an exact figure.
 */
function watchClientSockets (t: TestContext): { readonly opened: number, readonly maxOpen: number } {
  const live = new Set<Socket>()
  let opened = 0
  let maxOpen = 0
  const onSocket = (message: unknown): void => {
    for (const socket of live) if (socket.destroyed) live.delete(socket)
    live.add((message as { socket: Socket }).socket)
    opened++
    maxOpen = Math.max(maxOpen, live.size)
  }
  diagnostics.subscribe('net.client.socket', onSocket)
  t.after(() => diagnostics.unsubscribe('net.client.socket', onSocket))
  return { get opened () { return opened }, get maxOpen () { return maxOpen } }
}

/** The `i` of every `{ i }` JSON body the server received complete, after checking Content-Length. */
function receivedIndexes (server: RawServer): number[] {
  return server.connections.map((connection) => {
    assert.equal(connection.ended, true, `connection ${connection.index} saw no FIN`)
    const request = parseRequest(connection.received)
    const length = request.headers.find(([name]) => name === 'Content-Length')?.[1]
    assert.equal(Number(length), request.body.length, `connection ${connection.index}: body complete`)
    return (JSON.parse(request.body.toString('utf8')) as { i: number }).i
  })
}

const bodies = (n: number): Body[] => Array.from({ length: n }, (_, i) => ({ i }))

test('500 bodies at concurrency 16: 500 complete requests, each body once, never more than 16 sockets', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const sockets = watchClientSockets(t)

  const summary = await within(30_000, fireMany(server.url, bodies(500), { concurrency: 16 }), 'fireMany')
  await within(30_000, server.closedCount(500), 'server saw 500 connections close')

  assert.equal(summary.sent, 500)
  assert.equal(summary.failed, 0)
  assert.deepEqual(summary.errors, [])
  assert.equal(server.connections.length, 500)
  assert.deepEqual(receivedIndexes(server).sort((a, b) => a - b), Array.from({ length: 500 }, (_, i) => i))
  assert.equal(sockets.opened, 500)
  assert.equal(sockets.maxOpen, 16, 'all 16 workers busy at once, never a 17th socket')
  assert.ok(server.maxOpen <= 16, `server saw ${server.maxOpen} open at once`)
})

test('the summary has sent, failed, errors, totalMs and perSecond = sent per second of totalMs', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const summary = await fireMany(server.url, bodies(40), { concurrency: 8 })
  assert.deepEqual(Object.keys(summary).sort(), ['errors', 'failed', 'perSecond', 'sent', 'totalMs'])
  assert.equal(summary.sent, 40)
  assert.ok(summary.totalMs > 0)
  assert.ok(Math.abs(summary.perSecond - (summary.sent / summary.totalMs) * 1000) < 1e-6, `perSecond ${summary.perSecond}`)
  await within(10_000, server.closedCount(40), 'server side close')
  assert.equal(server.connections.length, 40)
})

test('a refused port: every trigger counted as failed, errors capped at 100 with their index', async () => {
  const port = await refusedPort()
  const n = 150
  const summary = await within(30_000, fireMany(`http://127.0.0.1:${port}/`, bodies(n), { concurrency: 16 }), 'fireMany')
  assert.equal(summary.sent, 0)
  assert.equal(summary.failed, n)
  assert.equal(summary.errors.length, 100)
  assert.equal(summary.perSecond, 0)
  const indexes = new Set(summary.errors.map((e) => e.index))
  assert.equal(indexes.size, 100, 'each failure reported once')
  for (const { index, error } of summary.errors) {
    assert.ok(Number.isInteger(index) && index >= 0 && index < n, `index ${index}`)
    assert.equal((error as { code?: string }).code, 'RT_ERR_CONNECT')
    assert.equal(((error as { cause?: { code?: string } }).cause)?.code, 'ECONNREFUSED')
  }
})

test('bad bodies among good ones: the bad ones fail with their index, the good ones arrive', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const input = [{ i: 0 }, new Date(0), { i: 2 }, new Map(), { i: 4 }] as unknown as Body[]
  const summary = await fireMany(server.url, input, { concurrency: 2 })
  assert.equal(summary.sent, 3)
  assert.equal(summary.failed, 2)
  assert.deepEqual(summary.errors.map((e) => e.index).sort(), [1, 3])
  for (const { error } of summary.errors) assert.equal((error as { code?: string }).code, 'RT_ERR_INVALID_BODY')
  await within(10_000, server.closedCount(3), 'server side close')
  assert.deepEqual(receivedIndexes(server).sort(), [0, 2, 4])
})

for (const concurrency of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '16']) {
  test(`concurrency ${String(concurrency)} rejects RT_ERR_INVALID_OPTION naming the option, nothing fired`, async (t) => {
    const server = await startRawServer()
    t.after(() => server.close())
    const err = await rejectsWith(fireMany(server.url, bodies(3), { concurrency: concurrency as number }), 'RT_ERR_INVALID_OPTION')
    assert.match(err.message, /concurrency/)
    await fireMany(server.url, bodies(1)) // sentinel
    await within(5_000, server.closedCount(1), 'sentinel')
    assert.equal(server.tcpConnections, 1)
  })
}

test('an invalid URL rejects the whole run with RT_ERR_INVALID_URL', async () => {
  await rejectsWith(fireMany('ftp://127.0.0.1/', bodies(3)), 'RT_ERR_INVALID_URL')
})

// STYLE.md point 7: options are validated once, up front, like the URL; not once per body.
test('an invalid trigger option rejects the whole run up front with RT_ERR_INVALID_OPTION', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  await rejectsWith(fireMany(server.url, bodies(5), { connectTimeoutMs: 0 }), 'RT_ERR_INVALID_OPTION')
})

test('an async iterable of bodies works, with the concurrency still bounded', async (t) => {
  // The first four connections are held open until all four are there: the run only goes on if
  // the async source fed four workers at once.
  const held: RawConnection[] = []
  const server = await startRawServer({
    onHead (connection) {
      if (held.length >= 4) { connection.socket.end(); return }
      held.push(connection)
      if (held.length === 4) for (const c of held) c.socket.end()
    },
  })
  t.after(() => server.close())
  const sockets = watchClientSockets(t)
  async function * generate (): AsyncGenerator<Body> {
    for (let i = 0; i < 30; i++) {
      if (i % 5 === 0) await new Promise((resolve) => setImmediate(resolve))
      yield { i }
    }
  }
  const summary = await within(10_000, fireMany(server.url, generate(), { concurrency: 4 }), 'fireMany')
  assert.equal(summary.sent, 30)
  await within(10_000, server.closedCount(30), 'server side close')
  assert.deepEqual(receivedIndexes(server).sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i))
  assert.equal(sockets.maxOpen, 4, 'four sockets at once, never a fifth')
})

test('a generator is consumed lazily: a body is pulled only when a worker is free to fire it', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const sockets = watchClientSockets(t)
  let pulled = 0
  let maxAhead = 0
  function * generate (): Generator<Body> {
    for (let i = 0; i < 50; i++) {
      pulled++
      maxAhead = Math.max(maxAhead, pulled - sockets.opened)
      yield { i }
    }
  }
  const summary = await fireMany(server.url, generate(), { concurrency: 5 })
  assert.equal(summary.sent, 50)
  assert.equal(pulled, 50)
  // Each worker pulls one body, then opens its socket: at most 5 pulled and not yet fired.
  // A run that drained the input first would be 50 ahead.
  assert.ok(maxAhead <= 5, `pulled ${maxAhead} bodies ahead of the sockets opened`)
})

test('an empty input fires nothing and reports zeros', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const summary = await fireMany(server.url, [])
  assert.equal(summary.sent, 0)
  assert.equal(summary.failed, 0)
  assert.deepEqual(summary.errors, [])
  assert.equal(summary.perSecond, 0)
  assert.equal(server.tcpConnections, 0)
})

test('an abort mid-run: every body is accounted for as sent or failed (RT_ERR_ABORTED), no hang', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const controller = new AbortController()
  const run = fireMany(server.url, bodies(300), { concurrency: 8, signal: controller.signal })
  await within(10_000, server.connection(20), '20 connections')
  controller.abort()
  const summary = await within(10_000, run, 'fireMany after abort')
  assert.equal(summary.sent + summary.failed, 300)
  assert.ok(summary.failed > 0, 'some were aborted')
  for (const { error } of summary.errors) assert.equal((error as { code?: string }).code, 'RT_ERR_ABORTED')
})

test('fireMany options reach every trigger (headers, method)', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  await fireMany(server.url, ['a', 'b', 'c'], { method: 'PUT', headers: { 'X-Batch': '7' }, concurrency: 2 })
  await within(10_000, server.closedCount(3), 'server side close')
  for (const connection of server.connections) {
    const request = parseRequest(connection.received)
    assert.equal(request.method, 'PUT')
    assert.deepEqual(request.headers.filter(([name]) => name === 'X-Batch'), [['X-Batch', '7']])
  }
  assert.deepEqual(server.connections.map((c) => parseRequest(c.received).body.toString()).sort(), ['a', 'b', 'c'])
})
