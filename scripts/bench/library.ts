// Which build of rawtrigger the benchmark measures: the source through tsx (what `npm run bench`
// runs) or the compiled dist/ that users install (`--dist`, after `npm run build`).
import { existsSync } from 'node:fs'
import type * as Rawtrigger from 'rawtrigger'

export type Library = Pick<typeof Rawtrigger, 'trigger' | 'fireMany' | 'buildRequest'>

export interface LoadedLibrary {
  lib: Library
  /** The native fast path of trigger() (src/net/native-fire.ts) of the same build. */
  native: { available: boolean, use: (enabled: boolean) => void }
  /** What was loaded, for the summary. */
  build: string
}

const DIST = new URL('../../dist/index.js', import.meta.url)
type NativeModule = typeof import('../../src/net/native-fire.ts')

function nativeOf (m: NativeModule): LoadedLibrary['native'] {
  return { available: m.nativeAvailable(), use: (enabled) => m.useNative(enabled) }
}

/** The library to measure; without dist/, says so as `<script>: …` and exits 1. */
export async function loadLibrary (dist: boolean, script: string): Promise<LoadedLibrary> {
  if (!dist) {
    const lib: Library = await import('rawtrigger')
    const native = nativeOf(await import('../../src/net/native-fire.ts'))
    return { lib, native, build: 'src/ through tsx (--conditions=rawtrigger-source)' }
  }
  if (!existsSync(DIST)) {
    process.stderr.write(`${script}: --dist: ${DIST.pathname} does not exist; run \`npm run build\` first\n`)
    process.exit(1)
  }
  const lib = await import(DIST.href) as Library
  const native = nativeOf(await import(new URL('../../dist/net/native-fire.js', import.meta.url).href) as NativeModule)
  return { lib, native, build: 'dist/ (compiled by tsc, as installed)' }
}
