// The servers under load, each in its own child process: rawtrigger's `serve --concurrency 0`
// (SQLite or Redis store), the bare node:http baseline, and the fastify/express + BullMQ peers.
// Every one answers GET /stats with the jobs it holds, which is what the loss accounting counts;
// rawtrigger also answers GET /metrics (Prometheus text), where the store's commit counters are.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const START_TIMEOUT_MS = 30_000 // node + tsx start of one child on a busy 2-core box
const READY_TIMEOUT_MS = 10_000 // /stats answering 200 after the listening line (Redis connects)
const STOP_TIMEOUT_MS = 15_000 // SIGTERM → exit; then SIGKILL
const STATS_TIMEOUT_MS = 10_000 // one GET /stats
const SETTLE_POLL_MS = 50
const SETTLE_QUIET_MS = 1_000 // a count that has not moved for this long is final
const SCAN_COUNT = 500

/** Target names, in the order they are measured. */
export const TARGETS = ['bare', 'sqlite', 'redis', 'fastify', 'express'] as const
export type TargetName = typeof TARGETS[number]

export const LABELS: Record<TargetName, string> = {
  bare: 'bare node:http (baseline)',
  sqlite: 'rawtrigger serve, SQLite',
  redis: 'rawtrigger serve, Redis (BullMQ)',
  fastify: 'fastify + BullMQ queue.add',
  express: 'express + BullMQ queue.add',
}

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

let clockTicks: number | undefined
function ticksPerSecond (): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100 // Linux's USER_HZ nearly everywhere
    }
  }
  return clockTicks
}

/** CPU time of a process from /proc/<pid>/stat (utime + stime), µs. */
export function processCpuUs (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // after "pid (comm) "
    return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond()) * 1e6
  } catch {
    return NaN
  }
}

const live = new Set<ChildProcess>()
const tempDirs = new Set<string>()

const prefixes = new Set<string>()

/** Kills every child still running, removes temp dirs and Redis keys: for Ctrl-C and crashes. */
export async function cleanUpAll (redisUrl: string): Promise<void> {
  const exits = [...live].map((child) => new Promise((resolve) => {
    child.once('exit', resolve)
    child.kill('SIGKILL')
  }))
  await Promise.all(exits)
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  for (const prefix of prefixes) await deleteKeys(redisUrl, prefix).catch(() => 0)
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function getJson (url: string): Promise<Record<string, unknown>> {
  const res = await fetch(url, { signal: AbortSignal.timeout(STATS_TIMEOUT_MS) })
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`)
  return await res.json() as Record<string, unknown>
}

async function getText (url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(STATS_TIMEOUT_MS) })
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`)
  return await res.text()
}

/** One unlabelled sample of a Prometheus text exposition, or undefined when the metric is absent. */
export function metricValue (text: string, name: string): number | undefined {
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
  if (name === 'bare' || name === 'fastify' || name === 'express') {
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
    case 'redis': {
      const store = name === 'redis' ? ['--queue', options.redisUrl, '--queue-prefix', prefix] : []
      return [...prof, '--conditions=rawtrigger-source', '--import', 'tsx', 'src/cli.ts', 'serve', '--port', '0',
        '--data-dir', dataDir as string, '--concurrency', '0', '--sink-port', '0', '--log-level', 'warn', ...store]
    }
  }
}

/** Starts one target and waits until its /stats answers. */
export async function startTarget (name: TargetName, options: TargetOptions): Promise<Target> {
  const dataDir = name === 'sqlite' || name === 'redis' ? mkdtempSync(join(os.tmpdir(), 'rtload-')) : undefined
  if (dataDir !== undefined) tempDirs.add(dataDir)
  if (ON_REDIS.has(name)) prefixes.add(options.prefix)
  const proc = spawn(process.execPath, command(name, options, dataDir), {
    cwd: ROOT,
    // serve reads these from the environment too; an empty value counts as unset.
    env: { ...process.env, TRIGGER_SECRET: '', LOG_LEVEL: '', QUEUE_URL: '', PORT: '', HOST: '', DATA_DIR: '', CONCURRENCY: '', SMTP_URL: '', MAX_BODY_BYTES: '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  live.add(proc)
  const exited = new Promise<void>((resolve) => proc.once('exit', () => { live.delete(proc); resolve() }))
  let stderr = ''
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-4_000) })
  let stdout = ''
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no listening line within ${START_TIMEOUT_MS} ms\n${stderr}`)), START_TIMEOUT_MS)
    proc.stdout?.setEncoding('utf8').on('data', (s: string) => {
      stdout += s
      const match = /listening on (http:\/\/[\d.]+:\d+)/.exec(stdout)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1] as string)
      }
    })
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`${name} exited before listening\n${stderr}`))
    })
  })
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (!(await getJson(`${url}/stats`).then(() => true, () => false))) {
    if (Date.now() > deadline) throw new Error(`${name}: ${url}/stats did not answer within ${READY_TIMEOUT_MS} ms\n${stderr}`)
    await sleep(SETTLE_POLL_MS)
  }

  const counts = async (): Promise<Counts> => countsOf(name, await getJson(`${url}/stats`))
  const rawtrigger = name === 'sqlite' || name === 'redis'
  return {
    name,
    url,
    jobsUrl: `${url}/jobs/email`,
    pid: proc.pid ?? 0,
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
    cpuUs: () => processCpuUs(proc.pid ?? 0),
    async stop () {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS)
        await exited
        clearTimeout(timer)
      }
      if (proc.exitCode !== 0 && proc.signalCode !== 'SIGTERM') process.stderr.write(`${name} exited with ${String(proc.exitCode ?? proc.signalCode)}\n${stderr}\n`)
      if (dataDir !== undefined) {
        rmSync(dataDir, { recursive: true, force: true })
        tempDirs.delete(dataDir)
      }
    },
  }
}

/** A fresh key prefix for one run: `rtload-<hex>`. */
export function newPrefix (): string {
  return `rtload-${randomBytes(6).toString('hex')}`
}

/** Redis's version, or undefined when it does not answer within a second. */
export async function redisVersion (url: string): Promise<string | undefined> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 1_000, lazyConnect: true })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '?'
  } catch {
    return undefined
  } finally {
    redis.disconnect()
  }
}

/** Deletes every key under `<prefix>-` (SCAN + DEL); returns how many. */
export async function deleteKeys (url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    let cursor = '0'
    let deleted = 0
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}-*`, 'COUNT', SCAN_COUNT)
      if (keys.length > 0) deleted += await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
    prefixes.delete(prefix)
    return deleted
  } finally {
    redis.disconnect()
  }
}
