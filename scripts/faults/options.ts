// The settings every fault reads, with the defaults of `npm run faults` and of `--quick` (the short
// run npm test does), and the shared shape of a fault.
import type { ClientMode } from './flood.ts'
import type { Row } from './row.ts'
import type { Scope } from '../kit/scope.ts'

/** Where serve commits new SQLite jobs (serve --sqlite-writer). */
export type WriterMode = 'thread' | 'inline'

/** Settings of a run. */
export interface FaultOptions {
  /** Flood length, fault included (ms). */
  floodMs: number
  /** Triggers in flight at once. */
  concurrency: number
  /** Recipients per e-mail job of a flood. */
  recipients: number
  /** How long Redis stays stopped, and the disk full at least (until 20 answers 503, 15 s at most) (ms). */
  downMs: number
  /** The SMTP outage of the big job (ms). */
  smtpOutageMs: number
  /** Recipients of the big job that the SMTP outage hits. */
  bigJob: number
  /** After the fault, how long every stored job may take to reach done (ms). */
  settleMs: number
  /** serve's pooled SMTP connections: also the duplicates a kill -9 may cause. */
  poolSize: number
  /** The writer modes of the SQLite rows. */
  writers: readonly WriterMode[]
  /** The client modes of the flood rows. */
  modes: readonly ClientMode[]
}

/** `npm run faults` without flags. */
export const DEFAULTS: FaultOptions = {
  floodMs: 4_000,
  concurrency: 32,
  recipients: 1,
  downMs: 5_000,
  smtpOutageMs: 20_000,
  bigJob: 5_000,
  // A keep-alive flood at full speed stores 20,000+ one-recipient jobs; serve mails ~400 a second here.
  settleMs: 300_000,
  poolSize: 5,
  writers: ['thread', 'inline'],
  modes: ['keep-alive', 'new-connection'],
}

/** `--quick`: a few seconds per fault, for npm test. */
export const QUICK: FaultOptions = {
  ...DEFAULTS,
  floodMs: 2_000,
  concurrency: 16,
  // Longer than the 2 s an add waits for a reconnecting Redis (bullmq-queue.ts CONNECT_WAIT_MS):
  // a shorter outage is waited out, and answered 202 once Redis is back.
  downMs: 3_000,
  smtpOutageMs: 3_000,
  bigJob: 1_000,
  settleMs: 60_000,
  writers: ['thread'],
}

/** What a fault gets. */
export interface FaultContext {
  scope: Scope
  options: FaultOptions
  /** A line of progress on stderr. */
  progress (text: string): void
  /** `npm run faults -- <flags>` that runs this row alone. */
  command (fault: string): string
}

/** A fault of the harness: produces one row. */
export interface Fault {
  name: string
  /** Store it needs: `redis` faults are skipped without redis-server. */
  needs: 'sqlite' | 'redis' | 'root'
  run (ctx: FaultContext): Promise<Row>
}
