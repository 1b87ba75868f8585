// What one run (a fault row, a benchmark phase) leaves behind, undone in reverse order when it
// ends: children killed -9, mounts unmounted, temp dirs removed, Redis keys deleted. Every open
// scope is also closed when the script is interrupted (Ctrl-C, SIGTERM) or fails, so a run never
// leaves a serve, a redis-server or a tmpfs behind.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

type Undo = () => unknown

const open = new Set<Scope>()

/** The clean-up list of one run. */
export class Scope {
  readonly #undo: Undo[] = []
  readonly #tempPrefix: string
  #closed: Promise<void> | undefined

  /** `tempPrefix` begins the names of its temp dirs. */
  constructor (tempPrefix = 'rawtrigger-faults') {
    this.#tempPrefix = tempPrefix
    open.add(this)
  }

  /** Runs `fn` when the scope closes (last registered, first run). */
  defer (fn: Undo): void {
    this.#undo.push(fn)
  }

  /** A new temp dir, `<tempPrefix>-<label>-XXXXXX`, removed at the end. */
  tempDir (label?: string): string {
    const dir = mkdtempSync(join(tmpdir(), `${this.#tempPrefix}-${label === undefined ? '' : `${label}-`}`))
    this.defer(() => rmSync(dir, { recursive: true, force: true }))
    return dir
  }

  /**
   * Mounts a tmpfs of `sizeBytes` on `dir` (root only), unmounted at the end. Returns why not
   * when it cannot (not root, no mount permission), so the caller can skip with that reason.
   */
  mountTmpfs (dir: string, sizeBytes: number): string | undefined {
    if (process.getuid?.() !== 0) return 'not root: mounting a small tmpfs needs root'
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
    } catch (err) {
      return `mount -t tmpfs failed: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`
    }
    this.defer(() => unmount(dir))
    return undefined
  }

  /** Runs every undo step once; a step that throws does not stop the others. */
  close (): Promise<void> {
    this.#closed ??= (async () => {
      open.delete(this)
      for (const fn of this.#undo.reverse()) {
        try {
          await fn()
        } catch {
          // clean-up goes on: one failed step must not leave the rest behind
        }
      }
    })()
    return this.#closed
  }
}

/** Unmounts, lazily when the mount is still busy (a child that has not quite exited). */
function unmount (dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' })
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' })
  }
}

/** Closes every scope still open: on Ctrl-C, SIGTERM or a crash of the harness. */
export async function closeAll (): Promise<void> {
  await Promise.all([...open].map((s) => s.close()))
}

/** Closes every open scope on SIGINT/SIGTERM and exits 130/143; on a second signal, exits at once. */
export function closeOnSignals (script = 'faults'): void {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1)
    stopping = true
    process.stderr.write(`\n${script}: ${signal}: stopping the children and removing the temp dirs\n`)
    void closeAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}

/** A TCP port free on 127.0.0.1 right now (for a server that must come back on the same port). */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Resolves after `ms`. */
export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `fn` every `everyMs` until it returns true; false when `timeoutMs` passed first. */
export async function until (fn: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if (await fn()) return true
    } catch {
      // not yet: a server restarting, a connection refused
    }
    if (Date.now() >= deadline) return false
    await sleep(everyMs)
  }
}
