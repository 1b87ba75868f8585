// `import { trigger } from 'rawtrigger'` loads the client, not the receiver's packages: a child node
// imports the package (from src/ through tsx, and from dist/ when it is built and fresh) and
// reports what it loaded (test/fixtures/import-probe.mjs). The import's time and memory are
// measured by scripts/bench-import.ts, not asserted here.
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const PROBE = fileURLToPath(new URL('./fixtures/import-probe.mjs', import.meta.url))
const PROBE_TIMEOUT_MS = 30_000 // tsx compiles the source on a cold cache

/** What `import 'rawtrigger'` must not load: each is loaded by the part that uses it, on first use. */
const HEAVY = ['better-sqlite3', 'bullmq', 'cli-progress', 'csv-parse', 'html-to-text', 'ioredis', 'nodemailer', 'pino', 'prom-client', 'smtp-server']

interface Probe { exports: string[], packages: string[], files: string[] }

function probe (specifier: string, nodeArgs: string[]): Promise<Probe> {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS // the child gets exactly the flags given here
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...nodeArgs, PROBE, specifier], { cwd: REPO, env, timeout: PROBE_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`probe of ${specifier} failed: ${stderr}`, { cause: err }))
      else resolve(JSON.parse(stdout) as Probe)
    })
  })
}

function newestSource (dir: string): number {
  let latest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs)
  }
  return latest
}

const distIndex = join(REPO, 'dist', 'index.js')
const distFresh = existsSync(distIndex) && existsSync(join(REPO, 'dist', 'client.js')) &&
  statSync(distIndex).mtimeMs >= newestSource(join(REPO, 'src'))

const builds = [
  { name: 'from src/ (rawtrigger-source condition, tsx)', args: ['--conditions=rawtrigger-source', '--import', 'tsx'], skip: false as string | false },
  { name: 'from dist/', args: [], skip: distFresh ? false as const : 'dist/ is missing or older than src/ (npm run build)' },
]

for (const build of builds) {
  describe(build.name, { skip: build.skip }, () => {
    test("import 'rawtrigger' loads none of the heavy packages, and the root still exports the whole API", async () => {
      const root = await probe('rawtrigger', build.args)
      assert.deepEqual(root.packages.filter((name) => HEAVY.includes(name)), [])
      for (const name of ['trigger', 'buildRequest', 'fireMany', 'createTriggerPool', 'sign', 'verify', 'createReceiver', 'SqliteStore', 'StoreQueue', 'BullmqQueue', 'createMailer', 'startSink', 'emailHandler', 'parseEmailJob', 'startEmailService', 'TriggerError']) {
        assert.ok(root.exports.includes(name), `'rawtrigger' does not export ${name}`)
      }
    })

    test("import 'rawtrigger/client' loads the client's own files and no package at all", async () => {
      const client = await probe('rawtrigger/client', build.args)
      assert.deepEqual(client.packages.filter((name) => name !== 'tsx' && name !== 'esbuild'), [])
      const outside = client.files.filter((file) => !/^(src|dist)\/(net\/|errors\.|client\.|lazy-require\.)/.test(file))
      assert.deepEqual(outside, [], 'files outside the client')
      const root = await probe('rawtrigger', build.args)
      assert.deepEqual(client.exports.filter((name) => !root.exports.includes(name)), [], "the root exports all of 'rawtrigger/client'")
    })
  })
}

test('the probe sees a heavy package when one is loaded (ESM import of a CommonJS package, and its require() calls)', async () => {
  const loaded = await probe('pino', [])
  assert.ok(loaded.packages.includes('pino'), `pino not seen: ${loaded.packages.join(', ')}`)
  assert.ok(loaded.packages.includes('sonic-boom'), 'a package pino requires is not seen')
})

test('the probe sees an ES module package through the resolve hook', async () => {
  const loaded = await probe('csv-parse/sync', [])
  assert.ok(loaded.packages.includes('csv-parse'), `csv-parse not seen: ${loaded.packages.join(', ')}`)
})
