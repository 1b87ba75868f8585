// One receiver over either store, for tests that run the same assertions on both: SQLite in a temp
// dir, or BullMQ on the real Redis with a key prefix per test (skipped without Redis, failed with
// REQUIRE_REDIS=1). Closed when the test ends: the receiver, then what it uses (a mailer, an SMTP
// server), then its data.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { createReceiver, type Receiver, type ReceiverOptions } from 'rawtrigger'
import { BullmqQueue } from '../../src/queue/bullmq-queue.ts'
import { bullmqConnected, useRedis } from './redis.ts'

/** The two stores. */
export type StoreKind = 'sqlite' | 'redis'
export const STORE_KINDS: readonly StoreKind[] = ['sqlite', 'redis']

/** Options of {@link startOnStore}. */
export interface StoreReceiverOptions extends Omit<ReceiverOptions, 'queue' | 'dataDir'> {
  /** BullMQ only: recipients (items) per chunk. @default 2 */
  chunkSize?: number
  /** BullMQ only: how long BullMQ keeps finished chunks. */
  bullmqRetainMs?: number
  /** Run when the test ends, after the receiver closed (also when Redis is absent): a mailer, an SMTP server. */
  closeAfter?: ReadonlyArray<() => unknown>
}

/**
 * `createReceiver` on 127.0.0.1:0, log level silent, pollMs 20, over the store `kind`; undefined
 * (the test skipped) when Redis is wanted and absent. A BullMQ receiver is returned once its
 * connection is up.
 */
export async function startOnStore (t: TestContext, kind: StoreKind, options: StoreReceiverOptions = {}): Promise<Receiver | undefined> {
  const { chunkSize = 2, bullmqRetainMs, closeAfter = [], ...rest } = options
  const common: ReceiverOptions = { port: 0, host: '127.0.0.1', logLevel: 'silent', pollMs: 20, ...rest }
  const closeAll = async (receiver: Receiver | undefined): Promise<void> => {
    await receiver?.close()
    for (const fn of closeAfter) await fn()
  }
  if (kind === 'sqlite') {
    const dataDir = mkdtempSync(join(tmpdir(), 'rttest-store-'))
    const receiver = await createReceiver({ ...common, dataDir }).catch(async (err: unknown) => {
      await closeAll(undefined)
      rmSync(dataDir, { recursive: true, force: true })
      throw err
    })
    t.after(async () => {
      await closeAll(receiver)
      rmSync(dataDir, { recursive: true, force: true })
    })
    return receiver
  }
  const redis = await useRedis(t)
  if (redis === undefined) {
    await closeAll(undefined)
    return undefined
  }
  const queue = new BullmqQueue({ url: redis.url, prefix: redis.prefix, chunkSize, ...(bullmqRetainMs === undefined ? {} : { retainMs: bullmqRetainMs }) })
  const receiver = await createReceiver({ ...common, queue })
  redis.defer(() => closeAll(receiver))
  await bullmqConnected(queue)
  return receiver
}
