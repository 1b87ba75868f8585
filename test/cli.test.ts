// The CLI as a person runs it: `node bin/rawtrigger.js …` in a child process, against raw servers.
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { generateSecret, trigger, verify } from 'rawtrigger'
import { portFlag } from '../src/cli/args.ts'
import { throwsWith, within } from './helpers/assert-error.ts'
import { headerValues, parseRequest, refusedPort, startRawServer } from './helpers/raw-server.ts'
import { getJob, startReceiver, tempDir, waitFor } from './helpers/receiver.ts'

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
  const result = JSON.parse(run.stdout) as { id: string, bytes: number, connectMs: number, totalMs: number, remoteAddress: string, remotePort: number }
  assert.match(result.id, /^msg_[A-Za-z0-9]{32}$/)
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
  assert.deepEqual(headerValues(request, 'webhook-id'), [result.id], 'the printed id is the one sent')
})

test('fire without --json prints a line a person can read, then the id', async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const run = await cli(['fire', server.url])
  assert.equal(run.code, 0, run.stderr)
  assert.match(run.stdout, new RegExp(`^sent \\d+ bytes to 127\\.0\\.0\\.1:${server.port}\\b.*status not read\\nid msg_[A-Za-z0-9]{32}\\n$`))
})

test("-H 'webhook-id: x' is sent once and printed, with --secret the signed id", async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const secret = generateSecret()
  const [plain, signed] = await Promise.all([
    cli(['fire', server.url, '-H', 'webhook-id: order-17']),
    cli(['fire', server.url, '-d', '{}', '-H', 'Webhook-Id: order-18', '--secret', secret]),
  ])
  assert.equal(plain.code, 0, plain.stderr)
  assert.equal(signed.code, 0, signed.stderr)
  assert.match(plain.stdout, /\nid order-17\n$/)
  assert.match(signed.stdout, /\nid order-18\n$/)
  await within(10_000, server.closedCount(2), 'both requests')
  const requests = server.connections.map((c) => parseRequest(c.received))
  const byId = new Map(requests.map((r) => [headerValues(r, 'webhook-id').join(','), r]))
  assert.deepEqual([...byId.keys()].sort(), ['order-17', 'order-18'], 'one webhook-id header each')
  const signedRequest = byId.get('order-18') as ReturnType<typeof parseRequest>
  const headers = Object.fromEntries(signedRequest.headers.map(([name, value]) => [name.toLowerCase(), value]))
  assert.equal(verify(secret, signedRequest.body, headers).id, 'order-18')
})

test('the printed id is the job id: GET /jobs/<id> on the receiver finds it, with and without --ack', async (t) => {
  const r = await startReceiver(t)
  const file = join(tempDir(t), 'records')
  const data = JSON.stringify({ n: 1, file })
  const [fired, acked] = await Promise.all([
    cli(['fire', `${r.url}/jobs/record`, '-d', data]),
    cli(['fire', `${r.url}/jobs/record`, '-d', data, '--ack']),
  ])
  assert.equal(fired.code, 0, fired.stderr)
  assert.equal(acked.code, 0, acked.stderr)
  assert.match(acked.stdout, /status 202\n/)
  for (const run of [fired, acked]) {
    const id = /\nid (\S+)\n$/.exec(run.stdout)?.[1]
    assert.ok(id !== undefined, run.stdout)
    const view = await waitFor(`job ${id}`, () => getJob(r.url, id))
    assert.equal(view.id, id)
  }
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
  assert.equal(refused.stderr, 'rawtrigger: HTTP/1.1 503 Service Unavailable\n', 'no JSON error body: the status line')
})

test('--ack against the receiver: a 4xx prints its status, code and message and exits 1', async (t) => {
  const r = await startReceiver(t)
  const run = await cli(['fire', `${r.url}/jobs/record`, '-d', '{"n":1}', '--ack']) // no file: a 400
  assert.equal(run.code, 1, run.stderr)
  assert.match(run.stdout, /status 400\n/)
  assert.match(run.stderr, /^rawtrigger: RT_ERR_VALIDATION: file: .+ \(HTTP 400\)\n$/)
})

test('--ack with a 6 MB @file over the receiver limit shows 413 RT_ERR_BODY_TOO_LARGE, not RT_ERR_WRITE', async (t) => {
  const r = await startReceiver(t, { maxBodyBytes: 1_024 })
  const file = join(tempDir(t), 'big.json')
  await writeFile(file, JSON.stringify({ n: 1, file: '/dev/null', pad: 'x'.repeat(6 * 1024 * 1024) }))
  const run = await cli(['fire', `${r.url}/jobs/record`, '-d', '@' + file, '--ack', '--json'])
  assert.equal(run.code, 1, run.stderr)
  assert.equal((JSON.parse(run.stdout) as { status: number }).status, 413)
  assert.match(run.stderr, /^rawtrigger: RT_ERR_BODY_TOO_LARGE: .*1024 bytes \(HTTP 413\)\n$/)
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

// Usage errors against a live server: exit 2 with the code, and nothing connected.
for (const [what, args, code] of [
  ['an invalid header value', ['-H', 'X-A: a\rInjected: 1'], 'RT_ERR_INVALID_HEADER_VALUE'],
  ['--data that is not JSON', ['--data', '{"a":'], 'RT_ERR_INVALID_BODY'],
  ['--data @file of a file that is not there', ['--data', '@/nonexistent/rawtrigger-body.json'], 'RT_ERR_INVALID_OPTION'],
  ['a forbidden header', ['-H', 'Content-Length: 3'], 'RT_ERR_FORBIDDEN_HEADER'],
  ['a bad method', ['-X', 'GE T'], 'RT_ERR_INVALID_METHOD'],
  ['webhook-id twice', ['-H', 'webhook-id: a', '-H', 'webhook-id: b'], 'RT_ERR_INVALID_OPTION'],
] as const) {
  test(`bad usage (${what}) exits 2 with ${code} and opens no connection`, async (t) => {
    const server = await startRawServer()
    t.after(() => server.close())
    const run = await cli(['fire', server.url, ...args])
    assert.equal(run.code, 2, run.stderr)
    assert.match(run.stderr, new RegExp(`^rawtrigger: ${code}: `))
    assert.equal(run.stdout, '')
    await trigger(server.url) // sentinel: once it has arrived, a connection from the child would have too
    await within(5_000, server.closedCount(1), 'sentinel')
    assert.equal(server.tcpConnections, 1, 'only the sentinel connected')
  })
}

test('--data @file: the read error names the file and keeps the OS code', async () => {
  const run = await cli(['fire', 'http://127.0.0.1:1/', '--data', '@/nonexistent/rawtrigger-body.json'])
  assert.equal(run.code, 2)
  assert.match(run.stderr, /\/nonexistent\/rawtrigger-body\.json.*\(ENOENT\)\n$/)
})

test("-H 'Content-Type: text/plain' sends a body that is not JSON as is", async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  const run = await cli(['fire', server.url, '--data', '{"a":', '-H', 'Content-Type: text/plain'])
  assert.equal(run.code, 0, run.stderr)
  const connection = await server.connection(0)
  await connection.whenClosed
  assert.equal(parseRequest(connection.received).body.toString(), '{"a":')
})

for (const [what, args, code] of [
  ['an unknown flag', ['fire', 'http://127.0.0.1:1/', '--bogus'], 'RT_ERR_INVALID_OPTION'],
  ['an unknown command', ['launch'], 'RT_ERR_INVALID_OPTION'],
  ['help for an unknown command', ['help', 'launch'], 'RT_ERR_INVALID_OPTION'],
  ['fire without a URL', ['fire'], 'RT_ERR_INVALID_OPTION'],
  ['fire with a string that is not a URL', ['fire', 'notaurl'], 'RT_ERR_INVALID_URL'],
  ['fire with an ftp URL', ['fire', 'ftp://127.0.0.1/'], 'RT_ERR_INVALID_URL'],
  ['a header without a colon', ['fire', 'http://127.0.0.1:1/', '-H', 'NoColon'], 'RT_ERR_INVALID_OPTION'],
  ['--timeout 0', ['fire', 'http://127.0.0.1:1/', '--timeout', '0'], 'RT_ERR_INVALID_OPTION'],
  ['a secret that is not base64', ['fire', 'http://127.0.0.1:1/', '--secret', 'whsec_%%%'], 'RT_ERR_INVALID_SECRET'],
] as const) {
  test(`bad usage (${what}) exits 2 with ${code}`, async () => {
    const run = await cli([...args])
    assert.equal(run.code, 2, run.stderr)
    assert.match(run.stderr, new RegExp(`^rawtrigger: ${code}: `))
  })
}

test('help for an unknown command names the commands', async () => {
  const run = await cli(['help', 'launch'])
  assert.match(run.stderr, /fire, serve, jobs, suppressions, secret, help/)
  assert.equal(run.stdout, '')
})

test('help <command> prints that command', async () => {
  const [fire, jobs] = await Promise.all([cli(['help', 'fire']), cli(['help', 'suppressions'])])
  assert.equal(fire.code, 0, fire.stderr)
  assert.match(fire.stdout, /^rawtrigger fire <url>/)
  assert.match(jobs.stdout, /rawtrigger suppressions <list\|add\|remove>/)
})

test('portFlag: an integer from 0 to 65535, checked when the flag is parsed', () => {
  assert.equal(portFlag('--port', undefined), undefined)
  assert.equal(portFlag('--port', '0'), 0)
  assert.equal(portFlag('--port', '8080'), 8080)
  assert.equal(portFlag('--port', '65535'), 65_535)
  for (const bad of ['65536', '-1', '1.5', '80x', 'http', '1e3', '0x50']) {
    const err = throwsWith(() => portFlag('--port', bad), 'RT_ERR_INVALID_OPTION')
    assert.match(err.message, new RegExp(`^--port .*0 to 65535 \\(got ${bad.replace('.', '\\.')}\\)$`))
  }
})
