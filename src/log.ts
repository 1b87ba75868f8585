import type { Logger } from 'pino'
import { lazyRequire } from './lazy-require.ts'

const loadPino = lazyRequire<typeof import('pino')>('pino')

export type { Logger }

/** Levels accepted by `--log-level`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]

/** JSON lines on stderr, so stdout stays for what a command prints for people and scripts. */
export function createLogger (level: LogLevel): Logger {
  const { pino } = loadPino()
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }))
}
