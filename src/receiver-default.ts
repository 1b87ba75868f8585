// The package's createReceiver: the receiver of server/receiver.ts, which knows jobs only through
// the JobQueue contract, with SQLite under `dataDir` as the store when no queue or store is given.
// The one place outside the CLI where a backend is chosen.
import { ConfigError } from './errors.ts'
import { SqliteStore } from './queue/sqlite-store.ts'
import {
  checkReceiverOptions, createReceiver as createReceiverOn, type Receiver, type ReceiverOptions as QueueReceiverOptions,
} from './server/receiver.ts'

/** Options of {@link createReceiver}: the receiver's, and where its default store lives. */
export interface ReceiverOptions extends QueueReceiverOptions {
  /** Where the SQLite file lives, unless `queue` or `store` is given. @default './data' */
  dataDir?: string
}

/**
 * Starts the receiver of `rawtrigger serve`: an HTTP server that keeps every completely sent
 * request even when the client has already hung up (FIN or RST after the last byte), stores jobs
 * durably before answering 202, and runs them afterwards from the store, independent of any
 * request. Jobs live in `queue` or `store` when given, else in SQLite under `dataDir`.
 */
export async function createReceiver (options: ReceiverOptions = {}): Promise<Receiver> {
  const { dataDir, ...rest } = options
  if (rest.queue !== undefined || rest.store !== undefined) {
    if (dataDir !== undefined) throw new ConfigError('dataDir is where the default SQLite store lives: give it, or a queue or store, not both')
    return await createReceiverOn(rest)
  }
  checkReceiverOptions(rest) // before the store opens its file: a bad option fails alone
  return await createReceiverOn({ ...rest, store: new SqliteStore(dataDir ?? './data') })
}
