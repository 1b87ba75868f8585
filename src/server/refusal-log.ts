import type { Logger } from '../log.ts'

/** Refusals of one reason are logged at most this often; the line says how many it stands for. */
export const REFUSAL_LOG_INTERVAL_MS = 1_000

interface Reason {
  last: number
  folded: number
  message: string
  timer: NodeJS.Timeout | undefined
}

/**
 * Logs refused requests at `info`, so "see the server log" is true with the default level, without
 * letting a flood of bad triggers flood the log: one line per reason (error code) per interval,
 * carrying the count of refusals it stands for and the latest message.
 */
export function createRefusalLog (log: Logger, intervalMs = REFUSAL_LOG_INTERVAL_MS): (code: string, message: string) => void {
  const reasons = new Map<string, Reason>()

  function flush (code: string, r: Reason): void {
    r.timer = undefined
    if (r.folded === 0) return
    log.info({ code, refused: r.folded, intervalMs }, `request refused: ${r.message}`)
    r.last = Date.now()
    r.folded = 0
  }

  return function noteRefusal (code, message) {
    if (!log.isLevelEnabled('info')) return
    let r = reasons.get(code)
    if (r === undefined) {
      r = { last: 0, folded: 0, message, timer: undefined }
      reasons.set(code, r)
    }
    r.folded++
    r.message = message
    const wait = r.last + intervalMs - Date.now()
    if (wait <= 0) flush(code, r)
    else if (r.timer === undefined) {
      const reason = r
      reason.timer = setTimeout(() => flush(code, reason), wait)
      reason.timer.unref()
    }
  }
}
