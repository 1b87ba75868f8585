// What a job handler sees of its items: the layer under both the handler contract (handler.ts)
// and the stores (types.ts), which re-exports these, so neither of the two imports the other back.

/** One suppressed address. */
export interface Suppression {
  email: string
  reason: string
  createdAt: string
}

/** Addresses later jobs skip: hard bounces and unsubscribes. Case-insensitive. */
export interface SuppressionList {
  /** Alphabetical, from `after` on. */
  listSuppressed (limit: number, after?: string): Promise<Suppression[]>
  /** Adds or updates an address; true when it was new. */
  suppress (email: string, reason: string): Promise<boolean>
  /** True when it was there. */
  unsuppress (email: string): Promise<boolean>
  /** The reasons of those of `emails` that are suppressed, by lower-cased address. */
  suppressed (emails: readonly string[]): Promise<Map<string, string>>
}

/** An item due now. */
export interface DueItem {
  index: number
  attempts: number
}

/** How one item ended this time. */
export type ItemOutcome =
  | { state: 'done' }
  | { state: 'failed', error: string }
  | { state: 'retry', error: string, retryAt: number }
