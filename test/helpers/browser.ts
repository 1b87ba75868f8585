// Debian's chromium through playwright-core, for the browser tests. Never `npx playwright install`.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { chromium, type Browser, type Page } from 'playwright-core'

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

/** Runs `body`; when it throws, saves a screenshot of the page to a temp dir and says where. */
export async function withFailureShot (t: TestContext, page: Page, body: () => Promise<void>): Promise<void> {
  try {
    await body()
  } catch (err) {
    const path = join(mkdtempSync(join(tmpdir(), 'rawtrigger-browser-failure-')), 'page.png')
    await page.screenshot({ path, fullPage: true }).catch(() => {})
    t.diagnostic(`screenshot of the failing page: ${path}`)
    process.stderr.write(`${t.name}: failed; screenshot: ${path}\n`)
    throw err
  }
}

/** The little of the DOM the in-page function uses (tsconfig has no DOM lib; the casts vanish at run time). */
interface PageGlobals { document: { querySelector (s: string): { textContent: string | null } | null } }

/**
 * Waits until the element's trimmed text is `expected` (a string: exactly; a RegExp: a match) and
 * returns it; the error names the last text seen.
 */
export async function waitForText (page: Page, selector: string, expected: string | RegExp, timeoutMs: number): Promise<string> {
  const pattern = typeof expected === 'string' ? `^${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$` : expected.source
  await page.waitForFunction(([sel, source]) => {
    const text = (globalThis as unknown as PageGlobals).document.querySelector(sel as string)?.textContent?.trim()
    return text !== undefined && new RegExp(source as string).test(text)
  }, [selector, pattern], { timeout: timeoutMs, polling: 50 }).catch(async (err: unknown) => {
    const seen = await page.locator(selector).first().textContent().catch(() => null)
    throw new Error(`${selector} never matched ${String(expected)} (last: ${JSON.stringify(seen)})`, { cause: err })
  })
  return (await page.locator(selector).first().textContent() ?? '').trim()
}
