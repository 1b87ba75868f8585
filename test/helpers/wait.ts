// Waiting in tests: a plain sleep, and one poll loop for "until this holds". A fixed sleep is for
// pacing (letting a timer or a socket move on), never for proving that nothing happened: wait for
// the event or the drained queue instead.
import { setTimeout as delay } from 'node:timers/promises'

/** The default guard on a wait: a hang fails the test instead of stalling the run. */
export const WAIT_TIMEOUT_MS = 10_000
/** How often a wait asks again. */
export const WAIT_EVERY_MS = 25

/** Resolves after `ms`. */
export function sleep (ms: number): Promise<void> {
  return delay(ms)
}

/**
 * Calls `check` every `everyMs` until it returns a value other than undefined, and returns it.
 * A `check` that throws counts as "not yet" (a server still starting, a row not written): the
 * last error is named in the failure after `timeoutMs`.
 */
export async function waitFor<T> (
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = WAIT_TIMEOUT_MS,
  everyMs = WAIT_EVERY_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`)
    }
    await delay(everyMs)
  }
}
