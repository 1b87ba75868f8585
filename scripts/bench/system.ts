// What the figures were measured on, and the TCP state that limits connection-per-request clients.
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

function readProc (path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim().replace(/\s+/g, '-')
  } catch {
    return null // not Linux, or /proc not mounted
  }
}

/** The 1-minute load average. */
export function loadAverage (): number {
  return os.loadavg()[0] ?? NaN
}

export function machine (php: string | undefined, loadAtStart: number): Machine {
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
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
