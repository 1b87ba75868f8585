// Triggers over Unix-domain sockets (`socketPath`) and `serve --socket`: the same bytes as over TCP,
// a Unix-socket peer counts as local, the socket file's mode, a stale file replaced, a live one
// refused, the file removed on stop; and the figure the README gives (no TIME_WAIT).
import assert from 'node:assert/strict'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { buildRequest, createReceiver, createTriggerPool, fireMany, trigger } from 'rawtrigger'
import { rejectsWith, throwsWith } from './helpers/assert-error.ts'
import { startReceiver, tempDir } from './helpers/receiver.ts'
import { runCli, spawnServe } from './helpers/serve-process.ts'
import { socketPathIn, socketRequest, startRawUnixServer } from './helpers/unix-socket.ts'
import { waitFor } from './helpers/wait.ts'

/** Triggers per transport in the TIME_WAIT figure: well under the ephemeral port range. */
const FIGURE_TRIGGERS = 2_000
const FIGURE_CONCURRENCY = 16

function modeOf (path: string): number {
  return statSync(path).mode & 0o777
}

test('trigger({ socketPath }): the URL gives path and Host, the bytes are buildRequest\'s, then the FIN', async (t) => {
  const raw = await startRawUnixServer(t)
  const url = 'http://localhost/jobs/noop?x=1'
  const options = { body: { hello: 'wörld' }, headers: { 'webhook-id': 'unix-1' } }
  const result = await trigger(url, { ...options, socketPath: raw.path })
  const got = await raw.ended(0)
  assert.deepEqual(got, buildRequest(url, options))
  assert.match(got.toString('latin1'), /^POST \/jobs\/noop\?x=1 HTTP\/1\.1\r\nHost: localhost\r\n/)
  assert.equal(result.bytes, got.length)
  assert.equal(result.remoteAddress, raw.path)
  assert.equal(result.remotePort, 0)
})

test('socketPath is checked before any connection; a missing socket is RT_ERR_CONNECT with ENOENT on cause', async (t) => {
  const dir = tempDir(t, 'rt-sock-')
  for (const bad of ['', 'a\0b', '/tmp/' + 'x'.repeat(120), 42]) {
    await rejectsWith(trigger('http://localhost/', { socketPath: bad as string }), 'RT_ERR_INVALID_OPTION')
    throwsWith(() => createTriggerPool('http://localhost/', { socketPath: bad as string }), 'RT_ERR_INVALID_OPTION')
    await rejectsWith(fireMany('http://localhost/', ['x'], { socketPath: bad as string }), 'RT_ERR_INVALID_OPTION')
  }
  const err = await rejectsWith(trigger('http://localhost/', { socketPath: join(dir, 'none.sock') }), 'RT_ERR_CONNECT')
  assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT')
  assert.match(err.message, /unix:\/.*none\.sock/)
})

test('a Unix socket with a full backlog (EAGAIN at connect): triggers wait and retry as TCP would, none fails', async (t) => {
  const path = socketPathIn(t, 'tiny.sock')
  const sink = net.createServer((socket) => {
    socket.on('data', () => {})
    socket.on('end', () => socket.end())
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => sink.listen({ path, backlog: 2 }, resolve))
  t.after(() => sink.close())
  const summary = await fireMany('http://localhost/jobs/noop', Array.from({ length: 300 }, (_, i) => ({ i })), { socketPath: path, concurrency: 64 })
  assert.deepEqual({ sent: summary.sent, failed: summary.failed }, { sent: 300, failed: 0 }, summary.errors[0]?.error.message)
})

test('createReceiver({ socketPath }): mode 0660, url http://localhost, unsigned triggers stored (a Unix peer is local), removed on close', async (t) => {
  const socketPath = socketPathIn(t)
  const r = await startReceiver(t, { socketPath })
  assert.equal(r.receiver.url, 'http://localhost')
  assert.equal(r.receiver.socketPath, socketPath)
  assert.equal(r.port, 0)
  assert.equal(modeOf(socketPath), 0o660)
  assert.ok(statSync(socketPath).isSocket())

  await trigger('http://localhost/jobs/noop', { socketPath, body: { a: 1 }, headers: { 'webhook-id': 'via-trigger' } })
  const ack = await trigger('http://localhost/jobs/noop', { socketPath, body: {}, ack: true })
  assert.equal(ack.status, 202, ack.response)
  const pool = createTriggerPool('http://localhost/jobs/noop', { socketPath, connections: 2 })
  for (let i = 0; i < 20; i++) await pool.fire({ body: { i }, headers: { 'webhook-id': `via-pool-${i}` } })
  await pool.close()
  assert.deepEqual(pool.stats().statuses, { 202: 20 })
  const many = await fireMany('http://localhost/jobs/noop', Array.from({ length: 30 }, (_, i) => ({ i })), { socketPath, concurrency: 4 })
  assert.equal(many.sent, 30)

  const job = await socketRequest(socketPath, 'GET', '/jobs/via-trigger')
  assert.equal(job.status, 200, JSON.stringify(job.json))
  let stats = await socketRequest(socketPath, 'GET', '/stats')
  for (let i = 0; i < 100 && stats.json.accepted < 52; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    stats = await socketRequest(socketPath, 'GET', '/stats')
  }
  assert.equal(stats.json.accepted, 52)

  // The Host rule still holds: a local proxy in front of the socket could forward a rebinding page's Host.
  const rebinding = await socketRequest(socketPath, 'GET', '/stats', { headers: { host: 'evil.example' } })
  assert.equal(rebinding.status, 403)
  assert.equal(rebinding.json.error.code, 'RT_ERR_FORBIDDEN')

  await r.close()
  assert.equal(existsSync(socketPath), false, 'the socket file is removed on close')
})

test('createReceiver: socketMode honoured; a non-socket file at the path is refused, not replaced; host is not checked', async (t) => {
  const dir = tempDir(t, 'rt-sock-')
  const owner = join(dir, 'owner.sock')
  const r = await startReceiver(t, { socketPath: owner, socketMode: 0o600, host: '0.0.0.0' })
  assert.equal(modeOf(owner), 0o600)
  await r.close()

  const file = join(dir, 'file.sock')
  writeFileSync(file, 'not a socket')
  await assert.rejects(createReceiver({ socketPath: file, dataDir: dir, logLevel: 'silent' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'RT_ERR_CONFIG')
    assert.match(err.message, /exists and is not a socket/)
    return true
  })
  assert.equal(readFileSync(file, 'utf8'), 'not a socket')
  await assert.rejects(createReceiver({ socketPath: join(dir, 'x.sock'), socketMode: 0o1777, dataDir: dir }), /socketMode must be a file mode/)
})

test('serve --socket: mode 0660, a second serve refused, kill -9 leaves a stale file the next start replaces, SIGTERM removes it', async (t) => {
  const dataDir = tempDir(t, 'rt-serve-sock-')
  const socketPath = socketPathIn(t)
  const first = await spawnServe(t, { dataDir, socket: socketPath })
  assert.match(first.stdout(), /rawtrigger listening on http:\/\/localhost via unix:\S+rt\.sock /)
  assert.equal(modeOf(socketPath), 0o660)
  await trigger('http://localhost/jobs/noop', { socketPath, body: {}, headers: { 'webhook-id': 'before-crash' } })

  const second = await spawnServe(t, { dataDir: tempDir(t, 'rt-serve-sock-'), socket: socketPath, ready: false })
  const exit = await second.exited
  assert.equal(exit.code, 1, second.stderr())
  assert.match(second.stderr(), new RegExp(`RT_ERR_CONFIG: another process listens on ${socketPath.replaceAll('/', '\\/')}`))
  assert.equal((await socketRequest(socketPath, 'GET', '/healthz')).status, 200, 'the first one still serves on its socket')

  first.kill('SIGKILL')
  await first.exited
  assert.ok(existsSync(socketPath), 'kill -9 leaves the socket file behind')
  await rejectsWith(trigger('http://localhost/', { socketPath }), 'RT_ERR_CONNECT') // ECONNREFUSED: nobody listens

  const third = await spawnServe(t, { dataDir, socket: socketPath })
  assert.equal(modeOf(socketPath), 0o660)
  assert.equal((await socketRequest(socketPath, 'GET', '/jobs/before-crash')).status, 200, 'the job stored before the crash')
  await trigger('http://localhost/jobs/noop', { socketPath, body: {}, headers: { 'webhook-id': 'after-restart' } })
  let after = await socketRequest(socketPath, 'GET', '/jobs/after-restart')
  for (let i = 0; i < 100 && after.status !== 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    after = await socketRequest(socketPath, 'GET', '/jobs/after-restart')
  }
  assert.equal(after.status, 200)

  third.kill('SIGTERM')
  assert.deepEqual(await third.exited, { code: 0, signal: null })
  assert.equal(existsSync(socketPath), false, 'a clean stop removes the socket file')
})

test('serve: --socket with --port or --host is bad usage; --socket-mode is octal', async (t) => {
  const socketPath = socketPathIn(t)
  for (const args of [['--socket', socketPath, '--port', '0'], ['--socket', socketPath, '--host', '127.0.0.1'], ['--socket', socketPath, '--socket-mode', '999'], ['--socket-mode', '0600']]) {
    const run = await runCli(t, ['serve', ...args], { SOCKET_PATH: '' })
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
    assert.match(run.stderr, /^rawtrigger: RT_ERR_INVALID_OPTION: /)
  }
  const owner = await spawnServe(t, { dataDir: tempDir(t, 'rt-serve-sock-'), socket: socketPath, args: ['--socket-mode', '0600'] })
  assert.equal(modeOf(socketPath), 0o600)
  owner.kill('SIGTERM')
  await owner.exited
})

/** Sockets of `port` in TIME_WAIT (state 06), from /proc/net/tcp and tcp6. */
function timeWait (port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0')
  let n = 0
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const [, local, remote, state] = line.trim().split(/\s+/)
      if (state === '06' && (local?.endsWith(`:${hex}`) === true || remote?.endsWith(`:${hex}`) === true)) n++
    }
  }
  return n
}

test('the figure: fireMany over a Unix socket leaves no TIME_WAIT; over TCP every trigger leaves one', { skip: existsSync('/proc/net/tcp') ? false : 'needs Linux /proc/net/tcp' }, async (t) => {
  // A sink that reads each request to its FIN and closes: the transport's cost alone.
  const onConnection = (socket: net.Socket): void => {
    socket.on('data', () => {})
    socket.on('end', () => socket.end())
    socket.on('error', () => {})
  }
  const tcp = net.createServer(onConnection)
  const unix = net.createServer(onConnection)
  const socketPath = socketPathIn(t, 'sink.sock')
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve))
  await new Promise<void>((resolve) => unix.listen(socketPath, resolve))
  t.after(() => { tcp.close(); unix.close() })
  const port = (tcp.address() as net.AddressInfo).port
  const bodies = (): Array<Record<string, number>> => Array.from({ length: FIGURE_TRIGGERS }, (_, i) => ({ i }))

  const overTcp = await fireMany(`http://127.0.0.1:${port}/jobs/noop`, bodies(), { concurrency: FIGURE_CONCURRENCY })
  // A port enters TIME_WAIT once this process's sink has closed its side, which it does on its
  // own event-loop turns: the triggers of the native path may all be out before the first of them.
  const settled = (): number | undefined => { const n = timeWait(port); return n >= FIGURE_TRIGGERS * 0.9 ? n : undefined }
  const tcpTimeWait = await waitFor('TCP ports in TIME_WAIT', settled, 3_000).catch(() => timeWait(port)) // the assert below names the count
  const overUnix = await fireMany('http://localhost/jobs/noop', bodies(), { concurrency: FIGURE_CONCURRENCY, socketPath })
  assert.equal(overTcp.sent, FIGURE_TRIGGERS)
  assert.equal(overUnix.sent, FIGURE_TRIGGERS)
  assert.ok(tcpTimeWait >= FIGURE_TRIGGERS * 0.9, `TCP: ${tcpTimeWait} in TIME_WAIT after ${FIGURE_TRIGGERS} triggers`)
  t.diagnostic(`${FIGURE_TRIGGERS} triggers, concurrency ${FIGURE_CONCURRENCY}: TCP ${Math.round(overTcp.perSecond)}/s leaving ${tcpTimeWait} ports in TIME_WAIT; ` +
    `Unix socket ${Math.round(overUnix.perSecond)}/s leaving none (${(overUnix.perSecond / overTcp.perSecond).toFixed(2)}x)`)
})

test('serve --socket: the web page\'s Send fires its trigger over the socket, and the campaign is stored', async (t) => {
  const socketPath = socketPathIn(t)
  await spawnServe(t, { dataDir: tempDir(t, 'rt-serve-sock-'), socket: socketPath, args: ['--concurrency', '0'] })
  const sent = await socketRequest(socketPath, 'POST', '/campaigns', {
    body: { subject: 'Hi', text: 'Hello', recipients: 'a@example.org\nb@example.org' },
    headers: { host: 'localhost', 'content-type': 'application/json' },
  })
  assert.equal(sent.status, 202, JSON.stringify(sent.json))
  let progress = await socketRequest(socketPath, 'GET', `/campaigns/${String(sent.json.id)}`, { headers: { host: 'localhost' } })
  for (let i = 0; i < 100 && progress.json?.state === 'pending'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    progress = await socketRequest(socketPath, 'GET', `/campaigns/${String(sent.json.id)}`, { headers: { host: 'localhost' } })
  }
  assert.equal(progress.status, 200)
  assert.equal(progress.json.state, 'queued', 'stored by the receiver behind the socket, not pending forever')
  assert.equal(progress.json.total, 2)
})
