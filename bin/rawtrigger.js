#!/usr/bin/env node
// Runs the compiled JavaScript in dist/: `npm install` builds it (the `prepare` script), and an
// installed package ships it. In a checkout whose src/ changed since the last build (or that has
// no dist/), the TypeScript source runs through tsx instead, with a note: tsx costs about a second
// of start time and ~30 MB of memory, so production should run `npm run build` first.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const compiled = new URL('../dist/cli.js', import.meta.url)
const sourceDir = fileURLToPath(new URL('../src', import.meta.url))

/**
 * The newest modification time of the files under `dir`. A walk by hand: Node 20's
 * `readdirSync(dir, { recursive: true })` here made a later 100,000-recipient job peak 45 MB higher.
 */
function newest (dir) {
  let latest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`
    if (entry.isDirectory()) latest = Math.max(latest, newest(path))
    else if (entry.isFile()) latest = Math.max(latest, statSync(path).mtimeMs)
  }
  return latest
}

const fresh = existsSync(compiled) && (!existsSync(sourceDir) || newest(sourceDir) <= statSync(compiled).mtimeMs)
if (fresh) {
  await import(compiled.href)
} else if (existsSync(sourceDir)) {
  // Said to a person at a terminal only: scripts and tests read stderr for the command's own errors.
  if (process.stderr.isTTY) process.stderr.write(`rawtrigger: ${existsSync(compiled) ? 'src/ is newer than dist/' : 'no dist/'}: running the TypeScript source through tsx (npm run build makes it start faster)\n`)
  const { register } = await import('tsx/esm/api')
  register()
  await import(new URL('../src/cli.ts', import.meta.url).href)
} else {
  process.stderr.write('rawtrigger: dist/cli.js is missing from this installation; reinstall the package\n')
  process.exit(1)
}
