// What a job handler sees of its items: the layer under both the handler contract (handler.ts)
// and the stores (types.ts), which re-exports these, so neither of the two imports the other back.

/** An entry of a {@link KeyedList}. */
export interface ListEntry {
  key: string
  value: string
  /** When the key was first put (ISO 8601). */
  createdAt: string
}

/**
 * A durable list of values by key that a store keeps for a job type, by name (the e-mail type's
 * suppression list is `suppressions`). Keys compare case-insensitively. Every failure rejects
 * with a StoreError.
 */
export interface KeyedList {
  /** In key order, the keys after `after`. */
  entries (limit: number, after?: string): Promise<ListEntry[]>
  /** Adds a key or updates its value; true when it was new. */
  put (key: string, value: string): Promise<boolean>
  /** True when it was there. */
  remove (key: string): Promise<boolean>
  /** The values of those of `keys` that are in the list, by lower-cased key. */
  lookup (keys: readonly string[]): Promise<Map<string, string>>
}

/** What a list's name may be. */
export const LIST_NAME_RE = /^[a-z][a-z0-9_-]{0,31}$/

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
