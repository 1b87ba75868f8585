import type { Counter, Histogram, Registry } from 'prom-client'
import { lazyRequire } from '../lazy-require.ts'
import type { CommitStats, JobQueue } from '../queue/types.ts'

const loadPromClient = lazyRequire<typeof import('prom-client')>('prom-client')

/** The receiver's Prometheus metrics, on a registry of its own (several receivers may share a process). */
export interface Metrics {
  registry: Registry
  accepted: Counter
  rejected: Counter<'reason'>
  acceptSeconds: Histogram
}

/** Creates the receiver's metrics (a job type's own come from its plugin); job gauges are read from the queue at scrape time. */
export function createMetrics (queue: JobQueue): Metrics {
  const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = loadPromClient()
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'rawtrigger_' }) // includes event-loop lag
  const accepted = new Counter({ name: 'rawtrigger_triggers_accepted_total', help: 'Jobs stored from triggers (duplicates not counted).', registers: [registry] })
  const rejected = new Counter({ name: 'rawtrigger_triggers_rejected_total', help: 'Requests refused, by error code.', labelNames: ['reason'], registers: [registry] })
  const acceptSeconds = new Histogram({
    name: 'rawtrigger_accept_seconds',
    help: 'From the request to the 202 written after the commit.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  })
  new Gauge({ // eslint-disable-line no-new -- registered on creation, read at scrape time
    name: 'rawtrigger_jobs',
    help: 'Jobs in the store, by state.',
    labelNames: ['state'],
    registers: [registry],
    async collect () {
      const s = await queue.stats()
      for (const [state, n] of Object.entries(s.jobs)) this.set({ state }, n)
    },
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'rawtrigger_queue_depth',
    help: 'Items (an e-mail job\'s recipients) not yet done or failed, in queued and running jobs.',
    registers: [registry],
    async collect () {
      this.set((await queue.stats()).items.pending)
    },
  })
  // Read at scrape time: SQLite commits or Redis batch writes of new jobs, and the jobs they held.
  const stores: Array<[name: string, help: string, pick: (c: CommitStats) => number]> = [
    ['rawtrigger_store_commits_total', 'Writes of new jobs (SQLite commits, Redis batch writes); jobs per commit is the group-commit size.', (c) => c.commits],
    ['rawtrigger_store_committed_jobs_total', 'Jobs those writes held (duplicates included).', (c) => c.jobs],
  ]
  if (queue.commitStats !== undefined) {
    for (const [name, help, pick] of stores) {
      new Counter({ // eslint-disable-line no-new
        name, help, registers: [registry],
        collect () {
          this.reset()
          this.inc(pick(queue.commitStats ?? { commits: 0, jobs: 0 }))
        },
      })
    }
  }
  return { registry, accepted, rejected, acceptSeconds }
}
