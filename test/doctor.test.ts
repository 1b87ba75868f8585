// `rawtrigger doctor`: fsockopen-shaped triggers (FIN, 5 ms pause then FIN, RST) through what
// sits in front of serve. Behind a real nginx (Debian's nginx-light or nginx) with its defaults it
// must find the losses and name proxy_ignore_client_abort; with the fix, 0 lost.
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { diagnose, type ShapeReport } from '../src/cli/doctor.ts'
import { generateSecret } from '../src/net/sign.ts'
import { NGINX, startNginx } from './helpers/nginx.ts'
import { getStats, tempDir } from './helpers/receiver.ts'
import { runCli, startServe, type ServeProcess } from './helpers/serve-process.ts'

const skipNginx = NGINX === undefined && process.env.CI === undefined
  ? 'nginx not found: install Debian\'s nginx-light (apt-get install nginx-light) to run the tests behind nginx'
  : false

interface Report {
  kept: number
  lost: number
  unsent: number
  front?: string
  cause: string
  fixes: string[]
  shapes: ShapeReport[]
  lostIds: string[]
}

async function serve (t: TestContext, args: string[] = []): Promise<ServeProcess> {
  const s = await startServe(t, tempDir(t, 'rawtrigger-doctor-'), ['--sink-port', '0', '--log-level', 'warn', ...args])
  t.after(async () => {
    if (s.child.exitCode === null && s.child.signalCode === null) {
      s.kill('SIGTERM')
      await s.exited
    }
  })
  return s
}

async function doctor (t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return runCli(t, ['doctor', ...args], { TRIGGER_SECRET: '', ...env }, 60_000)
}

function reportOf (stdout: string): Report {
  return JSON.parse(stdout) as Report
}

test('straight at serve: every shape kept, exit 0, and the jobs are doctor jobs that did nothing', async (t) => {
  const s = await serve(t)
  const run = await doctor(t, [s.url, '--json'])
  assert.equal(run.code, 0, run.stdout + run.stderr)
  const r = reportOf(run.stdout)
  assert.deepEqual({ kept: r.kept, lost: r.lost, unsent: r.unsent }, { kept: 60, lost: 0, unsent: 0 })
  assert.deepEqual(r.shapes.map((x) => [x.shape, x.fired, x.kept]), [['fin', 20, 20], ['pause', 20, 20], ['reset', 20, 20]])
  const stats = await getStats(s.url)
  assert.equal(stats.accepted, 61, 'the 60 triggers and the preflight')
  assert.equal(stats.emails.sent, 0, 'a doctor job sends nothing')
  const text = await doctor(t, [s.url, '-n', '6'])
  assert.equal(text.code, 0, text.stderr)
  assert.match(text.stdout, /kept 6 of 6: every completely sent trigger became a job/)
})

test('behind nginx with its defaults: losses found, exit 1, proxy_ignore_client_abort named', { skip: skipNginx }, async (t) => {
  assert.ok(NGINX !== undefined, 'nginx not found, and CI is set: .ci/run must install nginx-light')
  const s = await serve(t)
  const nginx = await startNginx(t, { upstreamPort: s.port })
  // --wait: a lost trigger stays lost; 2 s of asking again is plenty on loopback.
  const run = await doctor(t, [nginx.url, '--json', '--wait', '2000'])
  assert.equal(run.code, 1, run.stdout + run.stderr)
  const r = reportOf(run.stdout)
  t.diagnostic(`nginx defaults: kept ${r.kept}, lost ${r.lost} (${r.shapes.map((x) => `${x.shape} ${x.kept}/${x.fired}`).join(', ')})`)
  assert.ok(r.lost > 0, 'nginx with proxy_ignore_client_abort off drops fsockopen-style triggers')
  assert.match(r.front ?? '', /^nginx/)
  assert.equal(r.fixes.length, 1, 'nginx was recognised: only its fix')
  assert.match(r.fixes[0] as string, /proxy_ignore_client_abort on;/)
  assert.match(nginx.accessLog(), /" 499 /, 'nginx logged 499 for the triggers it dropped')
  const text = await doctor(t, [nginx.url, '-n', '30', '--wait', '2000'])
  assert.equal(text.code, 1)
  assert.match(text.stdout, /LOST \d+ of 30 triggers/)
  assert.match(text.stdout, /likely cause: nginx treats a client that hangs up right after its last byte \(a FIN/)
  assert.match(text.stdout, /fix:\n {2}- nginx: `proxy_ignore_client_abort on;`/)
})

test('behind nginx with proxy_ignore_client_abort on: 0 lost, exit 0', { skip: skipNginx }, async (t) => {
  const s = await serve(t)
  const nginx = await startNginx(t, { upstreamPort: s.port, ignoreClientAbort: true })
  const run = await doctor(t, [nginx.url, '--json'])
  assert.equal(run.code, 0, run.stdout + run.stderr)
  const r = reportOf(run.stdout)
  assert.deepEqual({ kept: r.kept, lost: r.lost, unsent: r.unsent }, { kept: 60, lost: 0, unsent: 0 })
})

test('with a secret: signed triggers and reads; without it the refusal is named, not counted as losses', async (t) => {
  const secret = generateSecret()
  const s = await serve(t, ['--secret', secret])
  const unsigned = await doctor(t, [s.url])
  assert.equal(unsigned.code, 1)
  assert.match(unsigned.stderr, /refused the first \(ordinary\) trigger with HTTP 401: RT_ERR_UNAUTHORIZED/)
  assert.match(unsigned.stderr, /pass --secret/)
  const signed = await doctor(t, [s.url, '-n', '9', '--json'], { TRIGGER_SECRET: secret })
  assert.equal(signed.code, 0, signed.stdout + signed.stderr)
  assert.equal(reportOf(signed.stdout).kept, 9)
})

test('an unknown --type is named as the receiver\'s 404; bad usage exits 2', async (t) => {
  const s = await serve(t)
  const unknown = await doctor(t, [s.url, '--type', 'nope', '--data', '{}'])
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /HTTP 404: RT_ERR_NOT_FOUND: unknown job type "nope"/)
  for (const args of [[], [`${s.url}/jobs/doctor`], [s.url, '--type', 'noop'], [s.url, '--data', '{'], [s.url, '-n', '0']]) {
    const run = await doctor(t, args)
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
    assert.match(run.stderr, /^rawtrigger: RT_ERR_INVALID_OPTION: /)
  }
  const refused = await doctor(t, ['http://127.0.0.1:1'])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /cannot reach http:\/\/127\.0\.0\.1:1\/jobs\/doctor: Connect failed/)
})

test('diagnose: a front that names itself nowhere gets every known fix; RST-only losses say so', () => {
  const shapes = (fin: number, pause: number, reset: number): ShapeReport[] => [
    { shape: 'fin', fired: 10, kept: 10 - fin, lost: fin, unsent: 0 },
    { shape: 'pause', fired: 10, kept: 10 - pause, lost: pause, unsent: 0 },
    { shape: 'reset', fired: 10, kept: 10 - reset, lost: reset, unsent: 0 },
  ]
  assert.deepEqual(diagnose(shapes(0, 0, 0), undefined), { cause: '', fixes: [] })
  const unknown = diagnose(shapes(3, 1, 0), undefined)
  assert.match(unknown.cause, /whatever sits in front of the receiver \(or the receiver itself\) treats .* \(a FIN\)/)
  assert.equal(unknown.fixes.length, 3)
  assert.match(unknown.fixes[1] as string, /HAProxy: no `option abortonclose`/)
  assert.match(unknown.fixes[2] as string, /httpAllowHalfOpen = true/)
  assert.match(diagnose(shapes(0, 0, 4), 'nginx/1.22.1').cause, /^nginx treats a client that hangs up right after its last byte \(an RST\)/)
})
