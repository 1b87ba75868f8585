// RELIABILITY.md items 10-12 and 15, and the HTTP surface of DESIGN.md: malformed and slow requests,
// limits, JSON errors, the endpoints' shapes, and clients that are gone when answered.
import assert from 'node:assert/strict'
import net from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import {
  getJob, getStats, jsonOf, postJob, rawExchange, readRecords, request, startReceiver, statusOf, tempDir,
  waitFor, waitForState, type JsonResponse, type StatsBody,
} from './helpers/receiver.ts'

/** Asserts a JSON error answer: `status`, `application/json`, and `{"error":{"code","message"}}` with `code`. */
function assertError (res: JsonResponse, status: number, code: string): { code: string, message: string, field?: string } {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${res.text}`)
  assert.match(String(res.headers['content-type']), /^application\/json/)
  const error = (res.json as { error?: { code?: unknown, message?: unknown } } | undefined)?.error
  assert.ok(error !== undefined, `no {"error": …} in ${res.text}`)
  assert.equal(error.code, code)
  assert.equal(typeof error.message, 'string')
  assert.ok((error.message as string).length > 0)
  return error as { code: string, message: string, field?: string }
}

function assertNoJobs (stats: StatsBody): void {
  assert.equal(stats.accepted, 0, 'accepted')
  assert.deepEqual(stats.jobs, { queued: 0, running: 0, done: 0, failed: 0 })
}

test('malformed HTTP over raw sockets: 400 or close, never a job', async (t) => {
  const r = await startReceiver(t)
  const file = join(tempDir(t), 'records')
  const json = JSON.stringify({ n: 1, file })
  const len = Buffer.byteLength(json)
  const chunked = `${len.toString(16)}\r\n${json}\r\n0\r\n\r\n`
  const cases: Record<string, string> = {
    'Transfer-Encoding and Content-Length together':
      `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(chunked)}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`,
    'bare LF line endings':
      `POST /jobs/record HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\nContent-Length: ${len}\n\n${json}`,
    'space before the colon (Content-Length : n)':
      `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length : ${len}\r\n\r\n${json}`,
    'missing Host (HTTP/1.1)':
      `POST /jobs/record HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n\r\n${json}`,
    'invalid chunk size':
      `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${json}\r\n0\r\n\r\n`,
    'two different Content-Lengths':
      `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\nContent-Length: ${len + 1}\r\n\r\n${json} `,
    'NUL in a header value':
      `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Evil: a\0b\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n\r\n${json}`,
  }
  for (const [name, bytes] of Object.entries(cases)) {
    const ex = await rawExchange(r.port, bytes, 5_000)
    const status = statusOf(ex.response)
    assert.ok(ex.closed, `${name}: the connection was left open (answer: ${JSON.stringify(ex.response.slice(0, 80))})`)
    assert.ok(status === undefined || status === 400, `${name}: expected 400 or a close, got ${JSON.stringify(ex.response.slice(0, 120))}`)
    // (The JSON body of these 400s is checked below; Node answers a missing Host itself.)
  }
  // Give a wrongly created job time to show, then check that none was.
  await new Promise((resolve) => setTimeout(resolve, 200))
  assertNoJobs(await getStats(r.url))
  assert.deepEqual(readRecords(file), [])

  // The well-formed request with the same body is accepted: the cases fail for their framing only.
  const ok = await rawExchange(r.port, `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\nConnection: close\r\n\r\n${json}`)
  assert.equal(statusOf(ok.response), 202, ok.response)
})

test('every malformed-request 400 carries the JSON error body {"error":{"code","message"}}', async (t) => {
  const r = await startReceiver(t)
  const cases: Record<string, string> = {
    'Transfer-Encoding and Content-Length together':
      'POST /jobs/noop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
    'bare LF line endings': 'POST /jobs/noop HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\nContent-Length: 2\n\n{}',
    'space before the colon': 'POST /jobs/noop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length : 2\r\n\r\n{}',
    // Node's `requireHostHeader` answers this one itself, with an empty body, unless the receiver checks Host.
    'missing Host (HTTP/1.1)': 'POST /jobs/noop HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
  }
  const bad: string[] = []
  for (const [name, bytes] of Object.entries(cases)) {
    const ex = await rawExchange(r.port, bytes, 5_000)
    assert.equal(statusOf(ex.response), 400, `${name}: ${JSON.stringify(ex.response.slice(0, 120))}`)
    let code: unknown
    try { code = jsonOf(ex.response).error.code } catch { code = undefined }
    if (code !== 'RT_ERR_BAD_REQUEST') bad.push(`${name}: ${JSON.stringify(ex.response)}`)
  }
  assert.deepEqual(bad, [], '400 answers without {"error":{"code":"RT_ERR_BAD_REQUEST",…}}')
})

/** Writes `head`, then `drip` one byte every 500 ms until the server closes; returns what came back. */
function dripUntilClosed (port: number, head: string, drip: string, guardMs: number): Promise<{ response: string, closedAfterMs: number | undefined }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const started = Date.now()
    let sent = 0
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearInterval(timer)
      clearTimeout(guard)
      socket.destroy()
      resolve({ response: Buffer.concat(chunks).toString('latin1'), closedAfterMs: closed ? Date.now() - started : undefined })
    }
    const timer = setInterval(() => {
      if (socket.writable && sent < drip.length) socket.write(drip[sent++] as string)
    }, 500)
    const guard = setTimeout(() => finish(false), guardMs)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.on('close', () => finish(true))
    socket.on('end', () => finish(true))
    socket.write(head)
  })
}

test('slowloris: headers sent one byte every 500 ms are cut (408 or close) within headersTimeoutMs and the check interval', async (t) => {
  const r = await startReceiver(t, { headersTimeoutMs: 1_000, requestTimeoutMs: 2_000 })
  // 40 bytes at 2/s would take 20 s: far more than the 1 s limit (Node checks every 1 s).
  const result = await dripUntilClosed(r.port, 'POST /jobs/record HTTP/1.1\r\n', 'Host: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa', 8_000)
  assert.ok(result.closedAfterMs !== undefined, 'the slow-headers connection was still open after 8 s')
  const status = statusOf(result.response)
  assert.ok(status === undefined || status === 408, `expected 408 or a close, got ${JSON.stringify(result.response.slice(0, 120))}`)
  if (status === 408) assert.equal(jsonOf(result.response).error.code, 'RT_ERR_REQUEST_TIMEOUT')
  t.diagnostic(`slow headers cut after ${result.closedAfterMs} ms with ${status ?? 'no answer'}`)
})

test('slow body: a body sent one byte every 500 ms is cut (408 or close) within requestTimeoutMs, and makes no job', async (t) => {
  const r = await startReceiver(t, { headersTimeoutMs: 1_000, requestTimeoutMs: 2_000 })
  const file = join(tempDir(t), 'records')
  const json = JSON.stringify({ n: 1, file })
  const head = `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n`
  const result = await dripUntilClosed(r.port, head, json, 8_000)
  assert.ok(result.closedAfterMs !== undefined, 'the slow-body connection was still open after 8 s')
  const status = statusOf(result.response)
  assert.ok(status === undefined || status === 408, `expected 408 or a close, got ${JSON.stringify(result.response.slice(0, 120))}`)
  t.diagnostic(`slow body cut after ${result.closedAfterMs} ms with ${status ?? 'no answer'}`)
  await new Promise((resolve) => setTimeout(resolve, 200))
  assertNoJobs(await getStats(r.url))
  assert.deepEqual(readRecords(file), [])
})

test('headers over the limit: 431 with a JSON error', async (t) => {
  const r = await startReceiver(t)
  const ex = await rawExchange(r.port, `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`)
  assert.equal(statusOf(ex.response), 431, ex.response.slice(0, 120))
  assert.equal(jsonOf(ex.response).error.code, 'RT_ERR_BAD_REQUEST')
  assertNoJobs(await getStats(r.url))
})

test('body over the limit, announced by Content-Length: 413 RT_ERR_BODY_TOO_LARGE before the body is sent', async (t) => {
  const r = await startReceiver(t, { maxBodyBytes: 1_024 })
  // Only the head: the answer must come without the 10 MB it announces.
  const ex = await rawExchange(r.port, 'POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n', 5_000)
  assert.equal(statusOf(ex.response), 413, JSON.stringify(ex.response.slice(0, 120)))
  assert.equal(jsonOf(ex.response).error.code, 'RT_ERR_BODY_TOO_LARGE')
  assert.match(ex.response, /\r\nconnection: close\r\n/i)
  assertNoJobs(await getStats(r.url))
})

test('body over the limit, chunked without Content-Length: 413 RT_ERR_BODY_TOO_LARGE', async (t) => {
  const r = await startReceiver(t, { maxBodyBytes: 1_024 })
  const answer = await new Promise<string>((resolve) => {
    const socket = net.connect(r.port, '127.0.0.1')
    const chunks: Buffer[] = []
    let sent = 0
    const done = (): void => {
      clearInterval(timer)
      socket.destroy()
      resolve(Buffer.concat(chunks).toString('latin1'))
    }
    socket.write('POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n')
    // 256-byte chunks every 10 ms, at most 64 (16 KiB, 16x the limit); stops at the first answer.
    const timer = setInterval(() => {
      if (sent++ >= 64 || !socket.writable) return done()
      socket.write(`100\r\n${' '.repeat(256)}\r\n`)
    }, 10)
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      if (Buffer.concat(chunks).includes('\r\n\r\n')) setTimeout(done, 50)
    })
    socket.on('error', () => {})
    socket.on('close', done)
  })
  assert.equal(statusOf(answer), 413, JSON.stringify(answer.slice(0, 120)))
  assert.equal(jsonOf(answer.slice(0, answer.lastIndexOf('}') + 1)).error.code, 'RT_ERR_BODY_TOO_LARGE')
  assertNoJobs(await getStats(r.url))
})

test('not JSON → 415; bad JSON → 400 RT_ERR_BAD_JSON; schema → 400 naming the field; none makes a job', async (t) => {
  const r = await startReceiver(t)
  const file = join(tempDir(t), 'records')
  const body = JSON.stringify({ n: 1, file })

  assertError(await request(`${r.url}/jobs/record`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body }), 415, 'RT_ERR_UNSUPPORTED_MEDIA_TYPE')
  assertError(await request(`${r.url}/jobs/record`, { method: 'POST', body }), 415, 'RT_ERR_UNSUPPORTED_MEDIA_TYPE')
  assertError(await request(`${r.url}/jobs/record`, { method: 'POST', headers: { 'content-type': 'application/jsonp' }, body }), 415, 'RT_ERR_UNSUPPORTED_MEDIA_TYPE')

  assertError(await postJob(r.url, 'record', '{"n": 1,'), 400, 'RT_ERR_BAD_JSON')
  assertError(await postJob(r.url, 'record', ''), 400, 'RT_ERR_BAD_JSON')
  // Invalid UTF-8 is not JSON text either.
  assertError(await request(`${r.url}/jobs/record`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }), 400, 'RT_ERR_BAD_JSON')

  const badN = assertError(await postJob(r.url, 'record', { n: -1, file }), 400, 'RT_ERR_VALIDATION')
  assert.equal(badN.field, 'n')
  assert.match(badN.message, /\bn\b/)
  const noFile = assertError(await postJob(r.url, 'record', { n: 1 }), 400, 'RT_ERR_VALIDATION')
  assert.equal(noFile.field, 'file')
  assert.match(noFile.message, /file/)
  assertError(await postJob(r.url, 'record', [1, 2]), 400, 'RT_ERR_VALIDATION')

  assertNoJobs(await getStats(r.url))
  assert.deepEqual(readRecords(file), [])
  // The receiver counts what it refused.
  assert.equal((await getStats(r.url)).rejected, 9)
  // …and the same body, correctly labelled, is a job.
  const ok = await postJob(r.url, 'record', body, { 'content-type': 'application/json; charset=utf-8' })
  assert.equal(ok.status, 202, ok.text)
})

test('unknown job type → 404; GET of an unknown job → 404; PUT → 405; unknown path → 404; all JSON errors', async (t) => {
  const r = await startReceiver(t)
  const unknownType = assertError(await postJob(r.url, 'nope', { a: 1 }), 404, 'RT_ERR_NOT_FOUND')
  assert.match(unknownType.message, /nope/)
  assertError(await request(`${r.url}/jobs/00000000-0000-4000-8000-000000000000`), 404, 'RT_ERR_NOT_FOUND')
  assertError(await request(`${r.url}/jobs/x`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' }), 405, 'RT_ERR_METHOD_NOT_ALLOWED')
  assertError(await request(`${r.url}/jobs/x`, { method: 'DELETE' }), 405, 'RT_ERR_METHOD_NOT_ALLOWED')
  assertError(await request(`${r.url}/no/such/path`), 404, 'RT_ERR_NOT_FOUND')
  assertNoJobs(await getStats(r.url))
})

test('GET /healthz → 200; GET /stats has the documented shape and counts', async (t) => {
  const r = await startReceiver(t)
  const health = await request(`${r.url}/healthz`)
  assert.equal(health.status, 200)

  const file = join(tempDir(t), 'records')
  const job = await postJob(r.url, 'record', { n: 3, file })
  assert.equal(job.status, 202)
  await waitForState(r.url, job.json.id as string, 'done')
  assertError(await postJob(r.url, 'record', { n: 'x', file }), 400, 'RT_ERR_VALIDATION')

  const stats = await getStats(r.url)
  assert.deepEqual(Object.keys(stats).filter((k) => k !== 'duplicates').sort(), ['accepted', 'emails', 'jobs', 'rejected'])
  assert.deepEqual(Object.keys(stats.jobs).sort(), ['done', 'failed', 'queued', 'running'])
  assert.deepEqual(Object.keys(stats.emails).sort(), ['failed', 'pending', 'sent'])
  assert.equal(stats.accepted, 1)
  assert.equal(stats.rejected, 1)
  assert.deepEqual(stats.jobs, { queued: 0, running: 0, done: 1, failed: 0 })
  assert.deepEqual(stats.emails, { sent: 3, failed: 0, pending: 0 })
})

test('GET /jobs/:id has the documented shape, queued and done', async (t) => {
  const file = join(tempDir(t), 'records')
  // concurrency 0: the job stays queued, so the queued view can be read.
  const idle = await startReceiver(t, { concurrency: 0 })
  const posted = await postJob(idle.url, 'record', { n: 4, file })
  assert.equal(posted.status, 202, posted.text)
  assert.equal(typeof posted.json.id, 'string')
  assert.equal(posted.json.type, 'record')
  const queued = await getJob(idle.url, posted.json.id as string)
  assert.equal(queued.id, posted.json.id)
  assert.equal(queued.type, 'record')
  assert.equal(queued.state, 'queued')
  assert.equal(queued.total, 4)
  assert.equal(queued.sent, 0)
  assert.equal(queued.failed, 0)
  assert.equal(queued.pending, 4)
  assert.ok(!Number.isNaN(Date.parse(queued.createdAt)), `createdAt ${queued.createdAt}`)
  assert.equal(new Date(queued.createdAt).toISOString(), queued.createdAt, 'createdAt is ISO 8601')
  assert.equal(queued.startedAt, undefined)
  assert.equal(queued.finishedAt, undefined)
  assert.deepEqual(queued.errors, [])
  await idle.close()

  // The same data dir with a worker: the job runs and the view fills in.
  const r = await startReceiver(t, { dataDir: idle.dataDir })
  const done = await waitForState(r.url, posted.json.id as string, 'done')
  for (const key of ['id', 'type', 'state', 'total', 'sent', 'failed', 'pending', 'createdAt', 'startedAt', 'finishedAt', 'errors']) {
    assert.ok(key in done, `GET /jobs/:id lacks ${key}: ${JSON.stringify(done)}`)
  }
  assert.equal(done.total, 4)
  assert.equal(done.sent, 4)
  assert.equal(done.failed, 0)
  assert.equal(done.pending, 0)
  assert.deepEqual(done.errors, [])
  const created = Date.parse(done.createdAt)
  const started = Date.parse(done.startedAt as string)
  const finished = Date.parse(done.finishedAt as string)
  assert.ok(created <= started && started <= finished, `createdAt ${done.createdAt} ≤ startedAt ${done.startedAt} ≤ finishedAt ${done.finishedAt}`)
  assert.deepEqual(readRecords(file).map(([, i]) => i).sort(), [0, 1, 2, 3])
})

test('clients that are gone when answered (EPIPE/ECONNRESET): no crash, the server keeps answering', async (t) => {
  const r = await startReceiver(t, { maxBodyBytes: 1_024 })
  const errors: unknown[] = []
  const onError = (err: unknown): void => { errors.push(err) }
  process.on('uncaughtException', onError)
  t.after(() => { process.off('uncaughtException', onError) })
  const file = join(tempDir(t), 'records')
  const json = JSON.stringify({ n: 1, file })
  const requests = [
    // Complete requests, then RST at once: the 202 goes to a reset socket.
    `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
    // Errors answered to a gone client: 400, 404, 413 (the body is not read), 415.
    'POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n{x}',
    'GET /jobs/nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    'POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(2048),
    'POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi',
    'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    // A malformed request answered by clientError to a gone client.
    'POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length : 2\r\n\r\n{}',
  ]
  const rounds = 20
  for (let i = 0; i < rounds; i++) {
    await Promise.all(requests.map((bytes, k) => new Promise<void>((resolve) => {
      const socket = net.connect(r.port, '127.0.0.1')
      socket.on('error', () => {})
      socket.on('close', () => resolve())
      socket.once('connect', () => {
        if ((i + k) % 2 === 0) socket.write(bytes, () => socket.resetAndDestroy())
        else socket.end(bytes, () => socket.destroy())
      })
    })))
  }
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.deepEqual(errors, [], 'uncaught exceptions while answering gone clients')
  assert.ok(r.receiver.server.listening, 'the server stopped listening')
  const health = await request(`${r.url}/healthz`)
  assert.equal(health.status, 200)
  // The complete requests among them (half FIN, half RST) were kept: at least the FIN ones.
  await waitFor('the FIN-closed jobs to run', () => (readRecords(file).length >= rounds / 2 ? true : undefined), 10_000)
})

test('an early 413 survives a client that keeps sending and reads late: the receiver lingers, no RST drops the answer', async (t) => {
  const r = await startReceiver(t, { maxBodyBytes: 1_024 })
  const socket = net.connect(r.port, '127.0.0.1')
  t.after(() => socket.destroy())
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  socket.pause() // read nothing yet: the answer waits in this side's receive buffer
  const total = 8 * 1024 * 1024
  socket.write(`POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`)
  const chunk = Buffer.alloc(64 * 1024, 0x20)
  let writeError: unknown
  socket.on('error', (err) => { writeError ??= err })
  const until = Date.now() + 500
  while (Date.now() < until && writeError === undefined && !socket.destroyed) {
    if (!socket.write(chunk)) await new Promise((resolve) => setTimeout(resolve, 5))
    else await new Promise((resolve) => setImmediate(resolve))
  }
  let answer = ''
  socket.setEncoding('utf8').on('data', (s: string) => { answer += s })
  socket.resume()
  await new Promise<void>((resolve) => { socket.once('close', () => resolve()); setTimeout(resolve, 4_000) })
  assert.match(answer, /^HTTP\/1\.1 413 /, `got ${JSON.stringify(answer.slice(0, 80))} (${String((writeError as NodeJS.ErrnoException | undefined)?.code ?? 'no error')})`)
  assert.match(answer, /RT_ERR_BODY_TOO_LARGE/)
})
