// The package's createReceiver: the receiver of server/receiver.ts, which knows jobs only through
// the JobQueue contract and job types only through plugins, with the package's defaults: SQLite
// under `dataDir` as the store when no queue or store is given, and the e-mail plugin when no
// plugins are. The one place outside the CLI where a backend is chosen.
import { emailPlugin, EMAIL_TYPE } from './email/plugin.ts'
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
 * Without `plugins`, the e-mail type's: its routes (/suppressions, /bounces), metrics and
 * `emails` in /stats, with `handlers.email` as its handler when given.
 */
function withDefaultPlugins (options: QueueReceiverOptions): QueueReceiverOptions {
  if (options.plugins !== undefined) return options
  const { [EMAIL_TYPE]: handler, ...handlers } = options.handlers ?? {}
  return { ...options, handlers, plugins: [emailPlugin(handler === undefined ? {} : { handler })] }
}

/**
 * Starts the receiver of `rawtrigger serve`: an HTTP server that keeps every completely sent
 * request even when the client has already hung up (FIN or RST after the last byte), stores jobs
 * durably before answering 202, and runs them afterwards from the store, independent of any
 * request. Jobs live in `queue` or `store` when given, else in SQLite under `dataDir`; job types
 * come from `handlers` and `plugins` (the e-mail plugin when none is given).
 */
export async function createReceiver (options: ReceiverOptions = {}): Promise<Receiver> {
  const { dataDir, ...rest } = options
  if (rest.queue !== undefined || rest.store !== undefined) {
    if (dataDir !== undefined) throw new ConfigError('dataDir is where the default SQLite store lives: give it, or a queue or store, not both')
    return await createReceiverOn(withDefaultPlugins(rest))
  }
  checkReceiverOptions(rest) // before the store opens its file: a bad option fails alone
  return await createReceiverOn({ ...withDefaultPlugins(rest), store: new SqliteStore(dataDir ?? './data') })
}
