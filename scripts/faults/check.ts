// The checker: compares what the clients were promised (every webhook-id answered 202) with what
// the store holds once the fault is over, read back through serve's own API (GET /jobs pages, then
// GET /jobs/:id for anything the pages did not show), and with what the SMTP sink received.
import { sign, type Secret } from 'rawtrigger'
import type { Outcome } from './flood.ts'
import type { SmtpSink } from './smtp-sink.ts'
import { sleep } from '../kit/scope.ts'

/** Jobs per page of GET /jobs (its maximum). */
const PAGE = 500
const FETCH_TIMEOUT_MS = 10_000

/** A job as GET /jobs lists it (the fields the checker reads). */
export interface StoredJob { id: string, state: string, total: number, sent: number, failed: number }

/** What the clients got. */
export interface ClientFigures {
  /** Triggers fired. */
  sent: number
  /** Answered 202. */
  acked: number
  /** Answers by status, and failures by error, e.g. `{ "202": 900, "503": 40, "RT_ERR_CONNECT/ECONNREFUSED": 12 }`. */
  outcomes: Record<string, number>
  /** 503 answers whose JSON body carried no `error.code`. */
  unavailableWithoutCode: number
  /** 202 answers naming another id than the webhook-id, or `duplicate: true` (every id is sent once). */
  wrongAnswers: number
}

/** What the store holds, against the clients' figures. */
export interface StoreFigures {
  stored: number
  /** Acknowledged, not stored: must be 0. */
  lost: number
  /** Stored under an id no client sent: must be 0. */
  invented: number
  /** Ids listed more than once by GET /jobs: must be 0. */
  storedTwice: number
  /** Stored but not acknowledged (the answer was lost with the connection): allowed. */
  unackedStored: number
  /** Stored jobs not `done` when the checker gave up waiting. */
  notDone: number
  /** Of those, jobs no client was told 202 for (stored while the answer was lost), by state. */
  notDoneUnacked: number
  /** States of the jobs not done, e.g. `{ queued: 3 }`. */
  notDoneStates: Record<string, number>
  /** Recipients failed for good across the stored jobs. */
  failedItems: number
  /** Up to 5 lost ids, and up to 5 acknowledged ids not done, for the report. */
  lostIds: string[]
  notDoneAckedIds: string[]
}

/** What the SMTP sink received, against the stored jobs' recipients. */
export interface MailFigures {
  /** Recipients of the stored jobs. */
  expected: number
  /** Distinct messages of stored jobs received. */
  delivered: number
  /** Messages received more than once (extra copies). */
  duplicates: number
  /** Messages for a job that is not stored, or an index beyond its recipients. */
  invented: number
}

/** The figures of the clients' ledger. */
export function clientFigures (outcomes: readonly Outcome[]): ClientFigures {
  const counts: Record<string, number> = {}
  let acked = 0
  let unavailableWithoutCode = 0
  let wrongAnswers = 0
  for (const o of outcomes) {
    const key = o.status === undefined ? (o.error ?? 'no answer') : String(o.status)
    counts[key] = (counts[key] ?? 0) + 1
    if (o.status === 202) {
      acked++
      if (o.bodyId !== o.id || o.duplicate === true) wrongAnswers++
    }
    if (o.status === 503 && o.code === undefined) unavailableWithoutCode++
  }
  return { sent: outcomes.length, acked, outcomes: counts, unavailableWithoutCode, wrongAnswers }
}

/** A GET, signed over the empty body when serve has a secret (GET /jobs then needs it). */
async function getJson (url: string, secret?: Secret): Promise<{ status: number, json: unknown }> {
  const headers = secret === undefined ? {} : sign(secret, '')
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, json }
}

/** Every job serve lists, newest first, page by page; ids listed twice are counted. */
export async function listStored (url: string, secret?: Secret): Promise<{ jobs: Map<string, StoredJob>, listedTwice: number }> {
  const jobs = new Map<string, StoredJob>()
  let listedTwice = 0
  let before: string | undefined
  for (;;) {
    const page = await getJson(`${url}/jobs?limit=${PAGE}${before === undefined ? '' : `&before=${encodeURIComponent(before)}`}`, secret)
    if (page.status !== 200) throw new Error(`GET /jobs answered ${page.status}: ${JSON.stringify(page.json)}`)
    const { jobs: list, next } = page.json as { jobs: StoredJob[], next?: string }
    for (const job of list) {
      if (jobs.has(job.id)) listedTwice++
      jobs.set(job.id, job)
    }
    if (next === undefined || list.length === 0) return { jobs, listedTwice }
    before = next
  }
}

/** How {@link waitSettled} ended. */
export interface Settle {
  /** Nothing queued or running. */
  settled: boolean
  waitedMs: number
  /** GET /stats `jobs` when it ended. */
  jobs: Record<string, number>
}

/**
 * Waits until GET /stats shows nothing queued or running. Gives up after `timeoutMs`, or once
 * nothing in /stats has changed for `idleMs` (jobs that nothing will ever run).
 */
export async function waitSettled (url: string, timeoutMs: number, idleMs = 15_000): Promise<Settle> {
  const started = Date.now()
  let last = ''
  let lastChange = started
  let jobs: Record<string, number> = {}
  for (;;) {
    try {
      const { status, json } = await getJson(`${url}/stats`)
      const stats = json as { jobs?: { queued: number, running: number }, emails?: unknown } | undefined
      if (status === 200 && stats?.jobs !== undefined) {
        jobs = stats.jobs as unknown as Record<string, number>
        if (stats.jobs.queued === 0 && stats.jobs.running === 0) return { settled: true, waitedMs: Date.now() - started, jobs }
        const now = JSON.stringify([stats.jobs, stats.emails])
        if (now !== last) {
          last = now
          lastChange = Date.now()
        }
      }
    } catch {
      // serve not answering yet
    }
    const now = Date.now()
    if (now - started >= timeoutMs || now - lastChange >= idleMs) return { settled: false, waitedMs: now - started, jobs }
    await sleep(250)
  }
}

/** Compares the acknowledged ids with what `url` stores (after the fault, on a settled store). */
export async function storeFigures (url: string, outcomes: readonly Outcome[], secret?: Secret): Promise<{ figures: StoreFigures, jobs: Map<string, StoredJob> }> {
  const { jobs, listedTwice } = await listStored(url, secret)
  const sent = new Set(outcomes.map((o) => o.id))
  const acked = new Set(outcomes.filter((o) => o.status === 202).map((o) => o.id))
  const lostIds: string[] = []
  for (const id of acked) {
    if (jobs.has(id)) continue
    // Not in the pages: asked one by one, so a listing bug is not taken for a lost job.
    const one = await getJson(`${url}/jobs/${encodeURIComponent(id)}`, secret)
    if (one.status === 200) jobs.set(id, one.json as StoredJob)
    else lostIds.push(id)
  }
  let invented = 0
  let unackedStored = 0
  let notDone = 0
  let notDoneUnacked = 0
  const notDoneStates: Record<string, number> = {}
  const notDoneAckedIds: string[] = []
  let failedItems = 0
  for (const job of jobs.values()) {
    if (!sent.has(job.id)) invented++
    else if (!acked.has(job.id)) unackedStored++
    if (job.state !== 'done') {
      notDone++
      if (!acked.has(job.id)) notDoneUnacked++
      else if (notDoneAckedIds.length < 5) notDoneAckedIds.push(job.id)
      notDoneStates[job.state] = (notDoneStates[job.state] ?? 0) + 1
    }
    failedItems += job.failed
  }
  return {
    figures: { stored: jobs.size, lost: lostIds.length, invented, storedTwice: listedTwice, unackedStored, notDone, notDoneUnacked, notDoneStates, failedItems, lostIds: lostIds.slice(0, 5), notDoneAckedIds },
    jobs,
  }
}

/** `<jobId.index@domain>` as rawtrigger writes it → [jobId, index]. */
function parseMessageId (messageId: string): [string, number] | undefined {
  const at = messageId.lastIndexOf('@')
  const dot = messageId.lastIndexOf('.', at)
  if (at === -1 || dot === -1) return undefined
  const index = Number(messageId.slice(dot + 1, at))
  return Number.isInteger(index) ? [messageId.slice(0, dot), index] : undefined
}

/** The sink's messages against the recipients of the stored jobs. */
export function mailFigures (sink: SmtpSink, jobs: ReadonlyMap<string, StoredJob>): MailFigures {
  let expected = 0
  for (const job of jobs.values()) expected += job.total
  let delivered = 0
  let duplicates = 0
  let invented = 0
  for (const [messageId, n] of sink.counts) {
    const parsed = parseMessageId(messageId)
    const job = parsed === undefined ? undefined : jobs.get(parsed[0])
    if (parsed === undefined || job === undefined || parsed[1] >= job.total) {
      invented += n
      continue
    }
    delivered++
    duplicates += n - 1
  }
  return { expected, delivered, duplicates, invented }
}
