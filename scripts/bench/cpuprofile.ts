// Reads a V8 .cpuprofile (node --cpu-prof, or the inspector's Profiler.stop) and sums where the
// time went: per function (self and inclusive) and per area (idle, GC, node:net, src/net/…); and
// takes one of this process around a piece of work, through node:inspector.
import { readdirSync, statSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import path from 'node:path'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] | undefined }

/** The parts of a .cpuprofile this reads. */
export interface CpuProfile {
  nodes: ProfileNode[]
  samples?: number[] | undefined
  timeDeltas?: number[] | undefined
  startTime: number
  endTime: number
}

export interface FunctionTime {
  name: string
  /** url:line, relative to the working directory; empty for native frames. */
  where: string
  selfMs: number
  /** Samples with the function anywhere on the stack (recursion counted once). */
  inclusiveMs: number
}

export interface ProfileSummary {
  totalMs: number
  samples: number
  idleMs: number
  /** Self time by area, largest first. */
  areas: Array<{ area: string, ms: number }>
  /** Every function, largest self time first. */
  functions: FunctionTime[]
}

function where (frame: CallFrame, cwd: string): string {
  if (frame.url === '') return ''
  const url = frame.url.startsWith(cwd) ? frame.url.slice(cwd.length) : frame.url
  return `${url}:${frame.lineNumber + 1}`
}

/** The area a frame belongs to: (idle), (garbage collector), node:net, node:streams, src/net/trigger.ts, … */
function area (frame: CallFrame, cwd: string): string {
  const url = frame.url
  // Native frames without a script: V8's pseudo-frames keep their name, C++ bindings are (native).
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)'
  if (url.startsWith('node:internal/')) return `node:${url.slice('node:internal/'.length).replace(/\/.*$/, '')}`
  if (url.startsWith('node:')) return url
  if (url.startsWith(cwd)) {
    const rel = url.slice(cwd.length)
    return rel.startsWith('node_modules/') ? rel.split('/').slice(0, rel.includes('/@') ? 3 : 2).join('/') : rel
  }
  return url
}

export function summarise (profile: CpuProfile, cwd = `file://${process.cwd()}/`): ProfileSummary {
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

  const rows = new Map<string, FunctionTime>()
  const areas = new Map<string, number>()
  const row = (frame: CallFrame): FunctionTime => {
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}`
    let r = rows.get(key)
    if (r === undefined) {
      r = { name: frame.functionName || '(anonymous)', where: where(frame, cwd), selfMs: 0, inclusiveMs: 0 }
      rows.set(key, r)
    }
    return r
  }

  let totalMs = 0
  samples.forEach((id, i) => {
    // A sample lasts until the next one, as Chrome DevTools counts it.
    const ms = (deltas[i + 1] ?? 0) / 1_000
    const node = byId.get(id)
    if (node === undefined) return
    totalMs += ms
    row(node.callFrame).selfMs += ms
    const leaf = area(node.callFrame, cwd)
    areas.set(leaf, (areas.get(leaf) ?? 0) + ms)
    const seen = new Set<FunctionTime>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame
      if (frame === undefined) break
      const r = row(frame)
      if (seen.has(r)) continue
      seen.add(r)
      r.inclusiveMs += ms
    }
  })

  return {
    totalMs,
    samples: samples.length,
    idleMs: areas.get('(idle)') ?? 0,
    areas: [...areas.entries()].map(([a, ms]) => ({ area: a, ms })).sort((a, b) => b.ms - a.ms),
    functions: [...rows.values()].filter((r) => r.name !== '(root)').sort((a, b) => b.selfMs - a.selfMs),
  }
}

/**
 * Two tables a person reads: time by area and the top functions by self time. With `calls`,
 * a column of microseconds per call (the profile's time divided by the calls made in it).
 */
export function formatSummary (s: ProfileSummary, top: number, calls?: number): string {
  const pct = (ms: number): string => `${s.totalMs > 0 ? ((ms / s.totalMs) * 100).toFixed(1) : '0.0'}%`.padStart(6)
  const ms = (v: number): string => `${v.toFixed(1).padStart(8)} ms`
  const perCall = (v: number): string => (calls === undefined ? '' : `${((v * 1_000) / calls).toFixed(2).padStart(7)} µs/call`)
  const out: string[] = []
  out.push(`${(s.totalMs / 1_000).toFixed(2)} s sampled in ${s.samples} samples; (idle) ${pct(s.idleMs).trim()}: ` +
    'time in libuv outside JS, which includes epoll and the syscalls libuv makes itself (getsockopt, shutdown)')
  out.push('')
  out.push('self time by area')
  for (const a of s.areas.slice(0, top)) out.push(`${ms(a.ms)} ${pct(a.ms)} ${perCall(a.ms)}  ${a.area}`)
  out.push('')
  out.push('top functions by self time   [inclusive]')
  for (const f of s.functions.slice(0, top)) {
    const name = f.name.length > 60 ? `${f.name.slice(0, 57)}...` : f.name
    out.push(`${ms(f.selfMs)} ${pct(f.selfMs)} ${perCall(f.selfMs)}  ${name}  ${f.where}  [${f.inclusiveMs.toFixed(1)} ms]`)
  }
  return out.join('\n')
}

/**
 * The newest .cpuprofile in a directory, main thread first: `--cpu-prof` writes one file per
 * thread, CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile, and thread 1 of a tsx child is its loader.
 */
export function newestProfile (dir: string): string | undefined {
  const all = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
  const main = all.filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f))
  const files = (main.length > 0 ? main : all).map((f) => path.join(dir, f))
  return files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]
}

/** Runs `fn` under the V8 CPU profiler of this process, sampling every `intervalUs`. */
export async function profileHere<T> (fn: () => Promise<T>, intervalUs: number): Promise<{ value: T, profile: CpuProfile }> {
  const session = new Session()
  session.connect()
  try {
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: intervalUs })
    await session.post('Profiler.start')
    const outcome = await fn().then((value) => ({ value }), (error: unknown) => ({ error }))
    const { profile } = await session.post('Profiler.stop')
    if ('error' in outcome) throw outcome.error
    return { value: outcome.value, profile: profile as unknown as CpuProfile }
  } finally {
    session.disconnect()
  }
}
