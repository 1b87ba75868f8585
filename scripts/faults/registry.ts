// Every fault of the harness, in the order they run.
import type { Fault, FaultOptions } from './options.ts'
import { corruptFileFaults } from './corrupt-files.ts'
import { diskFullFaults } from './disk-full.ts'
import { redisFaults } from './redis-faults.ts'
import { sigtermFaults } from './sigterm.ts'
import { clockJumpFaults } from './clock-jump.ts'
import { smtpOutageFaults } from './smtp-outage.ts'
import { sqliteKillFaults } from './sqlite-kill.ts'

/** Name prefixes `--faults` accepts (each selects every row it starts). */
export const FAULT_GROUPS = ['sqlite-kill9', 'disk-full', 'corrupt', 'redis-kill9', 'redis-restart', 'smtp-outage', 'sigterm', 'clock-jump']

/** The faults for these options (one SQLite kill row per client mode and writer mode). */
export function allFaults (options: FaultOptions): Fault[] {
  return [
    ...sqliteKillFaults(options.modes, options.writers),
    ...diskFullFaults(options.modes, options.writers),
    ...corruptFileFaults(),
    ...redisFaults(options.modes),
    ...smtpOutageFaults(),
    ...sigtermFaults(options.modes, options.writers),
    ...clockJumpFaults(options.modes),
  ]
}
