// The package as a user gets it: `npm pack` (which builds dist/ through prepack), unpacked into a
// plain JavaScript project, imported by name and fired at a raw server. No tsx, no source condition.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { within } from './helpers/assert-error.ts'
import { parseRequest, startRawServer } from './helpers/raw-server.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const PACK_TIMEOUT_MS = 60_000 // npm pack runs the whole tsc build

interface Run { code: number, stdout: string, stderr: string }

function run (file: string, args: string[], cwd: string, timeout = 30_000): Promise<Run> {
  // A clean environment for the child: no --conditions=rawtrigger-source, no tsx loader.
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env, timeout, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(err)
        return
      }
      resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr })
    })
  })
}

let tmp = ''
let app = ''
let packedFiles: string[] = []
let distExisted = true

before(async () => {
  distExisted = existsSync(join(REPO, 'dist'))
  tmp = await mkdtemp(join(tmpdir(), 'rawtrigger-pack-'))
  const packed = await run('npm', ['pack', '--json', '--pack-destination', tmp], REPO, PACK_TIMEOUT_MS)
  assert.equal(packed.code, 0, `npm pack failed:\n${packed.stdout}\n${packed.stderr}`)
  // Lifecycle output may precede the JSON report: it is the last top-level array.
  const report = JSON.parse(packed.stdout.slice(packed.stdout.lastIndexOf('\n[') + 1)) as Array<{ filename: string, files: Array<{ path: string }> }>
  const [entry] = report
  assert.ok(entry !== undefined, 'npm pack reported no tarball')
  packedFiles = entry.files.map((f) => f.path)

  app = join(tmp, 'app')
  const installed = join(app, 'node_modules', 'rawtrigger')
  await mkdir(installed, { recursive: true })
  const untar = await run('tar', ['-xzf', join(tmp, entry.filename), '-C', installed, '--strip-components=1'], tmp)
  assert.equal(untar.code, 0, untar.stderr)
  // Runtime dependencies come from the repository's node_modules, as npm would have installed them.
  const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }
  for (const dep of Object.keys(pkg.dependencies ?? {})) {
    const link = join(app, 'node_modules', dep)
    await mkdir(dirname(link), { recursive: true })
    await symlink(join(REPO, 'node_modules', dep), link, 'dir')
  }
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'plain-js-app', private: true, type: 'module' }))
}, { timeout: PACK_TIMEOUT_MS + 10_000 })

after(async () => {
  if (tmp !== '') await rm(tmp, { recursive: true, force: true })
  if (!distExisted) await rm(join(REPO, 'dist'), { recursive: true, force: true }) // ours, from prepack
})

test('the tarball holds the compiled ESM and its types, the bin, and no source or tests', () => {
  for (const file of ['package.json', 'bin/rawtrigger.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js']) {
    assert.ok(packedFiles.includes(file), `${file} missing from the tarball: ${packedFiles.join(', ')}`)
  }
  const leaked = packedFiles.filter((file) => file.startsWith('src/') || file.startsWith('test/') || file.endsWith('.ts') && !file.endsWith('.d.ts'))
  assert.deepEqual(leaked, [])
})

test('a plain JS project imports rawtrigger by name and fires a trigger at a raw server', { timeout: 30_000 }, async (t) => {
  const server = await startRawServer()
  t.after(() => server.close())
  await writeFile(join(app, 'use.mjs'), [
    "import { trigger, buildRequest, TriggerError, InvalidHeaderValueError } from 'rawtrigger'",
    'const url = process.argv[2]',
    "const options = { body: { from: 'the packed build', ok: true } }",
    'const built = buildRequest(url, options)',
    'const result = await trigger(url, options)',
    'let code',
    "try { buildRequest(url, { headers: { 'X-A': 'a\\nb' } }) } catch (err) { code = err instanceof TriggerError && err instanceof InvalidHeaderValueError ? err.code : 'wrong class' }",
    "process.stdout.write(JSON.stringify({ built: built.toString('latin1'), result, code }))",
    '',
  ].join('\n'))
  const child = await run(process.execPath, ['use.mjs', server.url], app)
  assert.equal(child.code, 0, child.stderr)
  const out = JSON.parse(child.stdout) as { built: string, result: { bytes: number, remotePort: number }, code: string }
  assert.equal(out.result.remotePort, server.port)
  assert.equal(out.code, 'RT_ERR_INVALID_HEADER_VALUE')

  const connection = await server.connection(0)
  await within(5_000, connection.whenClosed, 'server side close')
  assert.equal(connection.received.toString('latin1'), out.built)
  assert.equal(connection.received.length, out.result.bytes)
  assert.equal(JSON.parse(parseRequest(connection.received).body.toString()).from, 'the packed build')
})

test('the resolved entry point is the compiled dist/index.js, not the TypeScript source', { timeout: 30_000 }, async () => {
  await writeFile(join(app, 'resolve.mjs'), "process.stdout.write(import.meta.resolve('rawtrigger'))\n")
  const child = await run(process.execPath, ['resolve.mjs'], app)
  assert.equal(child.code, 0, child.stderr)
  assert.match(child.stdout, /node_modules\/rawtrigger\/dist\/index\.js$/)
})

test('the installed bin runs from dist/ without tsx', { timeout: 30_000 }, async () => {
  const bin = join(app, 'node_modules', 'rawtrigger', 'bin', 'rawtrigger.js')
  const child = await run(process.execPath, [bin, 'secret'], app)
  assert.equal(child.code, 0, child.stderr)
  assert.match(child.stdout, /^whsec_[A-Za-z0-9+/]{43}=\n$/)
})

test('a TypeScript consumer type-checks against the shipped .d.ts', { timeout: 60_000 }, async () => {
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true,
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      lib: ['es2023'],
      noEmit: true,
      skipLibCheck: false,
      typeRoots: [join(REPO, 'node_modules/@types')],
      types: ['node'],
    },
    files: ['consumer.ts'],
  }))
  await writeFile(join(app, 'consumer.ts'), [
    "import { trigger, sign, verify, type TriggerResult, type TriggerOptions } from 'rawtrigger'",
    "const options: TriggerOptions = { body: { a: 1 }, headers: { 'X-A': ['1', '2'] }, ack: true }",
    "const result: Promise<TriggerResult> = trigger('http://127.0.0.1:1/', options)",
    "const headers = sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'x')",
    "verify('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'x', headers)",
    "// @ts-expect-error: the body must be a string, bytes or JSON object",
    "void trigger('http://127.0.0.1:1/', { body: 42 })",
    'void result',
    '',
  ].join('\n'))
  const tsc = await run(join(REPO, 'node_modules/.bin/tsc'), ['-p', join(app, 'tsconfig.json')], app, 60_000)
  assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr)
})
