// The SQLite writer thread (started by sqlite-writer.ts): one connection that inserts new jobs.
// Group commit: jobs that arrive while a commit runs wait in the port, and the next commit takes
// all of them — a lone job waits for one commit, fifty concurrent ones share one, with no timer.
import { parentPort, workerData } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { createInserter, failure, type FromWriter, type ToWriter, type WriterData } from './sqlite-insert.ts'

const port = parentPort
if (port === null) throw new Error('sqlite-writer-thread runs in a worker thread')
const data = workerData as WriterData
const db = new Database(data.file, { timeout: data.busyTimeoutMs })
db.pragma('synchronous = NORMAL') // per connection; WAL mode is the file's, set by the main connection
const commit = createInserter(db)

let waiting: Array<Extract<ToWriter, { t: 'add' }>> = []
let scheduled = false
let closing = false

function flush (): void {
  scheduled = false
  const batches = waiting
  waiting = []
  if (batches.length > 0) {
    const ids = batches.map((b) => b.batch)
    let out: FromWriter
    try {
      out = { t: 'done', batches: ids, results: commit(batches.map((b) => b.jobs)) }
    } catch (err) {
      out = failure(ids, err)
    }
    port?.postMessage(out)
  }
  if (closing) {
    db.close()
    port?.postMessage({ t: 'closed' } satisfies FromWriter)
    port?.close()
  }
}

port.on('message', (message: ToWriter) => {
  if (message.t === 'add') waiting.push(message)
  else closing = true
  // Every message already in the port is delivered before this runs: they share the commit.
  if (!scheduled) {
    scheduled = true
    setImmediate(flush)
  }
})
