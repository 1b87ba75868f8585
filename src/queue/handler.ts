import type { Logger } from '../log.ts'
import type { DueItem, ItemOutcome, KeyedList } from './item-types.ts'

/** What a handler's `parse` returns for a valid payload. */
export interface ParsedJob<P> {
  /** The payload to store, normalised (e.g. recipients deduplicated). */
  payload: P
  /** Units tracked one by one (recipients); 0 for a job that is one unit. */
  items: number
  /** Extra fields for the 202 answer, e.g. `{ recipients: 1000 }`. */
  summary?: Record<string, unknown>
}

/** What a handler's `run` works with. */
export interface JobContext<P> {
  readonly id: string
  readonly payload: P
  /** Total items of the job. */
  readonly items: number
  /** This run's number, 1 for the first; higher after a crash or a retry. */
  readonly attempts: number
  /** Fires when the receiver stops or the lease is lost: finish what is in flight and return. */
  readonly signal: AbortSignal
  readonly log: Logger
  /** The items still pending and due now, in index order, read page by page. */
  dueItems (): AsyncIterable<DueItem>
  /** Records one item's outcome durably before it resolves. */
  markItem (index: number, outcome: ItemOutcome): Promise<void>
  /** A keyed list the store keeps for the job type, by name (the e-mail type's `suppressions`). */
  keyedList (name: string): KeyedList
  /** Reports an item's outcome: the receiver hands it to the plugin of the job's type (its metrics). */
  observe (event: ItemEvent): void
}

/** What a job handler reports per item. The job type's plugin gives it meaning (e.g. a counter by outcome). */
export interface ItemEvent {
  /** How the item ended this time, in the job type's words (e-mail: sent, failed, retry, suppressed). */
  outcome: string
  /** The remote end's reply code, when there was one (e-mail: the SMTP reply). */
  code?: number
}

/**
 * A job type. Registered by name; `POST /jobs/<name>` creates its jobs.
 * `run` is called after the job is durable and the request is over, and again after a crash:
 * it must resume from the items still pending.
 */
export interface JobHandler<P = unknown> {
  /** Largest body this type accepts; the receiver's limit when absent. */
  maxBodyBytes?: number
  /** Validates a request body; throws a `ValidationError` naming the field. */
  parse (body: unknown): ParsedJob<P>
  /** Does the work. Throwing fails this run (retried with backoff up to the run limit). */
  run (ctx: JobContext<P>): Promise<void>
}

/** A handler of any payload type, for registries that hold several (each checks its own payload). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyJobHandler = JobHandler<any>
