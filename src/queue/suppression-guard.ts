import type { StoreError } from '../errors.ts'
import type { SuppressionList } from './types.ts'

/**
 * The suppression list of a store with every failure turned into a {@link StoreError}, so
 * `/suppressions` answers 503 `RT_ERR_STORE` like every other store failure (not a 500).
 */
export function guardSuppressions (list: SuppressionList, toStoreError: (op: string, cause: unknown) => StoreError): SuppressionList {
  async function guard<T> (op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw toStoreError(op, err)
    }
  }
  return {
    listSuppressed: (limit, after) => guard('read', () => list.listSuppressed(limit, after)),
    suppress: (email, reason) => guard('write', () => list.suppress(email, reason)),
    unsuppress: (email) => guard('write', () => list.unsuppress(email)),
    suppressed: (emails) => guard('read', () => list.suppressed(emails)),
  }
}
