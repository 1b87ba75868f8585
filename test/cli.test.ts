// The CLI as a person runs it: `node bin/rawtrigger.js …` in a child process, against raw servers.
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { generateSecret, trigger, verify } from 'rawtrigger'
import { within } from './helpers/assert-error.ts'
import { headerValues, parseRequest, refusedPort, startRawServer } from './helpers/raw-server.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(REPO, 'bin/rawtrigger.js')

interface Run { code: number, stdout: string, stderr: string }

/** Runs the CLI; resolves with the exit code and output whatever the code (never rejects on exit 1/2). */
function cli (args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], {
      cwd: REPO,
      env: { ...process.env, TRIGGER_SECRET: '' },
      timeout: 30_000,
    }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(err)
        return
      }
      resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr })
    })
  })
}

test('--help exits 0 and describes fire and secret, the exit codes and the error codes', async () => {
  const run = await cli(['--help'])
  assert.equal(run.code, 0, run.stderr)
  assert.match(run.stdout, /rawtrigger fire <url>/)
  assert.match(run.stdout, /rawtrigger secret/)
  assert.match(run.stdout, /--data/)
  assert.match(run.stdout, /RT_ERR_/)
  assert.equal(run.stderr, '')
})

test('no arguments prints the same help and exits 0', async () => {
  const [none, help] = await Promise.all([cli([]), cli(['--help'])])
  assert.equal(none.code, 0)
  assert.equal(none.stdout, help.stdout)
})

test('secret prints whsec_ + 44 base64 characters (32 bytes) and a new one each time', async () => {
  const [a, b] = await Promise.all([cli(['secret']), cli(['secret'])])
  assert.equal(a.code, 0, a.stderr)
  assert.match(a.stdout, /^whsec_[A-Za-z0-9+/]{43}=\n$/)
  assert.equal(Buffer.from(a.stdout.trim().slice('whsec_'.length), 'base64').length, 32)
  assert.notEqual(a.stdout, b.stdout)
})

test("fire <url> --data '{\"a\":1}' --json prints the result as JSON; the server got the body and the FIN", async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const run = await cli(['fire', server.url, '--data', '{"a":1}', '--json'])
  assert.equal(run.code, 0, run.stderr)
  const result = JSON.parse(run.stdout) as { bytes: number, connectMs: number, totalMs: number, remoteAddress: string, remotePort: number }
  assert.equal(result.remoteAddress, '127.0.0.1')
  assert.equal(result.remotePort, server.port)
  assert.equal(typeof result.connectMs, 'number')
  assert.equal(typeof result.totalMs, 'number')

  const connection = await server.connection(0)
  await within(5_000, connection.whenClosed, 'server side close')
  assert.equal(connection.ended, true)
  assert.equal(result.bytes, connection.received.length)
  const request = parseRequest(connection.received)
  assert.equal(request.method, 'POST')
  assert.equal(request.body.toString(), '{"a":1}')
  assert.deepEqual(headerValues(request, 'content-type'), ['application/json'])
  assert.deepEqual(headerValues(request, 'content-length'), ['7'])
})

test('fire without --json prints a line a person can read', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const run = await cli(['fire', server.url])
  assert.equal(run.code, 0, run.stderr)
  assert.match(run.stdout, new RegExp(`^sent \\d+ bytes to 127\\.0\\.0\\.1:${server.port}\\b.*status not read\\n$`))
})

test('-H repeated: every header line arrives, in order; -X sets the method', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const run = await cli(['fire', server.url, '-X', 'PUT', '-H', 'X-A: 1', '-H', 'X-A: 2', '--header', 'X-B:   spaced  '])
  assert.equal(run.code, 0, run.stderr)
  const connection = await server.connection(0)
  await connection.whenClosed
  const request = parseRequest(connection.received)
  assert.equal(request.method, 'PUT')
  assert.deepEqual(headerValues(request, 'x-a'), ['1', '2'])
  assert.deepEqual(headerValues(request, 'x-b'), ['spaced'])
  assert.deepEqual(headerValues(request, 'content-length'), ['0'], 'PUT with no body says Content-Length: 0')
})

test('--data @file sends the file, and -H Content-Type replaces the JSON default', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const dir = await mkdtemp(join(tmpdir(), 'rawtrigger-cli-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'body.txt')
  await writeFile(file, 'línea uno\nline two\n')
  const run = await cli(['fire', server.url, '--data', '@' + file, '-H', 'content-type: text/plain; charset=utf-8'])
  assert.equal(run.code, 0, run.stderr)
  const connection = await server.connection(0)
  await connection.whenClosed
  const request = parseRequest(connection.received)
  assert.equal(request.body.toString('utf8'), 'línea uno\nline two\n')
  assert.deepEqual(headerValues(request, 'content-type'), ['text/plain; charset=utf-8'])
})

test('--secret signs the request so that verify accepts it', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const secret = generateSecret()
  const run = await cli(['fire', server.url, '--data', '{"order":1}', '--secret', secret])
  assert.equal(run.code, 0, run.stderr)
  const connection = await server.connection(0)
  await connection.whenClosed
  const request = parseRequest(connection.received)
  const headers = Object.fromEntries(request.headers.map(([name, value]) => [name.toLowerCase(), value]))
  assert.doesNotThrow(() => verify(secret, request.body, headers))
})

test('--ack prints the status; exit 0 on 202, exit 1 on 503', async (t) => {
  const ok = await startRawServer({ answer: 'HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n' })
  const busy = await startRawServer({ answer: 'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n' })
  t.after(() => Promise.all([ok.close(), busy.close()]))
  const accepted = await cli(['fire', ok.url, '--ack', '--json'])
  assert.equal(accepted.code, 0, accepted.stderr)
  assert.equal((JSON.parse(accepted.stdout) as { status: number }).status, 202)
  const refused = await cli(['fire', busy.url, '--ack'])
  assert.equal(refused.code, 1)
  assert.match(refused.stdout, /status 503/)
})

test('fire to a refused port exits 1 and stderr names RT_ERR_CONNECT and ECONNREFUSED', async () => {
  const port = await refusedPort()
  const run = await cli(['fire', `http://127.0.0.1:${port}/`, '--data', '{}'])
  assert.equal(run.code, 1)
  assert.match(run.stderr, /RT_ERR_CONNECT\b/)
  assert.match(run.stderr, /ECONNREFUSED/)
  assert.match(run.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`))
  assert.equal(run.stdout, '')
})

test('an invalid header value exits 1 with its code and opens no connection', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const run = await cli(['fire', server.url, '-H', 'X-A: a\rInjected: 1'])
  assert.equal(run.code, 1)
  assert.match(run.stderr, /RT_ERR_INVALID_HEADER_VALUE/)
  await trigger(server.url) // sentinel: once it has arrived, a connection from the child would have too
  await within(5_000, server.closedCount(1), 'sentinel')
  assert.equal(server.tcpConnections, 1, 'only the sentinel connected')
})

for (const [what, args] of [
  ['an unknown flag', ['fire', 'http://127.0.0.1:1/', '--bogus']],
  ['an unknown command', ['launch']],
  ['fire without a URL', ['fire']],
  ['a header without a colon', ['fire', 'http://127.0.0.1:1/', '-H', 'NoColon']],
  ['--timeout 0', ['fire', 'http://127.0.0.1:1/', '--timeout', '0']],
] as const) {
  test(`bad usage (${what}) exits 2 with RT_ERR_INVALID_OPTION`, async () => {
    const run = await cli([...args])
    assert.equal(run.code, 2, run.stderr)
    assert.match(run.stderr, /RT_ERR_INVALID_OPTION/)
  })
}
