// Calling rawtrigger's Lua (redis-scripts.ts) and reading what it stores.
import type { Redis } from 'ioredis'

/** Runs a script registered with `defineCommand` (ioredis adds it as a method, untyped). */
export function callScript (redis: Redis, name: string, ...args: Array<string | number>): Promise<unknown> {
  return (redis as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>)[name]!(...args)
}

/** One stored item, parsed. */
export interface ItemRecord {
  state: 'p' | 'd' | 'f'
  attempts: number
  dueAt: number
  error: string
}

/** Parses "state|attempts|dueAt|error"; null (absent) is a fresh pending item. */
export function parseItem (value: string | null): ItemRecord {
  if (value === null) return { state: 'p', attempts: 0, dueAt: 0, error: '' }
  const [state, attempts, dueAt] = value.split('|', 3) as [string, string, string]
  const error = value.slice(state.length + attempts.length + dueAt.length + 3)
  return { state: state as ItemRecord['state'], attempts: Number(attempts), dueAt: Number(dueAt), error }
}
