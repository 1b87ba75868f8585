// The e-mail type's suppression list: addresses later jobs skip (hard bounces, complaints,
// unsubscribes), kept by the store as its keyed list `suppressions` (queue/item-types.ts).
import type { KeyedList } from '../queue/item-types.ts'

/** The name of the list in the store. */
export const SUPPRESSIONS_LIST = 'suppressions'

/** One suppressed address. */
export interface Suppression {
  email: string
  reason: string
  createdAt: string
}

/** Addresses later jobs skip. Case-insensitive. */
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

/** The suppression list on a store's keyed list (`store.keyedList(SUPPRESSIONS_LIST)`). */
export function suppressionList (list: KeyedList): SuppressionList {
  return {
    listSuppressed: async (limit, after) => (await list.entries(limit, after)).map((e) => ({ email: e.key, reason: e.value, createdAt: e.createdAt })),
    suppress: (email, reason) => list.put(email, reason),
    unsuppress: (email) => list.remove(email),
    suppressed: (emails) => list.lookup(emails),
  }
}
