// What the figures were measured on (machine, PHP, load), the TCP state that limits
// connection-per-request clients, and the CPU time and memory of a process from /proc.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'

export interface Machine {
  cpus: number
  cpuModel: string
  kernel: string
  node: string
  php: string | null
  /** /proc/sys/net/ipv4/tcp_tw_reuse: 2 = reuse TIME_WAIT ports for loopback only. */
  tcpTwReuse: string | null
  /** /proc/sys/net/ipv4/ip_local_port_range: the client ports connect() picks from. */
  localPortRange: string | null
  /** 1-minute load average when the run started and when it ended: other work on a shared box. */
  loadAverage: { start: number, end: number }
}

/** A /proc file's text on one line, its runs of whitespace replaced by `space`. */
export function readProc (path: string, space = '-'): string | null {
  try {
    return readFileSync(path, 'utf8').trim().replace(/\s+/g, space)
  } catch {
    return null // not Linux, or /proc not mounted
  }
}

/** The 1-minute load average. */
export function loadAverage (): number {
  return os.loadavg()[0] ?? NaN
}

/** The processors, as the reports name them. */
export function cpus (): { cpus: number, cpuModel: string } {
  return { cpus: os.availableParallelism(), cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown' }
}

export function machine (php: string | undefined, loadAtStart: number): Machine {
  return {
    ...cpus(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    php: php ?? null,
    tcpTwReuse: readProc('/proc/sys/net/ipv4/tcp_tw_reuse'),
    localPortRange: readProc('/proc/sys/net/ipv4/ip_local_port_range'),
    loadAverage: { start: loadAtStart, end: loadAverage() },
  }
}

const TCP_TIME_WAIT = '06' // the `st` column of /proc/net/tcp (include/net/tcp_states.h)

/** Sockets in TIME_WAIT on this host; the split is relative to one server port (the receiver's). */
export interface TimeWait {
  total: number
  /** Held by the server side: local port = the receiver's. */
  serverSide: number
  /** Held by a client: remote port = the receiver's. */
  clientSide: number
}

/** Counts TIME_WAIT sockets from /proc/net/tcp and tcp6; null where they cannot be read. */
export function timeWaitSockets (port: number): TimeWait | null {
  const counts: TimeWait = { total: 0, serverSide: 0, clientSide: 0 }
  let found = false
  for (const path of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch {
      continue
    }
    found = true
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st …, addresses as HEXIP:HEXPORT
      const [, local, remote, st] = line.trim().split(/\s+/)
      if (st !== TCP_TIME_WAIT || local === undefined || remote === undefined) continue
      counts.total++
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) counts.serverSide++
      else if (Number.parseInt(remote.slice(remote.lastIndexOf(':') + 1), 16) === port) counts.clientSide++
    }
  }
  return found ? counts : null
}

let php: string | undefined | null = null

/** PHP's version, or undefined when `php` is not on PATH. */
export function phpVersion (): string | undefined {
  if (php !== null) return php
  try {
    php = execFileSync('php', ['-r', 'echo PHP_VERSION;'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    php = undefined
  }
  return php
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

/** CPU time of a process from /proc/<pid>/stat (utime + stime), µs; NaN where /proc is missing. */
export function processCpuUs (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // after "pid (comm) "
    return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond()) * 1e6 // fields 14 and 15
  } catch {
    return NaN
  }
}

/** CPU time this process has used so far (user + system), µs. */
export function ownCpuUs (): number {
  const own = process.cpuUsage()
  return own.user + own.system
}

/** CPU time the whole host has been busy so far (every process, ours and others'), from /proc/stat, µs. */
export function hostCpuUs (): number {
  try {
    const [, ...ticks] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/)
    const n = ticks.map(Number)
    const idle = (n[3] ?? 0) + (n[4] ?? 0) // idle, iowait
    return ((n.slice(0, 8).reduce((a, b) => a + b, 0) - idle) / ticksPerSecond()) * 1e6
  } catch {
    return NaN
  }
}

/** A memory figure of /proc/<pid>/status in MB (VmHWM: peak RSS), or undefined without /proc. */
export function procStatusMb (pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const kb = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kb === undefined ? undefined : Number(kb) / 1024
  } catch {
    return undefined
  }
}
