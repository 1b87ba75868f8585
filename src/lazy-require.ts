// Heavy packages load on first use, not on `import 'rawtrigger'`: the trigger client needs none
// of them, and `import { trigger }` should cost what the client costs (README "Library").
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/**
 * A getter that loads a package with `require` on its first call and returns the same module
 * after. For CommonJS packages, and dual ones whose CommonJS build every user in src/ shares (one
 * instance, so `instanceof` across files holds). Types come from an `import type` of the package.
 */
export function lazyRequire<T> (id: string): () => T {
  let loaded: T | undefined
  return () => (loaded ??= require(id) as T)
}
