// One load test: every target in its own process, every phase interleaved by mode (all targets
// keep-alive, then all new-connection, …) so that the ratios compare moments close in time, and
// the loss accounting of each phase from the target's own store count before and after.
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { cannon, type CannonMode, type Latency } from './cannon.ts'
import { floodFireMany, floodNet, floodPhp, floodPool, floodTrigger, JOB, type FloodResult, type OnProgress } from './flood.ts'
import { monotonicUs, newestProfile, profileHere, report, trimProfile, type ProfileReport } from './profile.ts'
import { deleteKeys, LABELS, newPrefix, startTarget, type Commits, type Target, type TargetName } from './targets.ts'

const SETTLE_MS = 15_000 // longest wait for a target to store what was sent
const BODY = JSON.stringify(JOB)

export const MODES = ['keep-alive', 'new-connection', 'fireMany', 'pool', 'trigger', 'net', 'php'] as const
export type Mode = typeof MODES[number]
/** Pool runs at these (keep-alive raw triggers need our receiver's answers); trigger(), net and PHP at SQLite. */
const POOL_AT: ReadonlySet<TargetName> = new Set(['bare', 'sqlite', 'redis'])

export interface LoadOptions {
  connections: number
  durationS: number
  /** Unmeasured keep-alive seconds per target before the first phase (JIT, connections, caches). */
  warmupS: number
  /** fireMany and pool: triggers per phase. */
  triggers: number
  concurrency: number
  poolConnections: number
  /** PHP fsockopen calls (0: skip); sequential trigger() calls beside them. */
  php: number
  sequential: number
  runs: number
  targets: TargetName[]
  redisUrl: string
  /** Profile the serve child and the client's trigger loops after the runs. */
  profile: boolean
  /** Keep the .cpuprofile files here (else a temp dir, removed). */
  profileDir?: string
  /** Progress for a person: one phase starts, moves on, ends. */
  progress: (label: string) => { onProgress: OnProgress, done: (note: string) => void }
}

export interface Row {
  run: number
  target: TargetName
  mode: Mode
  /** 2xx answers/s (HTTP modes), triggers handed to the kernel/s (the rest). */
  rate: number
  seconds: number
  latencyMs?: Latency
  blockingUs?: Latency
  sent: number
  /** 2xx answers (HTTP modes, pool). */
  ok?: number
  errors: number
  errorCodes?: Record<string, number>
  non2xx: number
  /** Jobs the target's store gained in this phase, what they are compared with, and the difference. */
  stored: number
  against: '2xx' | 'sent'
  lost: number
  /** rawtrigger's intake counters over the phase: jobs created and webhook-id repeats. */
  accepted?: number
  duplicates?: number
  /** CPU time per request, µs: the target process, and this (client) process. */
  serverUs: number
  clientUs: number
  /** Share of one core each process used over the phase (its settling included): who was the bottleneck. */
  serverCpu: number
  clientCpu: number
  drainRate?: number
  resent?: number
  /**
   * rawtrigger stores that count their writes (GET /metrics): commits in this phase, the jobs they
   * held, and the mean jobs per commit (the group-commit size). Absent for the other targets.
   */
  commits?: number
  committedJobs?: number
  jobsPerCommit?: number
}

/** The commits of one phase and their mean size (NaN when nothing was written). */
function perCommit (before: Commits, after: Commits): Pick<Row, 'commits' | 'committedJobs' | 'jobsPerCommit'> {
  const commits = after.commits - before.commits
  const committedJobs = after.jobs - before.jobs
  return { commits, committedJobs, jobsPerCommit: commits > 0 ? committedJobs / commits : NaN }
}

/** Measures one phase at one target, with the accounting around it. */
async function phase (t: Target, mode: Mode, o: LoadOptions, run: number): Promise<Row> {
  const p = o.progress(`${o.runs > 1 ? `run ${run}/${o.runs} ` : ''}${mode} → ${LABELS[t.name]}`)
  const before = await t.counts()
  const commits0 = await t.commits()
  const wall0 = performance.now()
  const server0 = t.cpuUs()
  const client0 = process.cpuUsage()
  let row: Omit<Row, 'stored' | 'lost' | 'serverUs' | 'clientUs' | 'serverCpu' | 'clientCpu'>
  if (mode === 'keep-alive' || mode === 'new-connection') {
    const r = await cannon(t.jobsUrl, {
      mode: mode as CannonMode, connections: o.connections, durationS: o.durationS, body: BODY,
      onProgress: (_answered, seconds) => p.onProgress(Math.round(seconds), o.durationS),
    })
    row = {
      run, target: t.name, mode, rate: r.rate, seconds: r.seconds, latencyMs: r.latency, sent: r.sent, ok: r.ok,
      errors: r.errors, non2xx: r.non2xx, against: mode === 'keep-alive' ? '2xx' : 'sent',
    }
  } else {
    const f: FloodResult = mode === 'fireMany'
      ? await floodFireMany(t.jobsUrl, o.triggers, o.concurrency, p.onProgress)
      : mode === 'pool'
        ? await floodPool(t.jobsUrl, o.triggers, o.poolConnections, p.onProgress)
        : mode === 'trigger'
          ? await floodTrigger(t.jobsUrl, o.sequential, p.onProgress)
          : mode === 'net' ? await floodNet(t.jobsUrl, o.sequential, p.onProgress) : await floodPhp(t.jobsUrl, o.php)
    row = {
      run, target: t.name, mode, rate: f.rate, seconds: f.seconds, sent: f.sent, errors: f.failed, errorCodes: f.errors,
      non2xx: Object.entries(f.statuses ?? {}).reduce((a, [code, n]) => a + (code.startsWith('2') ? 0 : n), 0),
      against: 'sent',
      ...(f.blockingUs === undefined ? {} : { blockingUs: f.blockingUs }),
      ...(f.statuses === undefined ? {} : { ok: Object.entries(f.statuses).reduce((a, [code, n]) => a + (code.startsWith('2') ? n : 0), 0) }),
      ...(f.drainRate === undefined ? {} : { drainRate: f.drainRate }),
      ...(f.resent === undefined ? {} : { resent: f.resent }),
    }
  }
  const expected = row.against === '2xx' ? row.ok ?? 0 : row.sent
  const after = await t.settle(before.stored + expected, SETTLE_MS)
  const client = process.cpuUsage(client0)
  const server = t.cpuUs() - server0
  const wallUs = (performance.now() - wall0) * 1_000
  const commits1 = commits0 === undefined ? undefined : await t.commits()
  const requests = Math.max(1, row.sent)
  const stored = after.stored - before.stored
  const done: Row = {
    ...row,
    stored,
    lost: expected - stored,
    serverUs: server / requests,
    clientUs: (client.user + client.system) / requests,
    serverCpu: server / wallUs,
    clientCpu: (client.user + client.system) / wallUs,
    ...(after.accepted === undefined || before.accepted === undefined ? {} : { accepted: after.accepted - before.accepted }),
    ...(after.duplicates === undefined || before.duplicates === undefined ? {} : { duplicates: after.duplicates - before.duplicates }),
    ...(commits0 === undefined || commits1 === undefined ? {} : perCommit(commits0, commits1)),
  }
  const unit = mode === 'keep-alive' || mode === 'new-connection' ? 'req/s' : 'triggers/s'
  p.done(`${Math.round(done.rate).toLocaleString('en-US')} ${unit}, stored ${stored} of ${expected} ${row.against}` +
    `${done.jobsPerCommit === undefined ? '' : `, ${done.jobsPerCommit.toFixed(1)} jobs/commit`}` +
    `${done.errors > 0 ? `, ${done.errors} errors` : ''}${done.non2xx > 0 ? `, ${done.non2xx} non-2xx` : ''}`)
  return done
}

/** The phases of one target for one mode, or none where the mode does not apply. */
function applies (mode: Mode, target: TargetName, o: LoadOptions): boolean {
  if (mode === 'pool') return POOL_AT.has(target) && o.triggers > 0
  if (mode === 'fireMany') return o.triggers > 0
  if (mode === 'trigger' || mode === 'net') return target === 'sqlite' && o.sequential > 0
  if (mode === 'php') return target === 'sqlite' && o.php > 0
  return true
}

/** Runs everything once; returns the rows and the Redis keys left behind (should be 0). */
export async function runOnce (o: LoadOptions, run: number, modes: readonly Mode[]): Promise<{ rows: Row[], prefix: string }> {
  const prefix = newPrefix()
  const started: Target[] = []
  const rows: Row[] = []
  try {
    const boot = o.progress(`${o.runs > 1 ? `run ${run}/${o.runs}: ` : ''}starting ${o.targets.join(', ')}`)
    for (const name of o.targets) started.push(await startTarget(name, { redisUrl: o.redisUrl, prefix }))
    if (o.warmupS > 0) {
      for (const t of started) await cannon(t.jobsUrl, { mode: 'keep-alive', connections: o.connections, durationS: o.warmupS, body: BODY })
    }
    boot.done(started.map((t) => `${t.name} ${t.url}`).join(', '))
    for (const mode of modes) {
      for (const t of started) if (applies(mode, t.name, o)) rows.push(await phase(t, mode, o, run))
    }
  } finally {
    await Promise.all(started.map((t) => t.stop()))
    if (o.targets.some((t) => t !== 'bare' && t !== 'sqlite')) await deleteKeys(o.redisUrl, prefix)
  }
  return { rows, prefix }
}

/** Profiles one server child under keep-alive (and new-connection and fireMany) load, one report per window. */
async function profileServer (name: 'sqlite' | 'redis' | 'bare', dir: string, o: LoadOptions, all: boolean): Promise<ProfileReport[]> {
  const label = name === 'bare' ? 'bare node:http' : `serve (${name === 'sqlite' ? 'SQLite' : 'Redis'})`
  const prefix = newPrefix()
  const server = await startTarget(name, { redisUrl: o.redisUrl, prefix, cpuProfDir: dir })
  const windows: Array<{ what: string, from: number, to: number, calls: number }> = []
  try {
    await cannon(server.jobsUrl, { mode: 'keep-alive', connections: o.connections, durationS: Math.max(1, o.warmupS), body: BODY })
    for (const mode of all ? ['keep-alive', 'new-connection'] as const : ['keep-alive'] as const) {
      const p = o.progress(`profile: ${label} under ${mode}`)
      const from = monotonicUs()
      const r = await cannon(server.jobsUrl, { mode, connections: o.connections, durationS: o.durationS, body: BODY })
      windows.push({ what: `${label}, ${mode}, per request`, from, to: monotonicUs(), calls: r.ok })
      p.done(`${r.ok} requests`)
    }
    if (all) {
      const p = o.progress(`profile: ${label} under fireMany`)
      const before = await server.counts()
      const from = monotonicUs()
      const f = await floodFireMany(server.jobsUrl, Math.max(o.triggers, 1), o.concurrency, p.onProgress)
      await server.settle(before.stored + f.sent, SETTLE_MS) // the window ends once the server has them all
      windows.push({ what: `${label}, fireMany at concurrency ${o.concurrency}, per trigger`, from, to: monotonicUs(), calls: f.sent })
      p.done(`${f.sent} triggers`)
    }
  } finally {
    await server.stop()
    if (name === 'redis') await deleteKeys(o.redisUrl, prefix)
  }
  const profile = newestProfile(dir)
  return windows.map((w) => {
    const cut = trimProfile(profile, w.from, w.to)
    return report(`${w.what}${cut.trimmed ? '' : ' (whole process: the window could not be cut)'}`, cut.profile, w.calls)
  })
}

/**
 * CPU profiles: the bare baseline and the SQLite serve child under `node --cpu-prof` during
 * keep-alive, new-connection and fireMany load (cut to each window), the Redis serve child under
 * keep-alive (when Redis is among the targets), then this process around
 * trigger(), fireMany and the pool against the bare baseline.
 */
export async function runProfiles (o: LoadOptions): Promise<ProfileReport[]> {
  const dir = o.profileDir ?? mkdtempSync(join(os.tmpdir(), 'rtload-prof-'))
  const reports: ProfileReport[] = []
  try {
    reports.push(...await profileServer('bare', join(dir, 'bare'), o, true))
    reports.push(...await profileServer('sqlite', join(dir, 'serve'), o, true))
    if (o.targets.includes('redis')) reports.push(...await profileServer('redis', join(dir, 'serve-redis'), o, false))
    const bare = await startTarget('bare', { redisUrl: o.redisUrl, prefix: newPrefix() })
    try {
      const loops: Array<[string, (p: OnProgress) => Promise<FloodResult>]> = [
        ['client: trigger() one after another, per call', (p) => floodTrigger(bare.jobsUrl, Math.max(o.sequential, 1), p)],
        [`client: fireMany at concurrency ${o.concurrency}, per trigger`, (p) => floodFireMany(bare.jobsUrl, Math.max(o.triggers, 1), o.concurrency, p)],
        [`client: pool of ${o.poolConnections} keep-alive connections, fire() awaited, then drain(), per trigger`,
          (p) => floodPool(bare.jobsUrl, Math.max(o.triggers, 1), o.poolConnections, p)],
      ]
      for (const [what, loop] of loops) {
        const p = o.progress(`profile: ${what}`)
        const { value, profile } = await profileHere(() => loop(p.onProgress))
        reports.push(report(what, profile, value.calls))
        p.done(`${value.calls} calls`)
      }
    } finally {
      await bare.stop()
    }
  } finally {
    if (o.profileDir === undefined) rmSync(dir, { recursive: true, force: true })
  }
  return reports
}
