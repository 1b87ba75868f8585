// Runs one row of the fault harness (scripts/faults) inside a test: the short settings, a scope
// closed in t.after() (children killed, mounts and temp dirs removed), the row printed as a
// diagnostic, and assertions on its checks by name.
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { QUICK, type FaultOptions } from '../../scripts/faults/options.ts'
import { allFaults } from '../../scripts/faults/registry.ts'
import { formatRow, type Row } from '../../scripts/faults/row.ts'
import { Scope } from '../../scripts/kit/scope.ts'

/** The test's settings: shorter than `npm run faults -- --quick`. */
export const TEST_OPTIONS: FaultOptions = { ...QUICK, floodMs: 1_500, concurrency: 8, writers: ['thread', 'inline'] }

/** Runs the fault named `name` and returns its row. */
export async function runFault (t: TestContext, name: string, options: Partial<FaultOptions> = {}): Promise<Row> {
  const merged = { ...TEST_OPTIONS, ...options }
  const fault = allFaults(merged).find((f) => f.name === name)
  assert.ok(fault !== undefined, `no fault named ${name}`)
  const scope = new Scope()
  t.after(() => scope.close())
  const row = await fault.run({
    scope,
    options: merged,
    progress: () => {},
    command: (f) => `npm run faults -- --faults ${f} --quick`,
  })
  for (const line of formatRow(row).split('\n')) t.diagnostic(line)
  return row
}

/** Asserts that every check of `row` whose name starts with one of `names` ran and held. */
export function assertChecks (row: Row, names: readonly string[]): void {
  for (const name of names) {
    const matching = row.checks.filter((c) => c.name.startsWith(name))
    assert.ok(matching.length > 0, `${row.fault}: no check "${name}" (checks: ${row.checks.map((c) => c.name).join('; ')})`)
    for (const c of matching) assert.ok(c.ok, `${row.fault}: ${c.name}: ${c.detail}`)
  }
}

/** Asserts that no check of `row` failed except those starting with one of `except`. */
export function assertAllChecksBut (row: Row, except: readonly string[] = []): void {
  for (const c of row.checks) {
    if (except.some((e) => c.name.startsWith(e))) continue
    assert.ok(c.ok, `${row.fault}: ${c.name}: ${c.detail}`)
  }
}
