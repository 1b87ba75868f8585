// Calling rawtrigger's Lua (redis-scripts.ts) and reading what it stores.
import type { Redis } from 'ioredis'
import { INDEXED_STATES } from './redis-scripts.ts'

/** The six per-state indexes that a script moving jobs takes as its last KEYS (redis-scripts.ts REINDEX). */
export function stateIndexes (key: (kind: string, id?: string) => string): string[] {
  return INDEXED_STATES.map((state) => key('index', state))
}

/** The KEYS count of a script that moves jobs: its own keys and the per-state indexes. */
export function withIndexes (ownKeys: number): number {
  return ownKeys + INDEXED_STATES.length
}

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
