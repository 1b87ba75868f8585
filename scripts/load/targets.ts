// The servers under load, each in its own child process: rawtrigger's `serve --concurrency 0`
// (SQLite or Redis store), the bare node:http baseline, and the fastify/express + BullMQ peers.
// Every one answers GET /stats with the jobs it holds, which is what the loss accounting counts;
// rawtrigger also answers GET /metrics (Prometheus text), where the store's commit counters are.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { killAll, serveArgv, startChild } from '../kit/child.ts'
import { getJson, getText, waitUp } from '../kit/http.ts'
import { deleteKeys as deleteMatching } from '../kit/redis.ts'
import { closeAll, Scope, sleep } from '../kit/scope.ts'
import { processCpuUs } from '../kit/system.ts'

export { redisVersion } from '../kit/redis.ts'

const SETTLE_POLL_MS = 50
const SETTLE_QUIET_MS = 1_000 // a count that has not moved for this long is final

/** Target names, in the order they are measured. */
export const TARGETS = ['bare', 'sqlite', 'sqlite-node', 'redis', 'fastify', 'express'] as const
export type TargetName = typeof TARGETS[number]

export const LABELS: Record<TargetName, string> = {
  bare: 'bare node:http (baseline)',
  sqlite: 'rawtrigger serve, SQLite',
  'sqlite-node': 'rawtrigger serve, SQLite, --intake node',
  redis: 'rawtrigger serve, Redis (BullMQ)',
  fastify: 'fastify + BullMQ queue.add',
  express: 'express + BullMQ queue.add',
}

/** The fastify and express peers. */
const PEERS: ReadonlySet<TargetName> = new Set(['fastify', 'express'])

/** Needs Redis. */
export const ON_REDIS: ReadonlySet<TargetName> = new Set(['redis', 'fastify', 'express'])

/** What a target's GET /stats says. */
export interface Counts {
  /** Jobs held by the store (bare: requests read to the end). */
  stored: number
  /** rawtrigger: jobs created by this process (`accepted`) and webhook-id repeats (`duplicates`). */
  accepted?: number
  duplicates?: number
}

/** The store's write counters from GET /metrics: `rawtrigger_store_commits_total` and `…_committed_jobs_total`. */
export interface Commits {
  /** Writes of new jobs (SQLite: commits). */
  commits: number
  /** Jobs those writes held (duplicates included). */
  jobs: number
}

export interface Target {
  name: TargetName
  /** `http://127.0.0.1:<port>` */
  url: string
  /** Where jobs are POSTed. */
  jobsUrl: string
  pid: number
  counts: () => Promise<Counts>
  /** rawtrigger: the store's commit counters; undefined for the others, and for a store that does not expose them. */
  commits: () => Promise<Commits | undefined>
  /** Counts until `stored` reaches `expected`, stops moving for 1 s, or `maxMs` passes. */
  settle: (expected: number, maxMs: number) => Promise<Counts>
  /** CPU time (user + system) of the child so far, µs (from /proc; NaN elsewhere). */
  cpuUs: () => number
  stop: () => Promise<void>
}

export interface TargetOptions {
  redisUrl: string
  /** Unique Redis key prefix of this run; every target's keys live under `<prefix>-<name>`. */
  prefix: string
  /** `node --cpu-prof` into this directory (rawtrigger serve and bare only). */
  cpuProfDir?: string
}

const prefixes = new Set<string>()

/** Kills every child still running, removes temp dirs and Redis keys: for Ctrl-C and crashes. */
export async function cleanUpAll (redisUrl: string): Promise<void> {
  await killAll()
  await closeAll()
  for (const prefix of prefixes) await deleteKeys(redisUrl, prefix).catch(() => 0)
}

/** One unlabelled sample of a Prometheus text exposition, or undefined when the metric is absent. */
function metricValue (text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}(?:\\{\\})? ([^ \\n]+)`, 'm').exec(text)
  if (match === null) return undefined
  const value = Number(match[1])
  return Number.isFinite(value) ? value : undefined
}

/** The commit counters out of GET /metrics text; undefined unless both are there. */
export function commitsOf (text: string): Commits | undefined {
  const commits = metricValue(text, 'rawtrigger_store_commits_total')
  const jobs = metricValue(text, 'rawtrigger_store_committed_jobs_total')
  return commits === undefined || jobs === undefined ? undefined : { commits, jobs }
}

function countsOf (name: TargetName, s: Record<string, unknown>): Counts {
  if (name === 'bare' || PEERS.has(name)) {
    return { stored: Number(s.stored), ...(s.accepted === undefined ? {} : { accepted: Number(s.accepted) }) }
  }
  // rawtrigger serve: the store's own job counts (durable), and the intake counters beside them.
  const jobs = s.jobs as Record<string, number>
  const stored = Object.values(jobs).reduce((a, b) => a + Number(b), 0)
  return { stored, accepted: Number(s.accepted), duplicates: Number(s.duplicates) }
}

function command (name: TargetName, options: TargetOptions, dataDir: string | undefined): string[] {
  const prefix = `${options.prefix}-${name}`
  const prof = options.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`]
  switch (name) {
    case 'bare': return [...prof, fileURLToPath(new URL('./bare.mjs', import.meta.url))]
    case 'fastify':
    case 'express':
      return ['--import', 'tsx', fileURLToPath(new URL('./peer-bullmq.ts', import.meta.url)), name, options.redisUrl, prefix]
    case 'sqlite':
    case 'sqlite-node':
    case 'redis': {
      const store = name === 'redis' ? ['--queue', options.redisUrl, '--queue-prefix', prefix] : name === 'sqlite-node' ? ['--intake', 'node'] : []
      return [...prof, ...serveArgv(['--port', '0', '--data-dir', dataDir as string, '--concurrency', '0', '--sink-port', '0', '--log-level', 'warn', ...store])]
    }
  }
}

/** Starts one target and waits until its /stats answers. */
export async function startTarget (name: TargetName, options: TargetOptions): Promise<Target> {
  const scope = new Scope('rtload')
  const rawtrigger = name !== 'bare' && !PEERS.has(name)
  const dataDir = rawtrigger ? scope.tempDir() : undefined
  if (ON_REDIS.has(name)) prefixes.add(options.prefix)
  const child = await startChild(command(name, options, dataDir), { name, scope, stdin: 'pipe', listening: /listening on (http:\/\/[\d.]+:\d+)/ })
  const url = child.url
  await waitUp(`${url}/stats`, child.stderr())
  const counts = async (): Promise<Counts> => countsOf(name, await getJson(`${url}/stats`))
  return {
    name,
    url,
    jobsUrl: `${url}/jobs/email`,
    pid: child.pid,
    counts,
    commits: async () => (rawtrigger ? commitsOf(await getText(`${url}/metrics`)) : undefined),
    async settle (expected, maxMs) {
      const end = performance.now() + maxMs
      let last = await counts()
      let moved = performance.now()
      while (last.stored < expected && performance.now() < end && performance.now() - moved < SETTLE_QUIET_MS) {
        await sleep(SETTLE_POLL_MS)
        const now = await counts()
        if (now.stored !== last.stored) moved = performance.now()
        last = now
      }
      return last
    },
    cpuUs: () => processCpuUs(child.pid),
    async stop () {
      const exit = await child.stop()
      if (exit.code !== 0 && exit.signal !== 'SIGTERM') process.stderr.write(`${name} exited with ${String(exit.code ?? exit.signal)}\n${child.stderr()}\n`)
      await scope.close()
    },
  }
}

/** A fresh key prefix for one run: `rtload-<hex>`. */
export function newPrefix (): string {
  return `rtload-${randomBytes(6).toString('hex')}`
}

/** Deletes every key under `<prefix>-` (SCAN + DEL); returns how many. */
export async function deleteKeys (url: string, prefix: string): Promise<number> {
  const deleted = await deleteMatching(url, `${prefix}-*`)
  prefixes.delete(prefix)
  return deleted
}
