// The embedded sink on a worker thread of its own: smtp-server's work per message (about as much
// CPU as sending it) then runs on another core than the worker that sends, as a real mail server
// would. The main thread keeps the caught messages for GET /mailbox, as startSink() does.
import { ConfigError } from '../errors.ts'
import { startWorker } from '../worker-thread.ts'
import { SINK_KEEP, type CaughtMessage, type Sink, type SinkOptions } from './sink.ts'

/** sink thread → main. */
export type FromSinkThread =
  | { t: 'listening', port: number, url: string }
  | { t: 'caught', messages: CaughtMessage[] }
  | { t: 'failed', message: string }

/** {@link startSink} on a worker thread; the same options (but `onCaught`) and the same {@link Sink}. */
export function startSinkOnThread (options: Omit<SinkOptions, 'onCaught'> = {}): Promise<Sink> {
  const keep = options.keep ?? SINK_KEEP
  const kept: CaughtMessage[] = []
  let received = 0
  const thread = startWorker(import.meta.url, 'sink-thread', options)
  const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()))
  return new Promise((resolve, reject) => {
    thread.on('error', (err) => reject(new ConfigError(`SMTP sink thread failed: ${err.message}`, { cause: err })))
    thread.on('message', (m: FromSinkThread) => {
      if (m.t === 'failed') reject(new ConfigError(m.message))
      else if (m.t === 'caught') {
        received += m.messages.length
        kept.push(...m.messages)
        if (kept.length > keep) kept.splice(0, kept.length - keep)
      } else {
        resolve({
          url: m.url,
          port: m.port,
          received: () => received,
          messages: () => kept.slice().reverse(),
          close: async () => {
            thread.postMessage('close')
            await exited
          },
        })
      }
    })
  })
}
