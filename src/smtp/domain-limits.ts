// Per receiving domain limits, as Postfix (default_destination_concurrency_limit, _rate_delay)
// and large senders shape their traffic (issue 14): messages in flight to one domain, messages per
// second to one domain, and a domain that answers "too many" (421, or 45x naming a rate or
// connection limit) slowed alone: paused, its concurrency halved and its rate interval doubled,
// then opened up again one step per round of messages it accepts.
import { InvalidOptionError } from '../errors.ts'

/** Messages in flight to one receiving domain unless configured. */
export const DOMAIN_CONCURRENCY = 5
/** First pause of a domain after a "too many" reply; doubled on each next one. */
export const DOMAIN_PAUSE_MS = 10_000
/** Longest pause of a domain. */
const DOMAIN_PAUSE_MAX_MS = 300_000
/** How far a throttled domain's rate interval is stretched at most. */
const SLOWDOWN_MAX = 16

/** The limits of one domain. */
export interface DomainLimit {
  /** Messages in flight at once. */
  concurrency?: number
  /** Messages per second (fractions allowed: 0.5 = one every 2 s); unlimited when absent. */
  rate?: number
}

/** Options of {@link DomainLimiter}. */
export interface DomainLimitOptions extends DomainLimit {
  /** @default 5 */
  concurrency?: number
  /** Limits of single domains (exact, lower-case names), over the defaults above. */
  domains?: Record<string, DomainLimit>
  /** First pause after a "too many" reply. @default 10000 */
  pauseMs?: number
}

interface DomainState {
  active: number
  /** Concurrency now: the configured one, or less after "too many". */
  limit: number
  /** Earliest start of the next message under the rate (ms since the epoch). */
  nextAt: number
  pausedUntil: number
  /** Rate interval multiplier after "too many" (1 = as configured). */
  slowdown: number
  strikes: number
  /** Messages accepted since the last step up. */
  streak: number
}

/** What a send came to, for the limiter. */
export type DomainOutcome = 'sent' | 'throttled' | 'other'

/**
 * A 421 (the server closes the session: busy, too many connections), or a 450/451/452 whose text
 * names a rate or connection limit (Gmail's 4.7.28, Outlook's 4.7.650 "throttled", Yahoo's TS0x
 * "deferred due to excessive volume"): the domain, not the recipient, asks us to slow down.
 * A plain 451 (greylisting, a local error) concerns the recipient alone.
 */
export function isTooMany (code: number | undefined, reply: string): boolean {
  if (code === 421) return true
  if (code !== 450 && code !== 451 && code !== 452) return false
  return /too many|rate.?limit|throttl|excessive|slow down|4\.7\.28\b|4\.7\.0 .*(?:rate|volume)/i.test(reply)
}

/** Per-domain limits shared by every job of a process. */
export class DomainLimiter {
  readonly #concurrency: number
  readonly #rate: number | undefined
  readonly #domains: Map<string, DomainLimit>
  readonly #pauseMs: number
  readonly #state = new Map<string, DomainState>()
  #changed: { promise: Promise<void>, resolve: () => void } | undefined

  constructor (options: DomainLimitOptions = {}) {
    checkLimit('domain concurrency', options)
    for (const [domain, limit] of Object.entries(options.domains ?? {})) checkLimit(`domain limit of ${domain}`, limit)
    this.#concurrency = options.concurrency ?? DOMAIN_CONCURRENCY
    this.#rate = options.rate
    this.#domains = new Map(Object.entries(options.domains ?? {}).map(([d, l]) => [d.toLowerCase(), l]))
    this.#pauseMs = options.pauseMs ?? DOMAIN_PAUSE_MS
  }

  /** The configured limits of `domain`. */
  limitsOf (domain: string): Required<Pick<DomainLimit, 'concurrency'>> & DomainLimit {
    const own = this.#domains.get(domain)
    const rate = own?.rate ?? this.#rate
    return { concurrency: own?.concurrency ?? this.#concurrency, ...(rate === undefined ? {} : { rate }) }
  }

  #get (domain: string): DomainState {
    let s = this.#state.get(domain)
    if (s === undefined) {
      s = { active: 0, limit: this.limitsOf(domain).concurrency, nextAt: 0, pausedUntil: 0, slowdown: 1, strikes: 0, streak: 0 }
      this.#state.set(domain, s)
    }
    return s
  }

  #interval (domain: string, s: DomainState | undefined): number {
    const rate = this.limitsOf(domain).rate
    return rate === undefined ? 0 : 1000 / rate * (s?.slowdown ?? 1)
  }

  /** Messages in flight to `domain`. */
  inFlight (domain: string): number {
    return this.#state.get(domain)?.active ?? 0
  }

  /** True while `domain` is paused after a "too many" reply. */
  paused (domain: string, now = Date.now()): boolean {
    return (this.#state.get(domain)?.pausedUntil ?? 0) > now
  }

  /**
   * When a message to `domain` may start, `queued` others to it being ahead: 0 for now, else
   * milliseconds (an estimate when the rate is the limit); `Infinity` when only the end of a
   * message in flight can open a slot.
   */
  waitMs (domain: string, now = Date.now(), queued = 0): number {
    const s = this.#state.get(domain)
    const interval = this.#interval(domain, s)
    if (s !== undefined && s.pausedUntil > now) return s.pausedUntil - now + queued * interval
    const rateWait = Math.max(0, (s?.nextAt ?? 0) - now) + queued * interval
    if ((s?.active ?? 0) + queued >= (s?.limit ?? this.limitsOf(domain).concurrency)) return rateWait > 0 ? rateWait : Infinity
    return rateWait
  }

  /** Counts a message to `domain` as started. */
  start (domain: string, now = Date.now()): void {
    const s = this.#get(domain)
    s.active++
    s.nextAt = Math.max(s.nextAt, now) + this.#interval(domain, s)
  }

  /** Counts a message to `domain` as ended; a "too many" slows the domain down. */
  finish (domain: string, outcome: DomainOutcome, now = Date.now()): void {
    const s = this.#get(domain)
    s.active = Math.max(0, s.active - 1)
    const configured = this.limitsOf(domain).concurrency
    if (outcome === 'throttled') {
      s.limit = Math.max(1, Math.floor(s.limit / 2))
      s.slowdown = Math.min(SLOWDOWN_MAX, s.slowdown * 2)
      s.pausedUntil = Math.max(s.pausedUntil, now + Math.min(DOMAIN_PAUSE_MAX_MS, this.#pauseMs * 2 ** s.strikes))
      s.strikes++
      s.streak = 0
    } else if (outcome === 'sent' && s.pausedUntil <= now && (s.limit < configured || s.slowdown > 1) && ++s.streak >= s.limit) {
      // Additive increase: one step back per round of messages accepted after the pause.
      s.streak = 0
      s.limit = Math.min(configured, s.limit + 1)
      s.slowdown = Math.max(1, s.slowdown / 2)
      if (s.limit === configured && s.slowdown === 1) s.strikes = 0
    }
    // A domain at rest with nothing to remember is forgotten: 100,000 domains do not pile up.
    if (s.active === 0 && s.limit === configured && s.slowdown === 1 && s.pausedUntil <= now && s.nextAt <= now) this.#state.delete(domain)
    this.#notify()
  }

  /** Resolves at the next {@link finish}, when a slot may have opened. */
  changed (): Promise<void> {
    if (this.#changed === undefined) {
      let resolve = (): void => {}
      const promise = new Promise<void>((r) => { resolve = r })
      this.#changed = { promise, resolve }
    }
    return this.#changed.promise
  }

  #notify (): void {
    const c = this.#changed
    this.#changed = undefined
    c?.resolve()
  }
}

function checkLimit (what: string, limit: DomainLimit): void {
  const { concurrency, rate } = limit
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    throw new InvalidOptionError(`${what}: concurrency must be a positive integer (got ${concurrency})`)
  }
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) throw new InvalidOptionError(`${what}: rate must be a positive number (got ${rate})`)
}

const PER = { s: 1, m: 60, h: 3600 } as const

/**
 * Reads `--domain-concurrency` and `--domain-rate` values: each a default (`5`; `20`, `20/s`,
 * `600/m`, `1000/h`) or a domain's own (`gmail.com=2`, `gmail.com=20/s`), given repeatedly or
 * comma-separated: `--domain-rate 50/s,gmail.com=20/s,yahoo.com=10/s`. A later value wins.
 */
export function parseDomainFlags (concurrency: readonly string[], rate: readonly string[]): DomainLimitOptions {
  const options: DomainLimitOptions = {}
  const domains: Record<string, DomainLimit> = {}
  const each = (values: readonly string[], flag: string, read: (value: string) => number, key: keyof DomainLimit): void => {
    for (const entry of values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '')) {
      const eq = entry.lastIndexOf('=')
      const domain = eq < 0 ? undefined : entry.slice(0, eq).trim().toLowerCase()
      if (domain !== undefined && !/^(?=.{1,253}$)[a-z0-9-]+(?:\.[a-z0-9-]+)+$/.test(domain)) {
        throw new InvalidOptionError(`${flag}: ${JSON.stringify(domain)} is not a domain name (in ${JSON.stringify(entry)})`)
      }
      const n = read(eq < 0 ? entry : entry.slice(eq + 1).trim())
      if (domain === undefined) options[key] = n
      else domains[domain] = { ...domains[domain], [key]: n }
    }
  }
  each(concurrency, '--domain-concurrency', (v) => {
    const n = Number(v)
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidOptionError(`--domain-concurrency must be a positive integer, or domain=N (got ${v})`)
    return n
  }, 'concurrency')
  each(rate, '--domain-rate', (v) => {
    const m = /^(\d+(?:\.\d+)?)(?:\/([smh]))?$/.exec(v)
    const n = m === null ? NaN : Number(m[1]) / PER[(m[2] ?? 's') as keyof typeof PER]
    if (!(n > 0)) throw new InvalidOptionError(`--domain-rate must be a positive rate like 20, 20/s, 600/m or 1000/h, or domain=RATE (got ${v})`)
    return n
  }, 'rate')
  if (Object.keys(domains).length > 0) options.domains = domains
  return options
}
