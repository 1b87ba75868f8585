// `npm run demo` as a person runs it (a child process), small: its JSON summary, its exit status,
// and that it leaves nothing running — the serve child it reports is gone afterwards.
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
/** The demo promises at most 60 s; with 50 recipients it takes a few. */
const DEMO_TIMEOUT_MS = 60_000

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

interface Demo {
  child: ChildProcess
  /** Resolves once stdout matches `re`, with the match; rejects if the demo ends first. */
  waitFor (re: RegExp): Promise<RegExpExecArray>
  done: Promise<Run>
}

/** Starts scripts/demo.ts; killed -9 if still alive at the end of the test. */
function startDemo (t: TestContext, args: string[]): Demo {
  const child = spawn(process.execPath, ['--conditions=rawtrigger-source', '--import', 'tsx', 'scripts/demo.ts', ...args], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  const watchers = new Set<() => void>()
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; for (const w of watchers) w() })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const done = new Promise<Run>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), DEMO_TIMEOUT_MS)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
  const waitFor = (re: RegExp): Promise<RegExpExecArray> => new Promise((resolve, reject) => {
    const check = (): void => {
      const m = re.exec(stdout)
      if (m === null) return
      watchers.delete(check)
      resolve(m)
    }
    watchers.add(check)
    check()
    void done.then((r) => { if (watchers.delete(check)) reject(new Error(`demo ended (${r.code ?? r.signal}) before ${re}: ${r.stdout}${r.stderr}`)) })
  })
  return { child, waitFor, done }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ESRCH')
    return false
  }
}

test('demo --recipients 50 --json: 50 of 50 delivered, counted by the sink; exit 0; nothing left running', { timeout: DEMO_TIMEOUT_MS + 5_000 }, async (t) => {
  const run = await startDemo(t, ['--recipients', '50', '--json']).done
  assert.equal(run.code, 0, `exit ${run.code ?? run.signal}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`)
  const lines = run.stdout.trim().split('\n')
  assert.equal(lines.length, 1, `--json prints one line, got: ${run.stdout}`)
  const summary = JSON.parse(lines[0] as string)
  assert.equal(summary.ok, true)
  assert.equal(summary.recipients, 50)
  assert.equal(summary.delivered, 50)
  assert.equal(summary.countedBy, 'sink')
  assert.equal(summary.failed, 0)
  assert.equal(summary.state, 'done')
  assert.match(summary.jobId, /^demo_[0-9a-f]{32}$/)
  assert.ok(Number.isInteger(summary.servePid) && summary.servePid !== summary.demoPid, 'the worker is another process')
  assert.ok(summary.trigger.blockedUs > 0 && summary.trigger.bytes > 50 * 20)
  assert.equal(summary.syncLoop.extrapolated, true)
  assert.equal(summary.syncLoop.sample, 20)
  assert.ok(summary.syncLoop.extrapolatedMs >= summary.syncLoop.sampleMs, 'extrapolated to 50 from a sample of 20')
  assert.ok(summary.elapsedMs > 0 && summary.perSecond > 0)
  assert.equal(summary.kept, false)
  assert.equal(alive(summary.servePid), false, `serve pid ${summary.servePid} still runs after the demo`)
})

test('demo --help', async (t) => {
  const run = await startDemo(t, ['--help']).done
  assert.equal(run.code, 0)
  assert.match(run.stdout, /--recipients <n>/)
  assert.match(run.stdout, /--keep +leave the server running/)
  const bad = await startDemo(t, ['--recipients', '0']).done
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /--recipients must be an integer from 1/)
})

test('demo report: ends saying how to keep the server up (--keep), then stops it', { timeout: DEMO_TIMEOUT_MS + 5_000 }, async (t) => {
  const run = await startDemo(t, ['--recipients', '10']).done
  assert.equal(run.code, 0, `exit ${run.code ?? run.signal}\n${run.stdout}\n${run.stderr}`)
  assert.match(run.stdout, /delivered +10\/10, counted by the SMTP sink/)
  assert.match(run.stdout, /the server stops when the demo ends: add --keep to browse them and the web page/)
  assert.match(run.stdout, /Stopped the server \(pid \d+\)/)
})

test('demo --keep: the server stays up with its web page until Ctrl-C, which stops it', { timeout: DEMO_TIMEOUT_MS + 5_000 }, async (t) => {
  const demo = startDemo(t, ['--recipients', '10', '--keep'])
  const servePid = Number((await demo.waitFor(/rawtrigger serve, pid (\d+)/))[1])
  const page = (await demo.waitFor(/The web page: (http:\/\/\S+)\n/))[1] as string
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(demo.child.exitCode, null, 'still running after the summary')
  const res = await fetch(page)
  assert.equal(res.status, 200)
  assert.match(await res.text(), /name="recipientsFile"/)
  demo.child.kill('SIGINT') // what Ctrl-C sends (to the demo only: serve runs in its own process group)
  const run = await demo.done
  assert.equal(run.code, 0, `exit ${run.code ?? run.signal}\n${run.stdout}\n${run.stderr}`)
  assert.match(run.stdout, /SIGINT: stopping the server/)
  assert.equal(alive(servePid), false, `serve pid ${servePid} still runs after Ctrl-C`)
})
