import { ConfigError, type StoreError } from '../errors.ts'
import { LIST_NAME_RE, type KeyedList } from './item-types.ts'

/**
 * A store's keyed list with every failure turned into a {@link StoreError}, so a route on it
 * answers 503 `RT_ERR_STORE` like every other store failure (not a 500). A bad name throws
 * ConfigError at once: names are the code's, not a request's.
 */
export function guardList (name: string, list: KeyedList, toStoreError: (op: string, cause: unknown) => StoreError): KeyedList {
  if (!LIST_NAME_RE.test(name)) throw new ConfigError(`list name ${JSON.stringify(name)} must match ${String(LIST_NAME_RE)}`)
  async function guard<T> (op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw toStoreError(op, err)
    }
  }
  return {
    entries: (limit, after) => guard('read', () => list.entries(limit, after)),
    put: (key, value) => guard('write', () => list.put(key, value)),
    remove: (key) => guard('write', () => list.remove(key)),
    lookup: (keys) => guard('read', () => list.lookup(keys)),
  }
}
