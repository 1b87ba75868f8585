// How an e-mail job walks its pending recipients (issue 14): at most `maxInFlight` messages at
// once (the pool's connections), and per receiving domain what its DomainLimiter allows. An item
// whose domain is busy is held back in memory, in order per domain, while the items behind it go
// on; an item whose domain is paused, or would wait long, is left pending in the store and read
// again by a later pass over the job, so a slow domain slows itself and not the job.
import type { JobContext } from '../queue/handler.ts'
import type { DueItem } from '../queue/types.ts'
import type { DomainLimiter, DomainOutcome } from './domain-limits.ts'

/** Items read ahead and held for busy domains, across domains. */
export const PARK_MAX = 1_000
/**
 * An item is held in memory for a rate limit only when its domain should take it within this
 * time; the longer waits stay in the store. Held items are not read again before they start: a
 * cancel stops them once the run sees it (the lease renewal finds the job cancelled and aborts
 * the run). With a domain concurrency of at least the pool's connections and no rate (the
 * defaults: 5 and 5), nothing is ever held.
 */
export const PARK_WAIT_MS = 2_000
/** Items held for one domain: a quarter of PARK_MAX, so one domain cannot take all the room. */
const PARK_PER_DOMAIN = PARK_MAX / 4
/** Shortest sleep between passes, so a pass over nothing but paused domains cannot spin. */
const PASS_PAUSE_MIN_MS = 50

/** What {@link runSends} needs besides the job. */
export interface SendLoopOptions {
  limiter: DomainLimiter
  maxInFlight: number
  /** The receiving domain of item `index`, lower-case. */
  domainOf (index: number): string
  /** Sends one item and records its outcome; never rejects. */
  send (item: DueItem): Promise<DomainOutcome>
}

/** Sleeps `ms`, or less when `signal` fires; the timer is cleared either way. */
function sleep (ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

/** A timer to race against; `clear()` on every path. */
function timer (ms: number): { promise: Promise<void>, clear (): void } {
  let handle: NodeJS.Timeout | undefined
  const promise = new Promise<void>((resolve) => { handle = setTimeout(resolve, ms) })
  return { promise, clear: () => clearTimeout(handle) }
}

/** Runs passes over the job's due items until none is left behind or the job is stopped. */
export async function runSends (ctx: JobContext<unknown>, options: SendLoopOptions): Promise<void> {
  for (let pass = 1; ; pass++) {
    const { skipped, retryInMs } = await onePass(ctx, options, pass)
    if (skipped === 0 || ctx.signal.aborted) return
    ctx.log.debug({ pass, skipped, retryInMs }, 'items left for busy or paused domains: another pass')
    await sleep(Math.max(PASS_PAUSE_MIN_MS, retryInMs), ctx.signal)
  }
}

async function onePass (ctx: JobContext<unknown>, o: SendLoopOptions, pass: number): Promise<{ skipped: number, retryInMs: number }> {
  const { limiter } = o
  const inFlight = new Set<Promise<void>>()
  const parked = new Map<string, DueItem[]>()
  let parkedCount = 0
  let skipped = 0
  let retryInMs = Infinity
  let head: { item: DueItem, domain: string } | undefined // read, waiting for room to be held
  let exhausted = false
  const items = ctx.dueItems()[Symbol.asyncIterator]()

  const start = (item: DueItem, domain: string): void => {
    limiter.start(domain)
    const sending: Promise<void> = o.send(item).then(
      (outcome) => limiter.finish(domain, outcome),
      () => limiter.finish(domain, 'other'),
    ).finally(() => inFlight.delete(sending))
    inFlight.add(sending)
  }

  // Held items first, in order per domain, as far as their domains and the free slots allow.
  // A domain paused since its items were held gives them back to the store.
  const startParked = (): number => {
    let nextMs = Infinity
    for (const [domain, queue] of parked) {
      if (limiter.paused(domain)) {
        skipped += queue.length
        parkedCount -= queue.length
        retryInMs = Math.min(retryInMs, limiter.waitMs(domain))
        parked.delete(domain)
        continue
      }
      while (queue.length > 0 && inFlight.size < o.maxInFlight) {
        const wait = limiter.waitMs(domain)
        if (wait > 0) {
          nextMs = Math.min(nextMs, wait)
          break
        }
        start(queue.shift() as DueItem, domain)
        parkedCount--
      }
      if (queue.length === 0) parked.delete(domain)
    }
    return nextMs
  }

  // Place one item read from the store: start it, hold it, or leave it for a later pass.
  const place = (item: DueItem, domain: string): boolean => {
    const queue = parked.get(domain)
    const wait = limiter.waitMs(domain, Date.now(), queue?.length ?? 0)
    if (wait === 0 && queue === undefined) {
      start(item, domain)
      return true
    }
    // No room: a rate wait beyond PARK_WAIT_MS, or the domain's or the pass's share of held items used up.
    const full = (wait !== Infinity && wait > PARK_WAIT_MS) || (queue?.length ?? 0) >= PARK_PER_DOMAIN || parkedCount >= PARK_MAX
    if (limiter.paused(domain) || (full && pass === 1)) {
      // Paused, or no room with the rest of the job still to read: the store keeps it for later.
      skipped++
      retryInMs = Math.min(retryInMs, limiter.waitMs(domain))
      return true
    }
    // From the second pass on, a slow domain is waited for in order: the rest were sent already.
    if (full) return false
    if (queue === undefined) parked.set(domain, [item])
    else queue.push(item)
    parkedCount++
    return true
  }

  // A stop wakes the wait below. Not by racing each wait against one promise of the whole run:
  // every race left a reaction on it until the run ended (some 200 bytes per e-mail sent,
  // found in heap snapshots of a 100,000-recipient job).
  let wakeOnAbort: (() => void) | undefined
  const onAbort = (): void => wakeOnAbort?.()
  ctx.signal.addEventListener('abort', onAbort, { once: true })
  try {
    for (;;) {
      if (ctx.signal.aborted) break // held items stay pending in the store
      const nextMs = startParked()
      if (head !== undefined && inFlight.size < o.maxInFlight && place(head.item, head.domain)) head = undefined
      if (head === undefined && !exhausted && inFlight.size < o.maxInFlight) {
        const next = await items.next()
        if (next.done === true) exhausted = true
        else {
          const domain = o.domainOf(next.value.index)
          if (!place(next.value, domain)) head = { item: next.value, domain }
        }
        continue
      }
      if (exhausted && parkedCount === 0 && head === undefined) break
      // Wait for a message to end (any job's: the limiter is shared), or for a held domain's
      // rate to allow the next one, or for the head to come within PARK_WAIT_MS of its turn.
      const headQueue = head === undefined ? 0 : parked.get(head.domain)?.length ?? 0
      const headMs = head === undefined || headQueue >= PARK_PER_DOMAIN || parkedCount >= PARK_MAX
        ? Infinity // it waits for held items to start, which ends of messages or nextMs bring
        : limiter.waitMs(head.domain, Date.now(), headQueue) - PARK_WAIT_MS
      let ms = Math.min(nextMs, Math.max(1, headMs))
      if (ms === Infinity && inFlight.size === 0) ms = PASS_PAUSE_MIN_MS // only other jobs can free it
      const wake = ms === Infinity ? undefined : timer(ms)
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) return resolve() // stopped since the loop's check: no wait
        wakeOnAbort = resolve
        void limiter.changed().then(resolve)
        void wake?.promise.then(resolve)
      })
      wakeOnAbort = undefined
      wake?.clear()
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort)
    // Stopped early: close the store's reader (a failure there has nothing left to stop).
    if (!exhausted && items.return !== undefined) items.return(undefined).catch(() => {})
  }
  await Promise.all(inFlight)
  return { skipped, retryInMs: retryInMs === Infinity ? 0 : retryInMs }
}
