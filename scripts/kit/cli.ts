// Flags of a script: node:util parseArgs with the defaults given, `--help` printing the usage text
// (exit 0), and every usage error — an unknown flag, a bad number, a name not in a list — said on
// stderr as `<script>: <what>` and exit 2.
import { parseArgs, type ParseArgsConfig } from 'node:util'

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>

type Parsed<O extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<{ options: O, allowPositionals: true }>>

export interface Cli<O extends ParseArgsOptionsConfig> {
  values: Parsed<O>['values']
  positionals: string[]
  /** Says what is wrong and exits 2. */
  usage (message: string): never
  /**
   * The integer of a string flag, at least `min` (and at most `max`); `fallback` when the flag is
   * absent (a flag with a parseArgs default is never absent).
   */
  int (name: keyof O & string, min: number, fallback?: number, max?: number): number
  /** A comma-separated flag as integers, each at least `min`. */
  ints (name: keyof O & string, min: number): number[]
  /** A comma-separated flag of names from `all`, in the order of `all`; `fallback` when absent. */
  pick<T extends string> (name: keyof O & string, all: readonly T[], fallback?: readonly T[]): T[]
}

/** `--help` (with `-h` only where the script's own options say so) is added to `options`. */
export function cli<const O extends ParseArgsOptionsConfig> (script: string, help: string, options: O, positionals = false): Cli<O> {
  function usage (message: string): never {
    process.stderr.write(`${script}: ${message}\n(--help for usage)\n`)
    process.exit(2)
  }
  let parsed: Parsed<O>
  try {
    parsed = parseArgs({ options: { help: { type: 'boolean', default: false }, ...options }, allowPositionals: positionals }) as Parsed<O>
  } catch (err) {
    usage((err as Error).message)
  }
  const values = parsed.values as Record<string, string | boolean | undefined>
  if (values.help === true) {
    process.stdout.write(help.endsWith('\n') ? help : `${help}\n`)
    process.exit(0)
  }
  const integer = (name: string, raw: string, min: number, max?: number): number => {
    const n = Number(raw)
    if (Number.isInteger(n) && n >= min && (max === undefined || n <= max)) return n
    return usage(`--${name} must be an integer ${max === undefined ? `≥ ${min}` : `from ${min} to ${max}`} (got ${raw})`)
  }
  const items = (name: string): string[] | undefined => {
    const raw = values[name]
    return typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter((s) => s !== '') : undefined
  }
  return {
    values: parsed.values,
    positionals: parsed.positionals,
    usage,
    int (name, min, fallback, max) {
      const raw = values[name]
      if (typeof raw === 'string') return integer(name, raw, min, max)
      return fallback ?? usage(`--${name} is required`)
    },
    ints: (name, min) => (items(name) ?? []).map((s) => integer(name, s, min)),
    pick (name, all, fallback = all) {
      const picked = items(name)
      if (picked === undefined) return [...fallback]
      for (const p of picked) if (!(all as readonly string[]).includes(p)) usage(`--${name}: unknown ${p} (one of ${all.join(', ')})`)
      return all.filter((a) => picked.includes(a))
    },
  }
}
