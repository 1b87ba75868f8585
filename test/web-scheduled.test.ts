// The page's "Send at" field in a real browser (playwright-core, Debian's chromium): a
// datetime-local time is sent with the browser's offset (the page runs in Asia/Kolkata, +05:30),
// the campaign reads scheduled with its time in the Progress panel and the jobs view, and
// Cancel there stops it before anything is sent.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { launch, skipWithoutChromium } from './helpers/browser.ts'
import { getJob, tempDir, waitForState } from './helpers/receiver.ts'
import { startServe } from './helpers/serve-process.ts'
import { startSmtpServer } from './helpers/smtp-server.ts'

const KOLKATA_OFFSET_MS = 5.5 * 3600_000
const DAY_MS = 24 * 3600_000

test('page: "Send at" schedules the campaign at that local time; it reads scheduled, and Cancel stops it unsent', { skip: skipWithoutChromium, timeout: 90_000 }, async (t) => {
  const smtp = await startSmtpServer()
  t.after(() => smtp.close())
  const serve = await startServe(t, tempDir(t, 'rawtrigger-web-sched-'), ['--smtp', smtp.url, '--log-level', 'warn'])
  // Tomorrow at this minute, as a clock in Kolkata shows it (no DST there), and the instant it means.
  const instant = Math.floor((Date.now() + DAY_MS) / 60_000) * 60_000
  const local = new Date(instant + KOLKATA_OFFSET_MS).toISOString().slice(0, 16)
  const expected = new Date(instant).toISOString()

  const browser = await launch(t)
  const page = await browser.newPage({ timezoneId: 'Asia/Kolkata', viewport: { width: 1280, height: 900 } })
  const pageErrors: string[] = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  await page.goto(serve.url + '/')
  await page.getByLabel('Subject').fill('Later')
  await page.getByLabel('Message').fill('Hello {{email}}')
  await page.getByLabel('Paste addresses, one per line').fill('a@example.org\nb@example.org')
  await page.getByLabel('Send at').fill(local)
  await page.locator('[type=submit]').click()
  await page.locator('[data-job-id]').waitFor()
  const id = await page.locator('[data-job-id]').getAttribute('data-job-id') as string

  assert.equal(await page.locator('[data-send-at]').getAttribute('data-send-at'), expected)
  const view = await waitForState(serve.url, id, 'scheduled', 10_000)
  assert.equal(view.notBefore, expected, `${local} in Kolkata is ${expected}`)
  await page.locator('[data-state]').filter({ hasText: 'scheduled' }).waitFor()
  const row = page.locator(`[data-job-row="${id}"]`)
  await row.locator('[data-job-state="scheduled"]').waitFor()
  assert.equal(await row.locator('[data-not-before]').getAttribute('data-not-before'), expected)

  await row.locator('button').click()
  await page.getByRole('button', { name: 'Cancel', exact: true }).click()
  await page.locator(`[data-job-detail="${id}"] [data-action-result]`).filter({ hasText: /^Cancelled: 2 recipients will not be sent/ }).waitFor()
  assert.equal((await getJob(serve.url, id)).state, 'cancelled')
  assert.equal(smtp.delivered.length, 0, 'nothing sent')
  assert.deepEqual(pageErrors, [])
})
