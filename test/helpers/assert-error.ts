// Errors are matched on their stable `code`, never on the message (STYLE.md point 2).
import assert from 'node:assert/strict'
import { TriggerError } from 'rawtrigger'

/** Awaits `promise`, asserts it rejects with a TriggerError of `code`, and returns the error. */
export async function rejectsWith (promise: Promise<unknown>, code: string): Promise<TriggerError> {
  let result: unknown
  try {
    result = await promise
  } catch (err) {
    assert.ok(err instanceof TriggerError, `expected a TriggerError ${code}, got ${String(err)}`)
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`)
    return err
  }
  assert.fail(`expected a rejection with ${code}, got ${JSON.stringify(result)}`)
}

/** Calls `fn`, asserts it throws a TriggerError of `code`, and returns the error. */
export function throwsWith (fn: () => unknown, code: string): TriggerError {
  let result: unknown
  try {
    result = fn()
  } catch (err) {
    assert.ok(err instanceof TriggerError, `expected a TriggerError ${code}, got ${String(err)}`)
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`)
    return err
  }
  assert.fail(`expected ${code} to be thrown, got ${String(result)}`)
}

/** Rejects when `promise` has not settled within `ms`: a guard against hangs, not a timing claim. */
export async function within<T> (ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, guard])
  } finally {
    clearTimeout(timer)
  }
}
