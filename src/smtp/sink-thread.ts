// The embedded sink's thread (started by sink-on-thread.ts): smtp-server runs here, on its own
// core, and passes each caught message to the main thread, batched per event-loop turn.
import { parentPort, workerData } from 'node:worker_threads'
import { startSink, type CaughtMessage, type SinkOptions } from './sink.ts'
import type { FromSinkThread } from './sink-on-thread.ts'

const port = parentPort
if (port === null) throw new Error('sink-thread runs in a worker thread')
let batch: CaughtMessage[] = []
const send = (m: FromSinkThread): void => port.postMessage(m)

startSink({
  ...(workerData as Omit<SinkOptions, 'onCaught'>),
  keep: 0, // the main thread keeps them
  onCaught (message) {
    if (batch.length === 0) {
      setImmediate(() => {
        send({ t: 'caught', messages: batch })
        batch = []
      })
    }
    batch.push(message)
  },
}).then((sink) => {
  send({ t: 'listening', port: sink.port, url: sink.url })
  port.on('message', () => { // the only message is "close"
    void sink.close().then(() => port.close())
  })
}, (err: unknown) => {
  send({ t: 'failed', message: (err as Error).message })
  port.close()
})
