// The page's jobs view in a real browser: playwright-core driving Debian's chromium against
// `rawtrigger serve` (a child process) sending to a test SMTP server that refuses some recipients
// (test/helpers/smtp-server.ts). Drives both buttons: Retry failed on a campaign whose recipients
// got a 5xx, Cancel on a large job that the slow server keeps running. Never `npx playwright install`.
// UPDATE_SCREENSHOT=1 also writes docs/screenshot.png (the README's picture of the page).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { copyFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import type { Page } from 'playwright-core'
import { launch, skipWithoutChromium, waitForText as waitForPageText, withFailureShot } from './helpers/browser.ts'
import { getJob, postJob, tempDir, waitForState } from './helpers/receiver.ts'
import { ROOT, startServe, type ServeProcess } from './helpers/serve-process.ts'
import { startSmtpServer } from './helpers/smtp-server.ts'

/** A few recipients through the test server take milliseconds; this is a guard, not a claim. */
const DONE_MS = 30_000
/** The job that gets cancelled: 50 ms per message over 5 connections is minutes of work. */
const BIG_JOB = 5_000
const SLOW_DATA_MS = 50
/** Jobs per page of the view (src/web/static/jobs.js PAGE_SIZE). */
const PAGE_SIZE = 10

const skip = skipWithoutChromium

function startServer (t: TestContext, smtpUrl: string): Promise<ServeProcess> {
  return startServe(t, tempDir(t, 'rawtrigger-web-jobs-'), ['--smtp', smtpUrl, '--log-level', 'warn'])
}

const waitForText = (page: Page, selector: string, expected: string | RegExp, timeoutMs = DONE_MS): Promise<string> =>
  waitForPageText(page, selector, expected, timeoutMs)

/** Fills the campaign form, sends it, and returns the job id the page shows. */
async function sendCampaign (page: Page, subject: string, message: string, addresses: string): Promise<string> {
  await page.getByLabel('Subject').fill(subject)
  await page.getByLabel('Message').fill(message)
  await page.getByLabel('Paste addresses, one per line').fill(addresses)
  await page.locator('[type=submit]').click()
  await page.locator('[data-job-id]').waitFor()
  return await page.locator('[data-job-id]').getAttribute('data-job-id') as string
}

const row = (id: string): string => `[data-job-row="${id}"]`
const cell = (id: string, col: string): string => `${row(id)} [data-col="${col}"]`
const detail = (id: string): string => `[data-job-detail="${id}"]`

test('jobs view: a campaign\'s 5xx failures with the SMTP reply; Retry failed sends them again', { skip, timeout: 90_000 }, async (t) => {
  // Both refusals are permanent (5xx) but no hard bounce, so the addresses are not suppressed:
  // the first try fails for good, the retry gets through.
  const smtp = await startSmtpServer({
    faults: {
      rcpt: {
        'full@example.org': { code: 552, message: '5.2.2 Mailbox full', times: 1 },
        'spam@example.org': { code: 554, message: '5.7.1 Message rejected as spam', times: 1 },
      },
    },
  })
  t.after(() => smtp.close())
  const serve = await startServer(t, smtp.url)
  const other = await postJob(serve.url, 'record', { n: 3, file: join(tempDir(t, 'rawtrigger-web-jobs-rec-'), 'records') })
  assert.equal(other.status, 202, other.text)
  await waitForState(serve.url, other.json.id as string, 'done', DONE_MS)

  const browser = await launch(t)
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const pageErrors: string[] = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  await withFailureShot(t, page, async () => {
    await page.goto(serve.url + '/')
    await waitForText(page, cell(other.json.id as string, 'type'), 'record', 5_000)
    const id = await sendCampaign(page, 'Spring news', 'Hello {{name}}', 'a@example.org\nfull@example.org\nb@example.org\nspam@example.org')

    // The campaign appears on top of the list (newest first) and ends done, 2 sent and 2 failed.
    await waitForText(page, cell(id, 'state'), 'done')
    assert.equal(await page.locator('[data-job-row]').first().getAttribute('data-job-row'), id)
    assert.equal(await page.locator('[data-job-row]').count(), 2)
    assert.equal(await page.locator(cell(id, 'type')).textContent(), 'email')
    assert.equal(await page.locator(cell(id, 'sent')).textContent(), '2')
    assert.equal(await page.locator(cell(id, 'failed')).textContent(), '2')
    assert.equal(await page.locator(cell(id, 'pending')).textContent(), '0')
    assert.match(await page.locator(cell(id, 'created')).innerText(), /\d/)
    // A table with column headers.
    assert.deepEqual(await page.locator('#jobs-table thead th').allTextContents(), ['Job', 'Type', 'State', 'Sent', 'Failed', 'Pending', 'Created'])

    // Selecting it shows each failure with the server's reply; only Retry failed applies.
    await page.locator(`${row(id)} button`).click()
    const failures = await waitForText(page, `${detail(id)} [data-job-failures]`, /5\.7\.1/)
    assert.match(failures, /Recipient #2 — 552 5\.2\.2 Mailbox full/)
    assert.match(failures, /Recipient #4 — 554 5\.7\.1 Message rejected as spam/)
    const retry = page.getByRole('button', { name: 'Retry failed' })
    const cancel = page.getByRole('button', { name: 'Cancel', exact: true })
    assert.equal(await retry.isEnabled(), true)
    assert.equal(await cancel.isEnabled(), false, 'a finished job cannot be cancelled')
    assert.equal(await page.locator(`${row(id)} button`).getAttribute('aria-pressed'), 'true')

    await retry.click()
    await waitForText(page, `${detail(id)} [data-action-result]`, /^Retrying 2 failed recipients: the job is (queued|running)\.$/, 5_000)
    // The retry gets through: the job is done again, all four sent, nothing failed.
    await waitForText(page, cell(id, 'sent'), '4')
    await waitForText(page, cell(id, 'state'), 'done')
    assert.equal(await page.locator(cell(id, 'failed')).textContent(), '0')
    // The Progress panel, which had stopped at done, follows the retried campaign too.
    await waitForText(page, '[data-progress]', '4/4')
    assert.equal(await page.locator('[data-failed]').textContent(), '0')
    await waitForText(page, `${detail(id)} [data-job-state]`, 'done')
    assert.equal(await page.locator(`${detail(id)} .failures`).isHidden(), true)
    assert.equal(await retry.isEnabled(), false, 'nothing is left to retry')
    assert.equal(smtp.countByAddress().get('full@example.org'), 1)
    assert.equal(smtp.countByAddress().get('spam@example.org'), 1)
    assert.equal(smtp.rcptTries('full@example.org'), 2)
    const job = await getJob(serve.url, id)
    assert.equal(job.sent, 4)
    assert.equal(job.failed, 0)

    assert.deepEqual(pageErrors, [])
  })
})

test('jobs view: newest first, a page of 10 at a time; Cancel stops a large running job', { skip, timeout: 120_000 }, async (t) => {
  const smtp = await startSmtpServer({
    light: true,
    faults: { dataDelayMs: SLOW_DATA_MS, rcpt: { 'old@example.org': { code: 552, message: '5.2.2 Mailbox full', times: Infinity } } },
  })
  t.after(() => smtp.close())
  const serve = await startServer(t, smtp.url)
  const file = join(tempDir(t, 'rawtrigger-web-jobs-rec-'), 'records')

  // Eleven finished jobs of three types, then the large campaign: twelve jobs, two pages.
  const small: string[] = []
  for (let i = 0; i < PAGE_SIZE + 1; i++) {
    const kind = i % 3
    const res = kind === 0
      ? await postJob(serve.url, 'email', { subject: `Newsletter ${i}`, text: 'Hello', recipients: ['ada@example.org', 'old@example.org', 'grace@example.org'] })
      : kind === 1 ? await postJob(serve.url, 'record', { n: 5, file }) : await postJob(serve.url, 'noop', { step: i })
    assert.equal(res.status, 202, res.text)
    small.push(res.json.id as string)
  }
  for (const id of small) await waitForState(serve.url, id, 'done', DONE_MS)
  const recipients = Array.from({ length: BIG_JOB }, (_, i) => `reader${i}@example.org`)
  const big = await postJob(serve.url, 'email', { subject: 'Big announcement', text: 'Hello', recipients })
  assert.equal(big.status, 202, big.text)
  const bigId = big.json.id as string

  const browser = await launch(t)
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const pageErrors: string[] = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  await withFailureShot(t, page, async () => {
    await page.goto(serve.url + '/')
    await waitForText(page, cell(bigId, 'state'), /^(queued|running)$/, 5_000)
    const ids = async (): Promise<string[]> => page.locator('[data-job-row]').evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { jobRow: string } }).dataset.jobRow))
    assert.deepEqual(await ids(), [bigId, ...small.slice(-(PAGE_SIZE - 1)).reverse()], 'page 1: the newest ten')
    const older = page.getByRole('button', { name: 'Older' })
    const newer = page.getByRole('button', { name: 'Newer' })
    assert.equal(await newer.isEnabled(), false)
    await older.click()
    await waitForText(page, '#jobs-page', 'Page 2', 5_000)
    await page.locator(row(small[0] as string)).waitFor()
    assert.deepEqual(await ids(), [small[1], small[0]], 'page 2: the two oldest')
    assert.equal(await older.isEnabled(), false)
    await newer.click()
    await page.locator(row(bigId)).waitFor()

    // The large job: Cancel applies, Retry failed does not (nothing failed).
    await page.locator(`${row(bigId)} button`).click()
    await waitForText(page, `${detail(bigId)} [data-job-state]`, /^(queued|running)$/, 5_000)
    const retry = page.getByRole('button', { name: 'Retry failed' })
    const cancel = page.getByRole('button', { name: 'Cancel', exact: true })
    assert.equal(await cancel.isEnabled(), true)
    assert.equal(await retry.isEnabled(), false)
    await cancel.click()
    await waitForText(page, `${detail(bigId)} [data-action-result]`, /^Cancelled: [\d,]+ recipients? will not be sent\./, 5_000)
    await waitForText(page, `${detail(bigId)} [data-job-state]`, 'cancelled', 5_000)
    await waitForText(page, cell(bigId, 'state'), 'cancelled', 5_000)
    assert.equal(await cancel.isEnabled(), false, 'an ended job cannot be cancelled again')
    const job = await getJob(serve.url, bigId)
    assert.equal(job.state, 'cancelled')
    assert.ok(job.sent < BIG_JOB, `${job.sent} of ${BIG_JOB} sent before the cancel`)

    // For the README: a campaign sent from the form, on top of the list, selected with its failure
    // and the server's reply shown, Retry failed offered.
    const withFailure = await sendCampaign(page, 'Spring news for {{name}}', 'Hello {{name}},\n\nthe spring newsletter is out.',
      'Ada Lovelace <ada@example.org>\nold@example.org\nGrace Hopper <grace@example.org>')
    await waitForText(page, cell(withFailure, 'state'), 'done')
    assert.equal(await page.locator('[data-job-row]').first().getAttribute('data-job-row'), withFailure)
    await page.locator(`${row(withFailure)} button`).click()
    await waitForText(page, `${detail(withFailure)} [data-job-failures]`, /552 5\.2\.2 Mailbox full/, 5_000)
    assert.equal(await retry.isEnabled(), true)
    await page.locator('#jobs-table').scrollIntoViewIfNeeded()
    const shot = join(tempDir(t, 'rawtrigger-web-jobs-shot-'), 'screenshot.png')
    await page.mouse.move(0, 0)
    await page.screenshot({ path: shot, fullPage: true })
    if (process.env.UPDATE_SCREENSHOT === '1') {
      mkdirSync(join(ROOT, 'docs'), { recursive: true })
      copyFileSync(shot, join(ROOT, 'docs', 'screenshot.png'))
      t.diagnostic('wrote docs/screenshot.png')
    }
    assert.deepEqual(pageErrors, [])
  })
})

test('jobs view with --secret: /jobs needs a signature the page cannot make; the view says so', { skip, timeout: 60_000 }, async (t) => {
  const secret = `whsec_${randomBytes(32).toString('base64')}`
  const serve = await startServe(t, tempDir(t, 'rawtrigger-web-jobs-'), ['--secret', secret, '--sink-port', '0', '--log-level', 'warn'])
  const browser = await launch(t)
  const page = await browser.newPage()
  const listings: number[] = []
  page.on('response', (res) => { if (new URL(res.url()).pathname === '/jobs') listings.push(res.status()) })
  await page.goto(serve.url + '/')
  await waitForText(page, '#jobs-status', /--secret: \/jobs answers signed requests only/, 5_000)
  assert.deepEqual(listings, [401], 'the listing is refused')
  assert.equal(await page.locator('[data-job-row]').count(), 0)
})
