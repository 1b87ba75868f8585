// The harness of the job-control tests (test/ops-control*.test.ts): a receiver over either store
// with the `email` job type, sending through a pooled nodemailer transport to a real in-process
// SMTP server with a fault plan, and small clients for GET /jobs, retry and cancel.
import assert from 'node:assert/strict'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { createMailer, emailHandler, sign, type Mailer, type Receiver } from 'rawtrigger'
import type { JobList, JobView } from '../../src/queue/types.ts'
import testHandlers from './handlers.ts'
import { request, type JsonResponse } from './receiver.ts'
import { startSmtpServer, type FaultPlan, type TestSmtpServer } from './smtp-server.ts'
import { startOnStore, type StoreKind } from './store-receiver.ts'
import { waitFor } from './wait.ts'

/** Guard on every wait: a hang fails the test instead of stalling the run. */
export const WAIT_MS = 20_000
const POLL_MS = 25
/** Recipients per BullMQ job: small, so a job of a few recipients spans several chunks. */
const CHUNK_SIZE = 2
export const SECRET = 'whsec_' + Buffer.from('ops-control test secret, 32 byte').toString('base64')


export interface Harness {
  url: string
  receiver: Receiver
  smtp: TestSmtpServer
  mailer: Mailer
}

interface HarnessOptions {
  faults?: FaultPlan
  /** Jobs (SQLite) or chunks (BullMQ) at once; 0 stores only. @default 1 */
  concurrency?: number
  /** Pool connections: also the messages the e-mail job keeps in flight. @default 5 */
  maxConnections?: number
  secret?: string
  /** BullMQ only. @default 2 */
  chunkSize?: number
}

/**
 * A receiver on 127.0.0.1:0 over the store `kind`, with the `email` job type (through a real SMTP
 * server) and the test handlers. Undefined when Redis is wanted but absent (the test is skipped,
 * or failed under REQUIRE_REDIS=1). Everything is closed when the test ends.
 */
export async function start (t: TestContext, kind: StoreKind, options: HarnessOptions = {}): Promise<Harness | undefined> {
  const smtp = await startSmtpServer(options.faults === undefined ? {} : { faults: options.faults })
  const mailer = createMailer({ url: smtp.url, maxConnections: options.maxConnections ?? 5 })
  const receiver = await startOnStore(t, kind, {
    graceMs: 1_000,
    concurrency: options.concurrency ?? 1,
    handlers: { ...testHandlers, email: emailHandler({ mailer, retryBaseMs: 50, maxAttempts: 3 }) },
    ...(options.secret === undefined ? {} : { secret: options.secret }),
    chunkSize: options.chunkSize ?? CHUNK_SIZE,
    closeAfter: [() => mailer.close(), () => smtp.close()],
  })
  return receiver === undefined ? undefined : { url: receiver.url, receiver, smtp, mailer }
}

/** Polls `check` until it returns something other than undefined; fails after `timeoutMs`. */
export function until<T> (what: string, check: () => Promise<T | undefined>, timeoutMs = WAIT_MS): Promise<T> {
  return waitFor(what, check, timeoutMs, POLL_MS)
}

/** Signed headers when `secret` is set (over `body`, empty for GET and body-less POST). */
export function auth (secret: string | undefined, body = ''): Record<string, string> {
  return secret === undefined ? {} : { ...sign(secret, body) }
}

export function get (h: Harness, path: string, secret?: string): Promise<JsonResponse> {
  return request(`${h.url}${path}`, { headers: auth(secret) })
}

export function post (h: Harness, path: string, body?: unknown, secret?: string): Promise<JsonResponse> {
  if (body === undefined) return request(`${h.url}${path}`, { method: 'POST', headers: auth(secret) })
  const text = JSON.stringify(body)
  return request(`${h.url}${path}`, { method: 'POST', body: text, headers: { 'content-type': 'application/json', ...auth(secret, text) } })
}

export async function view (h: Harness, id: string, secret?: string): Promise<JobView> {
  const res = await get(h, `/jobs/${id}`, secret)
  assert.equal(res.status, 200, `GET /jobs/${id}: ${res.text}`)
  return res.json as JobView
}

export async function list (h: Harness, query: string): Promise<JobList> {
  const res = await get(h, `/jobs${query}`)
  assert.equal(res.status, 200, `GET /jobs${query}: ${res.text}`)
  return res.json as JobList
}

/** Waits until the job is in one of `states`. */
export async function untilState (h: Harness, id: string, states: readonly string[], timeoutMs = WAIT_MS, secret?: string): Promise<JobView> {
  let last: JobView | undefined
  try {
    return await until(`job ${id} to be ${states.join(' or ')}`, async () => {
      last = await view(h, id, secret)
      return states.includes(last.state) ? last : undefined
    }, timeoutMs)
  } catch (err) {
    throw new Error(`${(err as Error).message}; last view: ${JSON.stringify(last)}`)
  }
}

/** POSTs an e-mail job with webhook-id `id` (unsigned, loopback: the id is the job's id). */
export async function postEmail (h: Harness, id: string, recipients: string[], secret?: string): Promise<string> {
  const text = JSON.stringify({ from: 'Ops <ops@example.org>', subject: 'Hello {{email}}', text: 'Hi {{email}}', recipients })
  const headers = secret === undefined ? { 'webhook-id': id } : { ...sign(secret, text, { id }) }
  const res = await request(`${h.url}/jobs/email`, { method: 'POST', body: text, headers: { 'content-type': 'application/json', ...headers } })
  assert.equal(res.status, 202, res.text)
  assert.equal(res.json.id, id)
  return id
}

/** A `record` job of `n` items that never runs here (concurrency 0): it stays queued. */
export async function postRecord (h: Harness, id: string, n: number): Promise<void> {
  const text = JSON.stringify({ n, file: join(tmpdir(), `rttest-never-written-${id}`) })
  const res = await request(`${h.url}/jobs/record`, { method: 'POST', body: text, headers: { 'content-type': 'application/json', 'webhook-id': id } })
  assert.equal(res.status, 202, res.text)
}

export function addresses (prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}@example.org`)
}

/** Messages delivered for job `id` (Message-ID `<id.index@domain>`). */
export function deliveredFor (smtp: TestSmtpServer, id: string): number {
  return smtp.delivered.filter((m) => m.messageId.startsWith(`<${id}.`)).length
}

/**
 * Resolves once a job posted now is done: what was queued before it (a retry that should not have
 * been) has run by then, with one worker.
 */
export async function settled (h: Harness): Promise<void> {
  const id = await postEmail(h, `settle-${Math.random().toString(36).slice(2, 10)}`, ['settle@example.org'])
  await untilState(h, id, ['done'])
}
