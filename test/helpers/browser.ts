// Debian's chromium through playwright-core, for the browser tests. Never `npx playwright install`.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import type { TestContext } from 'node:test'
import { chromium, type Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic',
]

const absent = !existsSync(CHROMIUM)

/** The `skip` of a browser test: a reason without chromium, unless CI is set (then the test must run). */
export const skipWithoutChromium: string | false = absent && process.env.CI === undefined
  ? `${CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run the browser tests`
  : false

/** Launches chromium with {@link CHROMIUM_ARGS} and `extraArgs`; closed in t.after(). */
export async function launch (t: TestContext, extraArgs: string[] = []): Promise<Browser> {
  assert.ok(!absent, `${CHROMIUM} not found, and CI is set: the browser test must run in CI (.ci/run installs it)`)
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs], timeout: 30_000 })
  t.after(() => browser.close())
  return browser
}
