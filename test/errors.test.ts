// Registry test for errors (STYLE.md point 13): every exported error has a unique stable code,
// `name` equals the class, it is a TriggerError, and the README's error table lists each one.
import { readFileSync } from 'node:fs'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as api from 'rawtrigger'
import { TriggerError } from 'rawtrigger'

type ErrorClass = new (message?: string, options?: ErrorOptions) => TriggerError

const errorClasses = Object.entries(api as Record<string, unknown>).filter(
  (entry): entry is [string, ErrorClass] => typeof entry[1] === 'function' && entry[1].prototype instanceof TriggerError,
)

// The errors of the trigger client (src/net), all constructed as (message, { cause }).
const CLIENT_CODES = [
  'RT_ERR_INVALID_URL', 'RT_ERR_INVALID_METHOD', 'RT_ERR_INVALID_HEADER_NAME', 'RT_ERR_INVALID_HEADER_VALUE',
  'RT_ERR_FORBIDDEN_HEADER', 'RT_ERR_INVALID_BODY', 'RT_ERR_INVALID_OPTION', 'RT_ERR_CONNECT', 'RT_ERR_CONNECT_TIMEOUT',
  'RT_ERR_TLS', 'RT_ERR_WRITE', 'RT_ERR_ACK_TIMEOUT', 'RT_ERR_ACK', 'RT_ERR_ABORTED', 'RT_ERR_INVALID_SECRET',
  'RT_ERR_SIGNATURE_MISSING', 'RT_ERR_SIGNATURE_MISMATCH', 'RT_ERR_SIGNATURE_TIMESTAMP',
]

test('the package exports an error class for every code of the trigger client', () => {
  const codes = new Set(errorClasses.map(([, ErrorClass]) => new ErrorClass().code))
  for (const code of CLIENT_CODES) assert.ok(codes.has(code), `no exported error class has ${code}`)
})

test('every exported error class defined in src/errors.ts is exported from the package entry', () => {
  const source = readFileSync(new URL('../src/errors.ts', import.meta.url), 'utf8')
  const defined = [...source.matchAll(/export class (\w+) extends \w+/g)].map((m) => m[1]).filter((name) => name !== 'TriggerError')
  assert.ok(defined.length > 0)
  const exported = new Set(errorClasses.map(([name]) => name))
  for (const name of defined) assert.ok(exported.has(name as string), `${String(name)} is not exported from src/index.ts`)
})

test('every error class: code matches RT_ERR_*, name equals the class name, instanceof TriggerError and Error', () => {
  for (const [exportName, ErrorClass] of errorClasses) {
    const err = new ErrorClass('message')
    assert.match(err.code, /^RT_ERR_[A-Z_]+$/, exportName)
    assert.equal(err.name, ErrorClass.name, `${exportName}.name`)
    assert.equal(err.name, exportName, `${exportName} is exported under its own name`)
    assert.ok(err instanceof TriggerError, exportName)
    assert.ok(err instanceof Error, exportName)
    assert.match(String(err.stack), new RegExp(`^${exportName}`), `${exportName}: the stack starts with the name`)
  }
})

test('every error code is unique', () => {
  const byCode = new Map<string, string>()
  for (const [name, ErrorClass] of errorClasses) {
    const code = new ErrorClass().code
    assert.equal(byCode.get(code), undefined, `${code} is used by both ${String(byCode.get(code))} and ${name}`)
    byCode.set(code, name)
  }
  assert.equal(byCode.has(new TriggerError().code), false, 'no subclass reuses the base code')
})

test('the base class has its own code and name', () => {
  const err = new TriggerError('base')
  assert.equal(err.code, 'RT_ERR_TRIGGER')
  assert.equal(err.name, 'TriggerError')
})

test('every trigger-client error keeps its message and passes { cause } on (OS errors stay readable, never renamed)', () => {
  const cause = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  const client = errorClasses.filter(([, ErrorClass]) => CLIENT_CODES.includes(new ErrorClass().code))
  assert.equal(client.length, CLIENT_CODES.length)
  for (const [name, ErrorClass] of client) {
    const err = new ErrorClass('wrapped', { cause })
    assert.equal(err.message, 'wrapped', name)
    assert.equal(err.cause, cause, name)
  }
})

/** The rows of the README's "## Error codes" table as [code, class] pairs; class '' when the cell names none. */
function readmeErrorRows (): Array<[string, string]> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const start = readme.indexOf('\n## Error codes\n')
  assert.notEqual(start, -1, 'README.md has a "## Error codes" section')
  const next = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, next === -1 ? undefined : next)
  const rows: Array<[string, string]> = []
  for (const line of section.split('\n')) {
    const cells = line.split('|').slice(1, -1).map((cell) => cell.trim())
    const code = /^`(RT_ERR_[A-Z_]+)`$/.exec(cells[0] ?? '')
    if (code === null) continue
    const name = /^`(\w+)`$/.exec(cells[1] ?? '')
    rows.push([code[1] as string, name === null ? '' : name[1] as string])
  }
  return rows
}

test('the README error table: one row per exported class, by whole code and exact class name, both ways', () => {
  const rows = readmeErrorRows()
  assert.ok(rows.length >= errorClasses.length, `the table has ${rows.length} rows`)
  const byCode = new Map<string, string>()
  for (const [code, name] of rows) {
    assert.notEqual(name, '', `README row ${code} names no class`)
    assert.equal(byCode.get(code), undefined, `README lists ${code} twice`)
    byCode.set(code, name)
  }
  const classes = new Map(errorClasses.map(([name, ErrorClass]) => [new ErrorClass().code, name]))
  classes.set(new TriggerError().code, 'TriggerError')
  for (const [code, name] of classes) assert.equal(byCode.get(code), name, `README row for ${code} (class ${name})`)
  for (const [code, name] of byCode) assert.equal(classes.get(code), name, `README row ${code} | ${name}: no exported class ${name} has this code`)
})

test('ControlError carries the server answer (status, serverCode) or the connection error on cause', () => {
  const refused = new api.ControlError('GET /jobs/x: 404 RT_ERR_NOT_FOUND: no job x', { status: 404, serverCode: 'RT_ERR_NOT_FOUND' })
  assert.deepEqual([refused.code, refused.status, refused.serverCode, refused.cause], ['RT_ERR_CONTROL', 404, 'RT_ERR_NOT_FOUND', undefined])
  const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })
  const unreachable = new api.ControlError('GET /jobs: cannot reach http://127.0.0.1:1', { cause })
  assert.deepEqual([unreachable.status, unreachable.serverCode, unreachable.cause], [undefined, undefined, cause])
})

test('RequestTimeoutError is a 408 and InternalError a 500, both RequestErrors', () => {
  assert.ok(new api.RequestTimeoutError() instanceof api.RequestError)
  assert.ok(new api.InternalError() instanceof api.RequestError)
  assert.deepEqual([new api.RequestTimeoutError().status, new api.InternalError().status], [408, 500])
})
