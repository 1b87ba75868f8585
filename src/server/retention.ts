import type { Logger } from '../log.ts'
import type { JobQueue } from '../queue/types.ts'

/**
 * Deletes finished jobs older than `retainMs`, one small batch per event-loop turn, so intake
 * (which shares the loop and the SQLite lock) never waits for more than one batch.
 */
export function startRetention (queue: JobQueue, retainMs: number, intervalMs: number, log: Logger): NodeJS.Timeout | undefined {
  if (retainMs === 0) return undefined
  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    const before = Date.now() - retainMs
    let deleted = 0
    const step = (): void => {
      queue.purge(before).then((n) => {
        deleted += n
        if (n > 0) setImmediate(step)
        else {
          running = false
          if (deleted > 0) log.info({ deleted }, 'retention: old jobs deleted')
        }
      }, (err: unknown) => {
        running = false
        log.warn({ err }, 'retention failed; next try in a minute')
      })
    }
    step()
  }, intervalMs)
  timer.unref()
  return timer
}
