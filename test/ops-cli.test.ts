// `rawtrigger jobs list|show|retry|cancel` and `rawtrigger suppressions list|add|remove` (issue 8)
// as a person runs them: `node bin/rawtrigger.js …` child processes against a running
// `rawtrigger serve` child (SQLite, mail to a real SMTP server in this process), with and without
// --secret, --json for the answers; failures exit non-zero with RT_ERR_CONTROL on stderr, followed
// by the server's status, code and message.
// Each CLI start costs about a second (node + tsx), so independent calls run side by side.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { sign } from 'rawtrigger'
import { request } from './helpers/receiver.ts'
import { waitFor } from './helpers/wait.ts'
import { CLI_BIN, runCli, startServe, type ServeProcess } from './helpers/serve-process.ts'
import { startSmtpServer, type TestSmtpServer } from './helpers/smtp-server.ts'

/** A guard per CLI run: it takes about a second. */
const CLI_TIMEOUT_MS = 30_000
const WAIT_MS = 20_000
const SECRET = 'whsec_' + Buffer.from('the ops-cli test secret, 32 bytes').toString('base64')

interface CliResult { code: number | null, stdout: string, stderr: string }

/** Runs `node bin/rawtrigger.js <args>` to its end; no secret or URL from this process's environment. */
function cli (t: TestContext, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(t, args, { TRIGGER_SECRET: '', RAWTRIGGER_URL: '', ...env }, CLI_TIMEOUT_MS, CLI_BIN)
}

/** Exit 0 and the JSON printed by --json. */
function json (r: CliResult, what: string): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(r.code, 0, `${what}: exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  assert.equal(r.stderr, '', `${what}: nothing on stderr`)
  return JSON.parse(r.stdout)
}

/** Exit `code` and `rawtrigger: <RT_ERR…>: …` on stderr, nothing on stdout. */
function failed (r: CliResult, exit: number, errCode: string, what: string): void {
  assert.equal(r.code, exit, `${what}: exit ${String(r.code)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  assert.match(r.stderr, new RegExp(`^rawtrigger: ${errCode}: `), `${what}: ${r.stderr}`)
  assert.equal(r.stdout, '', `${what}: nothing on stdout`)
}

/** Exit 1, `rawtrigger: RT_ERR_CONTROL: …` on stderr with the server's status and code after it. */
function refused (r: CliResult, status: number, serverCode: string, what: string): void {
  failed(r, 1, 'RT_ERR_CONTROL', what)
  assert.match(r.stderr, new RegExp(`: ${status} ${serverCode}: \\S`), `${what}: the server's status, code and message: ${r.stderr}`)
}

/** Waits until the job is in one of `states` (the last answer in the failure). */
async function untilState (url: string, id: string, states: string[], headers: () => Record<string, string> = () => ({})): Promise<Record<string, unknown>> {
  let last = ''
  return waitFor(`job ${id} ${states.join('/')}`, async () => {
    const res = await request(`${url}/jobs/${id}`, { headers: headers() })
    last = res.text
    return res.status === 200 && states.includes(res.json.state as string) ? res.json as Record<string, unknown> : undefined
  }, WAIT_MS).catch((err: Error) => { throw new Error(`${err.message}; last answer: ${last}`) })
}

/** A port nothing listens on (bound, then closed). */
async function closedPort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

interface Setup { serve: ServeProcess, smtp: TestSmtpServer, dir: string }

async function setup (t: TestContext, args: string[] = []): Promise<Setup> {
  const smtp = await startSmtpServer({ faults: { rcpt: { 'b@example.org': { code: 554, message: 'not now', times: 1 } } } })
  const dir = mkdtempSync(join(tmpdir(), 'rttest-ops-cli-'))
  const cleanUp = async (): Promise<void> => {
    await smtp.close()
    rmSync(dir, { recursive: true, force: true })
  }
  const serve = await startServe(t, join(dir, 'data'), ['--smtp', smtp.url, '--retry-base-ms', '50', '--max-attempts', '2', '--log-level', 'warn', ...args])
    .catch(async (err: unknown) => {
      await cleanUp()
      throw err
    })
  t.after(cleanUp) // after startServe's hook (hooks run in the order they were added): the child is gone first
  return { serve, smtp, dir }
}

async function postEmail (url: string, id: string, secret?: string): Promise<void> {
  const body = JSON.stringify({ from: 'ops@example.org', subject: 'Hi', text: 'Hello', recipients: ['a@example.org', 'b@example.org', 'c@example.org'] })
  const headers = secret === undefined ? { 'webhook-id': id } : { ...sign(secret, body, { id }) }
  const res = await request(`${url}/jobs/email`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } })
  assert.equal(res.status, 202, res.text)
}

describe('rawtrigger jobs / suppressions against serve without a secret', () => {
  test('list, show, retry, cancel, suppressions add/list/remove; errors carry their code', async (t) => {
    const { serve, smtp, dir } = await setup(t)
    const url = serve.url
    await postEmail(url, 'cli-mail')
    await untilState(url, 'cli-mail', ['done'])
    // A slow job (100 items, 200 ms each): cancelled by the CLI long before it could end.
    const slow = await request(`${url}/jobs/record`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'webhook-id': 'cli-slow' }, body: JSON.stringify({ n: 100, ms: 200, file: join(dir, 'records') }),
    })
    assert.equal(slow.status, 202, slow.text)
    const cancelled = json(await cli(t, ['jobs', 'cancel', 'cli-slow', '--url', url, '--json']), 'jobs cancel')
    assert.equal(cancelled.id, 'cli-slow')
    assert.equal(cancelled.state, 'cancelled')
    assert.ok(cancelled.items > 50, `items cancelled: ${String(cancelled.items)}`)
    const down = await closedPort()

    const [list, page, show, human, add, notFound, usage, badLimit, unreachable] = await Promise.all([
      cli(t, ['jobs', 'list', '--url', url, '--json']),
      cli(t, ['jobs', 'list', '--state', 'done', '--limit', '1', '--json'], { RAWTRIGGER_URL: url }),
      cli(t, ['jobs', 'show', 'cli-mail', '--url', url, '--json']),
      cli(t, ['jobs', 'list', '--url', url]),
      cli(t, ['suppressions', 'add', 'X@Example.org', '--reason', 'asked by phone', '--url', url, '--json']),
      cli(t, ['jobs', 'show', 'no-such-job', '--url', url]),
      cli(t, ['jobs', 'frobnicate', '--url', url]),
      cli(t, ['jobs', 'list', '--limit', '0', '--url', url]),
      cli(t, ['jobs', 'list', '--url', `http://127.0.0.1:${down}`]),
    ])

    const listed = json(list, 'jobs list')
    assert.deepEqual(listed.jobs.map((j: { id: string }) => j.id), ['cli-slow', 'cli-mail'], 'newest first')
    const onePage = json(page, 'jobs list --state done --limit 1')
    assert.deepEqual(onePage.jobs.map((j: { id: string, state: string }) => [j.id, j.state]), [['cli-mail', 'done']])
    assert.equal(typeof onePage.next, 'string', 'a full page carries next')
    const shown = json(show, 'jobs show')
    assert.deepEqual([shown.id, shown.state, shown.total, shown.sent, shown.failed], ['cli-mail', 'done', 3, 2, 1])
    assert.deepEqual(shown.errors.map((e: { index: number }) => e.index), [1])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /^cli-slow {2}cancelled \d+\/100 sent, 0 failed {2}\d{4}-\d\d-\d\dT/m)
    assert.match(human.stdout, /^cli-mail {2}done {6}2\/3 sent, 1 failed {2}/m)
    assert.deepEqual(json(add, 'suppressions add'), { email: 'X@Example.org', reason: 'asked by phone', added: true })
    refused(notFound, 404, 'RT_ERR_NOT_FOUND', 'jobs show no-such-job')
    failed(usage, 2, 'RT_ERR_INVALID_OPTION', 'jobs frobnicate')
    refused(badLimit, 400, 'RT_ERR_VALIDATION', 'jobs list --limit 0')
    failed(unreachable, 1, 'RT_ERR_CONTROL', 'jobs list against a closed port')
    assert.match(unreachable.stderr, new RegExp(`127\\.0\\.0\\.1:${down}`), 'the error names where it tried')
    assert.match(unreachable.stderr, /\(ECONNREFUSED\)$/m, 'the connection error is on cause, its code printed')

    // retry: the one failed recipient (554 on its first try only) goes out again, alone.
    const retry = json(await cli(t, ['jobs', 'retry', 'cli-mail', '--url', url, '--json']), 'jobs retry')
    assert.equal(retry.items, 1)
    await untilState(url, 'cli-mail', ['done'])
    const [again, cancelDone, supList] = await Promise.all([
      cli(t, ['jobs', 'retry', 'cli-mail', '--url', url]),
      cli(t, ['jobs', 'cancel', 'cli-mail', '--url', url]),
      cli(t, ['suppressions', 'list', '--url', url, '--json']),
    ])
    const remove = await cli(t, ['suppressions', 'remove', 'x@example.ORG', '--url', url, '--json'])
    refused(again, 409, 'RT_ERR_CONFLICT', 'a second retry: nothing failed')
    refused(cancelDone, 409, 'RT_ERR_CONFLICT', 'cancel of a done job')
    assert.deepEqual(json(supList, 'suppressions list').suppressions.map((s: { email: string, reason: string }) => [s.email, s.reason]), [['X@Example.org', 'asked by phone']])
    assert.deepEqual(json(remove, 'suppressions remove'), {}, '204: nothing to print but {}')
    assert.equal((await untilState(url, 'cli-mail', ['done'])).sent, 3)
    assert.deepEqual([...smtp.countByAddress().entries()].sort(), [['a@example.org', 1], ['b@example.org', 1], ['c@example.org', 1]])

    refused(await cli(t, ['suppressions', 'remove', 'x@example.org', '--url', url]), 404, 'RT_ERR_NOT_FOUND', 'remove of an address not on the list')
  })
})

describe('rawtrigger jobs / suppressions against serve with --secret', () => {
  test('signed with --secret or $TRIGGER_SECRET: accepted; unsigned or wrongly signed: RT_ERR_UNAUTHORIZED', async (t) => {
    const { serve } = await setup(t, ['--secret', SECRET])
    const url = serve.url
    await postEmail(url, 'signed-mail', SECRET)
    await untilState(url, 'signed-mail', ['done'], () => ({ ...sign(SECRET, '') }))
    const wrong = 'whsec_' + Buffer.from('not the secret the server holds!!').toString('base64')

    const [show, envList, add, unsigned, wrongSecret, unsignedAdd] = await Promise.all([
      cli(t, ['jobs', 'show', 'signed-mail', '--url', url, '--secret', SECRET, '--json']),
      cli(t, ['jobs', 'list', '--state', 'done', '--url', url, '--json'], { TRIGGER_SECRET: SECRET }),
      cli(t, ['suppressions', 'add', 'y@example.org', '--url', url, '--secret', SECRET, '--json']),
      cli(t, ['jobs', 'list', '--url', url]),
      cli(t, ['jobs', 'list', '--url', url, '--secret', wrong]),
      cli(t, ['suppressions', 'add', 'z@example.org', '--url', url]),
    ])
    assert.equal(json(show, 'signed show').failed, 1)
    assert.deepEqual(json(envList, 'list signed from $TRIGGER_SECRET').jobs.map((j: { id: string }) => j.id), ['signed-mail'])
    assert.equal(json(add, 'signed suppressions add').added, true)
    refused(unsigned, 401, 'RT_ERR_UNAUTHORIZED', 'unsigned list')
    refused(wrongSecret, 401, 'RT_ERR_UNAUTHORIZED', 'list signed with another secret')
    refused(unsignedAdd, 401, 'RT_ERR_UNAUTHORIZED', 'unsigned suppressions add')

    const [unsignedRetry, supList] = await Promise.all([
      cli(t, ['jobs', 'retry', 'signed-mail', '--url', url]),
      cli(t, ['suppressions', 'list', '--url', url, '--secret', SECRET, '--json']),
    ])
    refused(unsignedRetry, 401, 'RT_ERR_UNAUTHORIZED', 'unsigned retry')
    assert.deepEqual(json(supList, 'signed suppressions list').suppressions.map((s: { email: string }) => s.email), ['y@example.org'])
    const [retry, remove] = await Promise.all([
      cli(t, ['jobs', 'retry', 'signed-mail', '--url', url, '--secret', SECRET, '--json']),
      cli(t, ['suppressions', 'remove', 'y@example.org', '--url', url, '--secret', SECRET, '--json']),
    ])
    assert.equal(json(retry, 'signed retry').items, 1)
    assert.deepEqual(json(remove, 'signed suppressions remove'), {})
    const end = await untilState(url, 'signed-mail', ['done'], () => ({ ...sign(SECRET, '') }))
    assert.equal(end.sent, 3)
  })
})

describe('serve stays up on a malformed control path', () => {
  test('DELETE /suppressions/%E0%A4%A (bad percent-encoding) → 400, and the server keeps answering', async (t) => {
    const { serve } = await setup(t)
    const res = await request(`${serve.url}/suppressions/%E0%A4%A`, { method: 'DELETE' }).catch((err: Error) => ({ status: 0, text: err.message, json: undefined }))
    // A request after it is answered: the process got past the bad one (a throw there would end it first).
    const health = await request(`${serve.url}/healthz`).catch((err: Error) => ({ status: 0, text: err.message }))
    const alive = serve.child.exitCode === null && serve.child.signalCode === null
    assert.ok(alive, `serve exited (${String(serve.child.exitCode)}) on DELETE /suppressions/%E0%A4%A\nstderr: ${serve.stderr().slice(-1500)}`)
    assert.equal(res.status, 400, res.text)
    assert.equal(health.status, 200, health.text)
  })
})
