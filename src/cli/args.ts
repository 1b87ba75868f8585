import { InvalidOptionError, TriggerError } from '../errors.ts'

/** Prints an error with its code and exits: 2 for bad usage, 1 for everything else. */
export function fail (err: unknown): never {
  if (err instanceof TriggerError) {
    const cause = err.cause instanceof Error && 'code' in err.cause ? ` (${String(err.cause.code)})` : ''
    process.stderr.write(`rawtrigger: ${err.code}: ${err.message}${cause}\n`)
    process.exit(err instanceof InvalidOptionError ? 2 : 1)
  }
  process.stderr.write(`rawtrigger: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}

/** parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown or malformed flags. */
export function usageError (err: unknown): InvalidOptionError | undefined {
  if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
    return new InvalidOptionError(`${err.message}; see rawtrigger --help`)
  }
  return undefined
}

/** An integer flag: `min` and up, or undefined when not given. */
export function intFlag (name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < min) throw new InvalidOptionError(`${name} must be an integer >= ${min} (got ${value})`)
  return n
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** A duration flag: `90s`, `30m`, `12h`, `7d`, plain milliseconds, or `0`. */
export function durationFlag (name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(value.trim())
  if (match === null) throw new InvalidOptionError(`${name} must be a duration like 7d, 12h, 30m, 90s or 0 (got ${value})`)
  return Number(match[1]) * (UNIT_MS[match[2] ?? 'ms'] as number)
}
