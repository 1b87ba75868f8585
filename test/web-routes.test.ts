// The web page's app routes over HTTP, against `rawtrigger serve` as a child process: the counts
// before sending, the refusals, and the job id the page learns without reading the trigger's answer.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { generateSecret } from '../src/net/sign.ts'
import { request, tempDir, waitFor, type JsonResponse } from './helpers/receiver.ts'
import { startServe, type ServeProcess } from './helpers/serve-process.ts'
import { startHeldWebApp } from './helpers/web-app.ts'

function startServer (t: TestContext, args: string[] = []): Promise<ServeProcess> {
  return startServe(t, tempDir(t, 'rawtrigger-web-'), ['--sink-port', '0', '--log-level', 'warn', ...args])
}

function postJson (url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
}

test('preview: pasted lines and a CSV file, counted valid, invalid and duplicate', async (t) => {
  const serve = await startServer(t)
  const csv = '\uFEFFName;E-mail\n"Doe; Jane";jane@example.org\nBob;bob@example\n;\n"Ada ""A"" L";ADA@example.org\n'
  const res = await postJson(`${serve.url}/campaigns/preview`, {
    recipients: '# a comment\nada@example.org\n\nGrace <grace@example.org>\nnope\ngrace@EXAMPLE.org\n',
    file: { name: 'list.csv', text: csv },
  })
  assert.equal(res.status, 200, res.text)
  assert.deepEqual(res.json, {
    total: 7,
    valid: 3,
    invalid: 2,
    duplicates: 2,
    invalidShown: ['recipients line 5: "nope"', 'list.csv line 3: "bob@example"'],
  })

  const lines = await postJson(`${serve.url}/campaigns/preview`, { recipients: '', file: { name: 'list.txt', text: 'a@x.org\r\n"Lovelace, Ada" <b@x.org>\r\n' } })
  assert.equal(lines.json.valid, 2, 'a TXT file is one address per line, commas in names allowed')

  const broken = await postJson(`${serve.url}/campaigns/preview`, { file: { name: 'bad.csv', text: 'email,name\n"a@x.org"x,A\n' } })
  assert.equal(broken.status, 400)
  assert.equal(broken.json.error.field, 'file')
  assert.match(broken.json.error.message, /bad\.csv is not valid CSV: .*line 2/)
})

test('send: refuses bad input before any trigger, and what did not come from this machine', async (t) => {
  const serve = await startServer(t)
  const campaigns = `${serve.url}/campaigns`
  const good = { subject: 'Hi', text: 'Hello', recipients: 'a@example.org' }

  const none = await postJson(campaigns, { ...good, recipients: 'nope\nalso nope' })
  assert.equal(none.status, 400)
  assert.equal(none.json.error.field, 'recipients')
  assert.match(none.json.error.message, /no valid address among 2 entries/)
  const noSubject = await postJson(campaigns, { ...good, subject: '' })
  assert.equal(noSubject.json.error.field, 'subject')
  const twoLines = await postJson(campaigns, { ...good, subject: 'a\nb' })
  assert.equal(twoLines.json.error.field, 'subject')
  const noText = await postJson(campaigns, { ...good, text: '' })
  assert.equal(noText.json.error.field, 'text')
  assert.equal((await request(campaigns, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })).json.error.code, 'RT_ERR_BAD_JSON')

  const crossSite = await postJson(campaigns, good, { origin: 'http://evil.example' })
  assert.equal(crossSite.status, 403)
  const rebound = await postJson(campaigns, good, { host: `evil.example:${serve.port}` })
  assert.equal(rebound.status, 403)
  assert.match(rebound.json.error.message, /not a loopback name/)
  const form = await request(campaigns, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'subject=x' })
  assert.equal(form.status, 415)
  assert.equal((await request(campaigns)).status, 405)
  assert.equal((await request(`${campaigns}/c_unknown`)).status, 404)

  const stats = await request(`${serve.url}/stats`)
  assert.equal(stats.json.accepted, 0, 'no trigger reached /jobs')
  // The receiver counts every refusal: here only the foreign Origin and the rebinding Host, both
  // refused before routing. A trigger fired with bad input would be one more.
  assert.equal(stats.json.rejected, 2, 'refused: the cross-site and the rebound request only')

  const page = await request(`${serve.url}/`)
  assert.equal(page.status, 200)
  assert.match(String(page.headers['content-security-policy']), /script-src 'self'/)
  assert.match(page.text, /<textarea id="recipients" name="recipients"/)
  for (const asset of ['/static/app.js', '/static/style.css']) assert.equal((await request(serve.url + asset)).status, 200, asset)
})

test('send: the job id is the trigger\'s webhook-id, so the page knows it without reading the answer', async (t) => {
  const serve = await startServer(t)
  const sent = await postJson(`${serve.url}/campaigns`, { subject: 'Hi {{name}}', text: 'Hello', recipients: 'Ada <a@example.org>\nb@example.org\nbad\nB@example.org' })
  assert.equal(sent.status, 202, sent.text)
  assert.match(sent.json.id, /^c_[0-9a-f]{32}$/)
  assert.equal(sent.json.recipients, 2)
  assert.equal(sent.json.invalid, 1)
  assert.equal(sent.json.duplicates, 1)
  assert.ok(sent.json.trigger.totalMs > 0 && sent.json.trigger.bytes > 0)
  const done = await waitFor('campaign done', async () => {
    const res = await request(`${serve.url}/campaigns/${sent.json.id}`)
    return res.status === 200 && res.json.state === 'done' ? res.json : undefined
  })
  assert.equal(done.sent, 2)
  assert.equal((await request(`${serve.url}/jobs/${sent.json.id}`)).json.id, sent.json.id)
  const mailbox = await request(`${serve.url}/mailbox`)
  assert.equal(mailbox.json.received, 2)
  assert.ok(mailbox.json.messages.some((m: { subject: string }) => m.subject === 'Hi Ada'))
})

test('with a secret: the trigger is signed; the page polls /campaigns/:id, which needs no signature', async (t) => {
  const serve = await startServer(t, ['--secret', generateSecret()])
  const sent = await postJson(`${serve.url}/campaigns`, { subject: 'Hi', text: 'Hello', recipients: 'a@example.org\nb@example.org\nc@example.org' })
  assert.equal(sent.status, 202, sent.text)
  const done = await waitFor('signed campaign done', async () => {
    const res = await request(`${serve.url}/campaigns/${sent.json.id}`)
    return res.status === 200 && res.json.state === 'done' ? res.json : undefined
  })
  assert.equal(done.sent, 3)
  assert.equal(done.id, sent.json.id, 'the signed webhook-id became the job id')
  assert.equal((await request(`${serve.url}/jobs/${sent.json.id}`)).status, 401, '/jobs/:id still needs a signature')
  assert.equal((await request(`${serve.url}/mailbox`)).json.received, 3)
})

test('GET /campaigns/:id: a campaign fired here but not stored yet reads "pending", an id never fired is 404 (issue 16)', async (t) => {
  const app = await startHeldWebApp(t)
  const sent = await postJson(`${app.url}/campaigns`, { subject: 'Hi', text: 'Hello', recipients: 'a@example.org\nb@example.org' })
  assert.equal(sent.status, 202, sent.text)
  const id = sent.json.id as string
  await app.waitForHeld(1)
  assert.equal((await request(`${app.url}/jobs/${id}`)).status, 404, 'the receiver has not seen the trigger yet')

  const pending = await request(`${app.url}/campaigns/${id}`)
  assert.equal(pending.status, 200, pending.text)
  assert.deepEqual(Object.keys(pending.json).sort(), ['firedAt', 'id', 'state'])
  assert.equal(pending.json.id, id)
  assert.equal(pending.json.state, 'pending')
  const firedAgoMs = Date.now() - Date.parse(pending.json.firedAt)
  assert.ok(firedAgoMs >= 0 && firedAgoMs < 10_000, `fired ${firedAgoMs} ms ago`)
  const stranger = await request(`${app.url}/campaigns/c_${'0'.repeat(32)}`)
  assert.equal(stranger.status, 404)
  assert.match(stranger.json.error.message, /not a campaign this process fired/)

  app.release()
  const done = await waitFor('the released campaign done', async () => {
    const res = await request(`${app.url}/campaigns/${id}`)
    return res.status === 200 && res.json.state === 'done' ? res.json : undefined
  })
  assert.deepEqual([done.id, done.total, done.sent], [id, 2, 2])
})
