import {
  ForbiddenHeaderError,
  InvalidBodyError,
  InvalidHeaderNameError,
  InvalidHeaderValueError,
  InvalidMethodError,
  InvalidOptionError,
  InvalidSecretError,
  InvalidUrlError,
  TriggerError,
} from '../errors.ts'

// Errors about what the person typed, found before anything is connected to: exit status 2.
const USAGE_ERRORS = [
  InvalidOptionError, InvalidUrlError, InvalidMethodError, InvalidHeaderNameError, InvalidHeaderValueError,
  ForbiddenHeaderError, InvalidBodyError, InvalidSecretError,
]

/** Exit status 2: the error is about the command line (a flag, the URL, a header, the body, the secret). */
export function isUsageError (err: unknown): boolean {
  return USAGE_ERRORS.some((UsageError) => err instanceof UsageError)
}

/** Prints an error with its code and exits: 2 for bad usage, 1 for everything else. */
export function fail (err: unknown): never {
  if (err instanceof TriggerError) {
    const code = err.cause instanceof Error && 'code' in err.cause ? String(err.cause.code) : undefined
    const cause = code === undefined || err.message.includes(`(${code})`) ? '' : ` (${code})`
    process.stderr.write(`rawtrigger: ${err.code}: ${err.message}${cause}\n`)
    process.exit(isUsageError(err) ? 2 : 1)
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

/** A TCP port flag: an integer from 0 (any free port) to 65535, or undefined when not given. */
export function portFlag (name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || n > 65_535) throw new InvalidOptionError(`${name} must be a port, an integer from 0 to 65535 (got ${value})`)
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
