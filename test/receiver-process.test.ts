// RELIABILITY.md items 15-17 with real child processes of `rawtrigger serve` (helpers/serve-process.ts
// starts `node --import tsx src/cli.ts serve`, so signals reach the server itself): kill -9 mid-job
// and restart on the same data dir, SIGTERM/SIGINT while a job runs, requests during the stop.
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import Database from 'better-sqlite3'
import { sleep } from './helpers/handlers.ts'
import {
  getStats, postJob, rawPost, readRecords, request, tempDir, waitFor, waitForState, type JsonResponse,
} from './helpers/receiver.ts'
import { startServe, type Exit, type ServeProcess } from './helpers/serve-process.ts'

/** The job's row as the file holds it, read without SqliteStore (which would expire dead owners' leases on open). */
function rowOf (dataDir: string, id: string): { state: string, done: number, total: number } | undefined {
  const db = new Database(join(dataDir, 'rawtrigger.db'))
  try {
    return db.prepare('SELECT state, done, total FROM jobs WHERE id = ?').get(id) as { state: string, done: number, total: number } | undefined
  } finally {
    db.close()
  }
}

/** Waits for the child's exit, failing after `ms` (a guard, not a timing claim). */
async function exitWithin (serve: ServeProcess, ms: number): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`serve did not exit within ${ms} ms\nstderr: ${serve.stderr().slice(-2000)}`)), ms)
  })
  try {
    return await Promise.race([serve.exited, guard])
  } finally {
    clearTimeout(timer)
  }
}

/** Indexes recorded for `id`, and how many lines repeat an index already recorded. */
function tally (file: string, id: string): { indexes: number[], duplicates: number } {
  const lines = readRecords(file).filter(([job]) => job === id).map(([, i]) => i)
  const indexes = [...new Set(lines)].sort((a, b) => a - b)
  return { indexes, duplicates: lines.length - indexes.length }
}

const ALL_200 = Array.from({ length: 200 }, (_, i) => i)

test('kill -9 mid-job, restart on the same data dir: all 200 items recorded, at most 1 duplicate, done, nothing running', async (t) => {
  const dataDir = tempDir(t)
  const file = join(dataDir, 'records')
  const first = await startServe(t, dataDir, ['--log-level', 'warn'])
  const res = await postJob(first.url, 'record', { n: 200, ms: 10, file })
  assert.equal(res.status, 202, res.text)
  const id = res.json.id as string
  await waitFor('40 items recorded', () => (readRecords(file).length >= 40 ? true : undefined), 15_000, 5)
  first.kill('SIGKILL')
  const exit = await exitWithin(first, 10_000)
  assert.equal(exit.signal, 'SIGKILL', 'the server process itself was killed')
  const atKill = rowOf(dataDir, id)
  assert.equal(atKill?.state, 'running', 'killed mid-job')
  assert.ok((atKill?.done ?? 0) < 200, 'killed before the end')

  const second = await startServe(t, dataDir, ['--log-level', 'warn'])
  const view = await waitForState(second.url, id, 'done', 20_000)
  assert.equal(view.sent, 200)
  assert.equal(view.attempts, 2)
  const { indexes, duplicates } = tally(file, id)
  assert.deepEqual(indexes, ALL_200)
  assert.ok(duplicates <= 1, `${duplicates} duplicates after one kill -9 (concurrency 1, one item at a time)`)
  const stats = await getStats(second.url)
  assert.equal(stats.jobs.running, 0)
  assert.equal(stats.jobs.done, 1)
})

test('kill -9 right after 202s: every job answered 202 is in the store after restart, and runs', async (t) => {
  const dataDir = tempDir(t)
  const file = join(dataDir, 'records')
  const first = await startServe(t, dataDir, ['--log-level', 'warn', '--concurrency', '0'])
  const answered: string[] = []
  const attempts = 100
  let killed = false
  await Promise.all(Array.from({ length: attempts }, async () => {
    const res: JsonResponse | undefined = await postJob(first.url, 'record', { n: 1, file }).catch(() => undefined)
    if (res?.status === 202) {
      answered.push(res.json.id as string)
      // Killed the moment the 30th answer is in: requests still in flight are cut anywhere.
      if (answered.length === 30 && !killed) {
        killed = true
        first.kill('SIGKILL')
      }
    }
  }))
  await exitWithin(first, 10_000)
  assert.ok(answered.length >= 30, `only ${answered.length} answers before the kill`)

  const second = await startServe(t, dataDir, ['--log-level', 'warn'])
  for (const id of answered) await waitForState(second.url, id, 'done', 10_000)
  const ran = new Set(readRecords(file).map(([id]) => id))
  assert.deepEqual(answered.filter((id) => !ran.has(id)), [], 'answered 202 but never ran')
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} while a job runs: exit 0 within the grace period, job handed back (not running), finished after restart`, async (t) => {
    const dataDir = tempDir(t)
    const file = join(dataDir, 'records')
    const first = await startServe(t, dataDir, ['--log-level', 'warn', '--grace-ms', '5000'])
    const res = await postJob(first.url, 'record', { n: 200, ms: 10, file })
    assert.equal(res.status, 202, res.text)
    const id = res.json.id as string
    await waitFor('30 items recorded', () => (readRecords(file).length >= 30 ? true : undefined), 15_000, 5)
    first.kill(signal)
    const exit = await exitWithin(first, 5_000 + 5_000)
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after ${signal}\nstderr: ${first.stderr().slice(-2000)}`)
    const row = rowOf(dataDir, id)
    assert.notEqual(row?.state, 'running', 'left running after a graceful stop')
    assert.equal(row?.state, 'queued', 'a job with items pending goes back to the queue')
    assert.ok((row?.done ?? 0) < 200)

    const second = await startServe(t, dataDir, ['--log-level', 'warn'])
    await waitForState(second.url, id, 'done', 20_000)
    const { indexes, duplicates } = tally(file, id)
    assert.deepEqual(indexes, ALL_200)
    // The handler stops between items on the abort: nothing is done twice.
    assert.equal(duplicates, 0)
    assert.equal((await getStats(second.url)).jobs.running, 0)
  })
}

test('SIGTERM with a handler that ignores the abort: released after --grace-ms, exit 0, resumed after restart', async (t) => {
  const dataDir = tempDir(t)
  const file = join(dataDir, 'records')
  const first = await startServe(t, dataDir, ['--log-level', 'warn', '--grace-ms', '300'])
  const res = await postJob(first.url, 'stubborn', { n: 100, ms: 20, file })
  assert.equal(res.status, 202, res.text)
  const id = res.json.id as string
  await waitFor('10 items recorded', () => (readRecords(file).length >= 10 ? true : undefined), 15_000, 5)
  first.kill('SIGTERM')
  const exit = await exitWithin(first, 10_000)
  assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM\nstderr: ${first.stderr().slice(-2000)}`)
  const row = rowOf(dataDir, id)
  assert.equal(row?.state, 'queued', `after the grace period: ${JSON.stringify(row)}`)

  const second = await startServe(t, dataDir, ['--log-level', 'warn'])
  await waitForState(second.url, id, 'done', 20_000)
  const { indexes, duplicates } = tally(file, id)
  assert.deepEqual(indexes, Array.from({ length: 100 }, (_, i) => i))
  assert.ok(duplicates <= 1, `${duplicates} duplicates`)
})

test('requests arriving during the stop get 503 or a refused/closed connection, never a lost 202', async (t) => {
  const dataDir = tempDir(t)
  const file = join(dataDir, 'records')
  // A stubborn job keeps the stop going for the whole grace period (1.5 s).
  const first = await startServe(t, dataDir, ['--log-level', 'info', '--grace-ms', '1500'])
  const busy = await postJob(first.url, 'stubborn', { n: 1000, ms: 20, file: file + '.busy' })
  assert.equal(busy.status, 202)
  await waitFor('the stubborn job to start', () => (readRecords(file + '.busy').length >= 2 ? true : undefined), 10_000, 5)

  // A keep-alive connection, open and used before the stop.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => agent.destroy())
  const post = (viaAgent: boolean): Promise<JsonResponse> => request(`${first.url}/jobs/record`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n: 1, file }), ...(viaAgent ? { agent } : {}),
  })
  const before = await post(true)
  assert.equal(before.status, 202)
  const accepted = [before.json.id as string]

  // A connection with a request in flight when the stop begins: its head is in, its body not yet.
  const inFlight = net.connect(first.port, '127.0.0.1')
  const inFlightAnswer: Buffer[] = []
  inFlight.on('data', (c: Buffer) => inFlightAnswer.push(c))
  inFlight.on('error', () => {})
  const inFlightClosed = new Promise<void>((resolve) => inFlight.on('close', () => resolve()))
  t.after(() => inFlight.destroy())
  const body = JSON.stringify({ n: 1, file })
  const keepAliveHead = `POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`
  await new Promise<void>((resolve) => inFlight.write(keepAliveHead, () => resolve()))
  await sleep(100)

  first.kill('SIGTERM')
  await first.waitForStderr('stopping', 5_000)
  // Finish it, and send a second request on the same connection behind it.
  inFlight.write(body + keepAliveHead + body)
  const outcomes: Record<string, number> = {}
  const deadline = Date.now() + 1_000
  let tries = 0
  while (Date.now() < deadline && tries < 200) {
    tries++
    const fireAndForget = new Promise<void>((resolve) => {
      // A fire-and-forget trigger too, which reads nothing: it must not upset the stop.
      const s = net.connect(first.port, '127.0.0.1', () => s.end(rawPost(first.port, 'record', { n: 1, file })))
      s.on('error', () => {})
      s.on('data', () => {})
      s.on('close', () => resolve())
    })
    const results = await Promise.allSettled([post(true), post(false)])
    await fireAndForget
    for (const [k, r] of results.entries()) {
      const key = r.status === 'fulfilled' ? `${k === 0 ? 'keep-alive' : 'new'} ${r.value.status}` : `${k === 0 ? 'keep-alive' : 'new'} ${(r.reason as NodeJS.ErrnoException).code ?? 'error'}`
      outcomes[key] = (outcomes[key] ?? 0) + 1
      if (r.status === 'fulfilled' && r.value.status === 202) accepted.push(r.value.json.id as string)
    }
    await sleep(20)
  }
  await Promise.race([inFlightClosed, sleep(3_000)])
  // Whatever it got: a 202 (then the job must exist), a 503, or a close. Never a 202 for a lost job.
  const answers = Buffer.concat(inFlightAnswer).toString('latin1').split(/(?=HTTP\/1\.1 )/).filter((a) => a !== '')
  for (const answer of answers) {
    const status = Number(answer.slice(9, 12))
    outcomes[`in-flight ${status}`] = (outcomes[`in-flight ${status}`] ?? 0) + 1
    if (status === 202) accepted.push((JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { id: string }).id)
  }
  t.diagnostic(`during the stop: ${JSON.stringify(outcomes)}`)
  for (const key of Object.keys(outcomes)) {
    assert.match(key, /\b(503|202|ECONNREFUSED|ECONNRESET|EPIPE)$/, `unexpected outcome during the stop: ${key}`)
  }
  const exit = await exitWithin(first, 10_000)
  assert.deepEqual(exit, { code: 0, signal: null })

  // Every 202 is a job that exists and runs after the restart.
  const second = await startServe(t, dataDir, ['--log-level', 'warn'])
  for (const id of accepted) await waitForState(second.url, id, 'done', 10_000)
  const ran = new Set(readRecords(file).map(([id]) => id))
  assert.deepEqual(accepted.filter((id) => !ran.has(id)), [], 'answered 202 during the stop but lost')
})

test('a serve process answering hundreds of clients that are already gone does not crash', async (t) => {
  const dataDir = tempDir(t)
  const file = join(dataDir, 'records')
  const serve = await startServe(t, dataDir, ['--log-level', 'warn', '--max-body-bytes', '1024'])
  const requests = [
    rawPost(serve.port, 'record', { n: 1, file }),
    rawPost(serve.port, 'record', '{bad json'),
    rawPost(serve.port, 'nope', {}),
    Buffer.from(`POST /jobs/record HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 99999\r\n\r\n${'x'.repeat(4096)}`),
    Buffer.from('GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'),
    Buffer.from('GET / HTTP/1.1\r\nHost x\r\n\r\n'),
  ]
  for (let round = 0; round < 40; round++) {
    await Promise.all(requests.map((bytes, k) => new Promise<void>((resolve) => {
      const s = net.connect(serve.port, '127.0.0.1')
      s.on('error', () => {})
      s.on('close', () => resolve())
      s.once('connect', () => {
        if ((round + k) % 2 === 0) s.write(bytes, () => s.resetAndDestroy())
        else s.end(bytes, () => s.destroy())
      })
    })))
  }
  await sleep(300)
  assert.equal(serve.child.exitCode, null, `serve exited: ${serve.stderr().slice(-2000)}`)
  assert.equal((await request(`${serve.url}/healthz`)).status, 200)
  assert.doesNotMatch(serve.stderr(), /uncaught|EPIPE|"level":(50|60)/i, 'errors logged for clients that were gone')
})
