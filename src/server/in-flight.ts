import type { Server } from 'node:http'

/** Requests of a server not yet answered, for a stop that must answer them before it cuts connections. */
export interface InFlight {
  /** A request arrived (the llhttp intake counts its own; node:http's are counted from `request`). */
  enter (): void
  /** Its answer is out, or its client gone. */
  leave (): void
  /** Resolves once every request taken so far is answered (or its client gone), or after `timeoutMs`. */
  settled (timeoutMs: number): Promise<void>
}

/**
 * Counts the requests of `server` from their arrival to the end of their answer. A stop that
 * closed every connection at once cut the answer of a job already stored (fault 7 of issue 12,
 * SIGTERM mid-flood: stored jobs whose 202 never left); it waits for these first.
 */
export function trackRequests (server: Server): InFlight {
  let open = 0
  let waiters: Array<() => void> = []
  const inFlight: InFlight = {
    enter () {
      open++
    },
    leave () {
      if (--open > 0) return
      for (const wake of waiters) wake()
      waiters = []
    },
    settled (timeoutMs) {
      if (open === 0) return Promise.resolve()
      return new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          resolve()
        }
        const timer = setTimeout(done, timeoutMs)
        waiters.push(done)
      })
    },
  }
  server.on('request', (_req, res) => {
    inFlight.enter()
    res.once('close', inFlight.leave)
  })
  return inFlight
}
