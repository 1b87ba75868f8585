// Builds the trigger's fast path (native/fire.c, see src/net/native-fire.ts) at `npm install`.
// Optional: without a C compiler, Python or Node's headers the build fails, this says so in one
// line, and every trigger takes node:net instead (correct, only slower). RAWTRIGGER_NATIVE=0 skips it.
import { spawnSync } from 'node:child_process'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
if (process.env.RAWTRIGGER_NATIVE === '0' || process.platform === 'win32') process.exit(0)
// npm puts its own node-gyp on PATH for install scripts.
const r = spawnSync('node-gyp', ['rebuild'], { cwd: here, encoding: 'utf8', shell: process.platform === 'win32' })
if (r.status !== 0) {
  const why = r.error?.message ?? (r.stderr.split('\n').find((line) => line.includes('ERR!')) ?? `exit ${r.status}`)
  process.stderr.write(`rawtrigger: the native trigger path was not built (${why.trim()}); triggers use node:net\n`)
}
