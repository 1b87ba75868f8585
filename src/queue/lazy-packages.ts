// The storage backends' packages, loaded when a store is constructed (see src/lazy-require.ts):
// a `SqliteStore` loads better-sqlite3, a `BullmqQueue` bullmq and ioredis.
import type BetterSqlite3 from 'better-sqlite3'
import { lazyRequire } from '../lazy-require.ts'

export type { default as Database } from 'better-sqlite3'
export type { Job, Queue, Worker } from 'bullmq'
export type { Redis } from 'ioredis'

/** better-sqlite3's `Database` class. */
export const betterSqlite3: () => typeof BetterSqlite3 = lazyRequire('better-sqlite3')
/** bullmq's exports (`Queue`, `Worker`, `DelayedError`, …). */
export const bullmq = lazyRequire<typeof import('bullmq')>('bullmq')
/** ioredis' exports (`Redis`, …). */
export const ioredis = lazyRequire<typeof import('ioredis')>('ioredis')
