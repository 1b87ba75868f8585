// The SQLite writer thread (started by sqlite-writer.ts): one connection that inserts new jobs.
// Group commit: jobs that arrive while a commit runs wait in the port, and the next commit takes
// all of them — a lone job waits for one commit, fifty concurrent ones share one, with no timer.
import { parentPort, workerData } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { FIELDS, type FromWriter, type ToWriter, type WriterData } from './sqlite-writer-protocol.ts'


const port = parentPort
if (port === null) throw new Error('sqlite-writer-thread runs in a worker thread')
const data = workerData as WriterData
const db = new Database(data.file, { timeout: data.busyTimeoutMs })
db.pragma('synchronous = NORMAL') // per connection; WAL mode is the file's, set by the main connection
const insert = db.prepare(`INSERT INTO jobs (id, type, state, total, due_at, dedup_key, created_at)
  VALUES (?, ?, 'queued', ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
const insertPayload = db.prepare('INSERT INTO payloads (job_seq, payload) VALUES (?, ?)')
const byDedup = db.prepare('SELECT id FROM jobs WHERE dedup_key = ?').pluck()

const commit = db.transaction((batches: Array<Extract<ToWriter, { t: 'add' }>>): Array<Array<string | null>> => {
  const now = Date.now()
  return batches.map(({ jobs }) => {
    const results: Array<string | null> = []
    for (let i = 0; i < jobs.length; i += FIELDS) {
      const dedupKey = jobs[i + 3] as string | null
      const info = insert.run(jobs[i], jobs[i + 1], jobs[i + 2], now, dedupKey, now)
      if (info.changes === 1) {
        insertPayload.run(info.lastInsertRowid, jobs[i + 4])
        results.push(null)
      } else {
        results.push(byDedup.get(dedupKey) as string)
      }
    }
    return results
  })
})

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
      out = { t: 'done', batches: ids, results: commit.immediate(batches) }
    } catch (err) {
      const code = (err as { code?: unknown }).code
      out = { t: 'failed', batches: ids, code: typeof code === 'string' ? code : undefined, message: (err as Error).message }
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
