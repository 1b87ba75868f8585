// The llhttp intake (src/server/intake-connection.ts): POST /jobs/:type parsed and answered on the
// connection, every other request handed to node:http, answers in request order either way.
import assert from 'node:assert/strict'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { join } from 'node:path'
import test, { type TestContext } from 'node:test'
import { headersOf, loadLlhttp } from '../src/server/llhttp.ts'
import { getStats, rawExchange, sleep, startReceiver, tempDir, type TestReceiver } from './helpers/receiver.ts'

/** The status lines and JSON bodies of the HTTP/1.1 responses in `text`, in order. */
function responses (text: string): Array<{ status: number, body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const out: Array<{ status: number, body: unknown }> = []
  let at = 0
  while (at < text.length) {
    const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n/.exec(text.slice(at))
    if (m === null) break
    const headEnd = text.indexOf('\r\n\r\n', at)
    const head = text.slice(at, headEnd)
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
    const body = text.slice(headEnd + 4, headEnd + 4 + length)
    out.push({ status: Number(m[1]), body: body === '' ? undefined : JSON.parse(body) })
    at = headEnd + 4 + length
  }
  return out
}

function post (r: TestReceiver, body: string, extra = '', connection = 'keep-alive'): string {
  return `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1:${r.port}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: ${connection}\r\n${extra}\r\n${body}`
}

async function recorder (t: TestContext, options: { intake?: 'llhttp' | 'node' } = {}): Promise<{ r: TestReceiver, job: string, nodeRequests: () => number }> {
  const r = await startReceiver(t, { concurrency: 0, ...options })
  let seen = 0
  r.receiver.server.on('request', () => seen++)
  return { r, job: JSON.stringify({ n: 1, file: join(tempDir(t), 'log') }), nodeRequests: () => seen }
}

test('this Node exposes llhttp as the intake expects', () => {
  assert.ok(loadLlhttp() !== undefined, '_http_common.HTTPParser is missing: the receiver would serve everything through node:http')
})

test('POST /jobs/:type is answered on the intake and a GET by node:http; intake: node serves both through node:http', async (t) => {
  for (const intake of ['llhttp', 'node'] as const) {
    const { r, job, nodeRequests } = await recorder(t, { intake })
    const accepted = await rawExchange(r.port, post(r, job, '', 'close'))
    assert.equal(responses(accepted.response)[0]?.status, 202, accepted.response)
    const health = await rawExchange(r.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
    assert.equal(responses(health.response)[0]?.status, 200, health.response)
    assert.equal(nodeRequests(), intake === 'llhttp' ? 1 : 2, `${intake}: requests node:http saw`)
  }
})

test('pipelined in one write: answers in request order, a refusal between two jobs, and node:http takes over at the first GET', async (t) => {
  const { r, job, nodeRequests } = await recorder(t)
  const bytes = post(r, job) + post(r, '{"n":') + `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n` + post(r, job, '', 'close')
  const got = await rawExchange(r.port, bytes)
  assert.deepEqual(responses(got.response).map((a) => a.status), [202, 400, 200, 202], got.response)
  assert.equal(nodeRequests(), 2, 'the GET and the POST after it')
  const stats = await getStats(r.url)
  assert.equal(stats.accepted, 2)
})

test('more than 32 header fields (the binding hands them over early): parsed whole, webhook-id dedups', async (t) => {
  const { r, job } = await recorder(t)
  const pad = Array.from({ length: 40 }, (_, i) => `X-Pad-${i}: ${i}\r\n`).join('')
  const first = responses((await rawExchange(r.port, post(r, job, `${pad}Webhook-Id: msg_many_headers\r\n`, 'close'))).response)[0]
  const again = responses((await rawExchange(r.port, post(r, job, `Webhook-Id: msg_many_headers\r\n${pad}`, 'close'))).response)[0]
  assert.equal(first?.status, 202)
  assert.equal(again?.status, 202)
  assert.equal(again?.body.duplicate, true, 'the key in the 41st field was read')
  assert.equal(again?.body.id, first?.body.id)
})

test('Expect: 100-continue goes to node:http (100, then 202); a chunked body and an HTTP/1.0 request without Host are taken', async (t) => {
  const { r, job } = await recorder(t)
  const expect = await rawExchange(r.port, post(r, job, 'Expect: 100-continue\r\n', 'close'))
  assert.match(expect.response, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /, expect.response)
  const chunked = `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n` +
    `Connection: close\r\n\r\n5\r\n${job.slice(0, 5)}\r\n${(job.length - 5).toString(16)}\r\n${job.slice(5)}\r\n0\r\n\r\n`
  assert.equal(responses((await rawExchange(r.port, chunked)).response)[0]?.status, 202)
  const old = await rawExchange(r.port, `POST /jobs/record HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${job.length}\r\n\r\n${job}`)
  assert.equal(responses(old.response)[0]?.status, 202, old.response)
  assert.ok(old.closed, 'HTTP/1.0 without keep-alive: closed after the answer')
})

test('headersOf() builds the headers object node:http builds from the same request', async (t) => {
  let seen: http.IncomingHttpHeaders | undefined
  let raw: string[] = []
  const server = http.createServer((req, res) => {
    seen = req.headers
    raw = req.rawHeaders
    res.end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => server.close())
  const port = (server.address() as AddressInfo).port
  await rawExchange(port, 'POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n' +
    'Webhook-Id: one\r\nwebhook-id: two\r\nCookie: a=1\r\nCookie: b=2\r\nSet-Cookie: x\r\nSet-Cookie: y\r\nAuthorization: Bearer 1\r\n' +
    'Authorization: Bearer 2\r\nX-Custom: 1\r\nX-CUSTOM: 2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
  assert.ok(seen !== undefined)
  assert.deepEqual({ ...headersOf(raw) }, { ...seen })
})

test('40 pipelined jobs in one write, the last body in a later one: reading pauses past 32 waiting answers and resumes, all 202', async (t) => {
  const r = await startReceiver(t, { concurrency: 0, headersTimeoutMs: 2_000, requestTimeoutMs: 3_000 })
  const job = JSON.stringify({ n: 1, file: join(tempDir(t), 'log') })
  const all = Array.from({ length: 40 }, (_, i) => post(r, job, '', i === 39 ? 'close' : 'keep-alive')).join('')
  const cut = all.length - 5 // inside the last body: its head (and its place in the answers) is read first
  const socket = net.connect(r.port, '127.0.0.1')
  t.after(() => socket.destroy())
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.write(all.slice(0, cut))
  await sleep(300)
  socket.write(all.slice(cut))
  await closed
  const statuses = responses(Buffer.concat(chunks).toString('latin1')).map((a) => a.status)
  assert.deepEqual(statuses, Array.from({ length: 40 }, () => 202), `got ${statuses.join(' ')}`)
})

test('one keep-alive connection, request after request with pauses between: a job on the intake, then GETs and a job through node:http after the handoff', async (t) => {
  const { r, job, nodeRequests } = await recorder(t)
  const socket = net.connect(r.port, '127.0.0.1')
  t.after(() => socket.destroy())
  let text = ''
  socket.setEncoding('utf8')
  socket.on('data', (d: string) => { text += d })
  const answered = async (n: number): Promise<void> => {
    for (let i = 0; i < 200 && responses(text).length < n; i++) await sleep(10)
  }
  const get = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`
  const steps = [post(r, job), get, get, post(r, job), get]
  for (const [i, step] of steps.entries()) {
    socket.write(step)
    await answered(i + 1)
    await sleep(50) // each request in a read of its own, after the last answer
  }
  assert.deepEqual(responses(text).map((a) => a.status), [202, 200, 200, 202, 200], text)
  assert.equal(nodeRequests(), 4, 'node:http served every request from the first GET on')
  assert.equal(socket.destroyed, false, 'the connection is still open')
  assert.equal((await getStats(r.url)).accepted, 2)
})
