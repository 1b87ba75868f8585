// Old against new (issue 11): the intake fast path accepts and refuses exactly what the
// addressparser-per-recipient version did, with the same email and name. The reference is that
// version, copied verbatim into test/helpers/addresses-reference.ts.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { isValidEmail, normaliseRecipients, parseRecipient } from '../src/smtp/addresses.ts'
import * as reference from './helpers/addresses-reference.ts'

const STRING_RUNS = 20_000
const SHAPE_RUNS = 20_000
const OBJECT_RUNS = 5_000

const chars = (s: string): string[] => [...s]
// Heavy in what the RFC 5322 grammar cares about, plus letters, digits and a few odd code points.
const HEAVY = [
  ...chars('<>@".,;:()\\ \t<>@".,;:()\\ \t[]-'), ...chars('abcxyzABZ019'), '\r', '\n', '\0', 'é', 'Ω', '😀', '\u00a0', '\u2028', '\ufeff',
]
const LOCAL_CHARS = [...chars("abcXYZ0189.._-+!#$%&'*/=?^`{|}~"), '"', ' ', '@', 'ü', '(', ',']
const LABEL_CHARS = [...chars('abcXYZ0189--'), '_', 'ü', 'ß']

function same (entry: unknown): void {
  assert.deepStrictEqual(parseRecipient(entry), reference.parseRecipient(entry), `for ${JSON.stringify(entry)}`)
}

const heavyArb = fc.string({ unit: fc.constantFrom(...HEAVY), maxLength: 40 })
const padArb = fc.constantFrom('', '', ' ', '  ', '\t', '\n', '\u00a0', ' \r\n ')

/** A label of `size` letters that is valid as the last label of a host name. */
function label (size: number): string {
  return 'x'.repeat(Math.max(size - 1, 0)) + (size > 0 ? 'a' : '')
}

/** A host name of exactly `size` characters (> 63) in labels of at most 63, valid but for its length. */
function domainOfSize (size: number): string {
  const labels: string[] = []
  let left = size
  while (left > 63) {
    const next = Math.min(63, left - 2)
    labels.push(label(next))
    left -= next + 1
  }
  labels.push(label(left))
  return labels.join('.')
}

const localArb = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}(?:\.[A-Za-z0-9_+-]{1,8}){0,2}$/) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...LOCAL_CHARS), minLength: 0, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom(63, 64, 65).map((n) => 'l'.repeat(n)) },
  { weight: 1, arbitrary: fc.constantFrom('"quoted"', '"a b"', '"a@b"', 'UPPER', 'a..b', '.a', 'a.', 'ü') },
)
const labelArb = fc.oneof(
  { weight: 5, arbitrary: fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,6}[a-z0-9])?$/) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...LABEL_CHARS), maxLength: 6 }) },
  { weight: 1, arbitrary: fc.constantFrom(62, 63, 64).map((n) => 'd'.repeat(n)) },
  { weight: 1, arbitrary: fc.constantFrom('123', '0', 'COM', 'xn--bcher-kva', 'bücher', '-x', 'x-', '', '[1.2.3.4]') },
)
const tldArb = fc.oneof(fc.constantFrom('org', 'ORG', 'io', 'de', '123', '1a', 'a1', 'x-y', 'рф', 'com.'), labelArb)
const domainArb = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.array(labelArb, { minLength: 0, maxLength: 3 }), tldArb).map(([ls, tld]) => [...ls, tld].join('.')) },
  // 253 is the longest host name; with a 64-character local part, 254 the longest address.
  { weight: 1, arbitrary: fc.integer({ min: 186, max: 256 }).map(domainOfSize) },
)
const cleanAddressArb = fc.stringMatching(/^[a-z0-9._%+-]{1,10}@(?:[a-z0-9]{1,8}\.){1,3}[a-z]{2,6}$/)
  .filter((a) => !/^\.|\.\.|\.@/.test(a))
const addressArb = fc.oneof(
  { weight: 6, arbitrary: cleanAddressArb },
  { weight: 6, arbitrary: fc.tuple(localArb, domainArb).map(([l, d]) => `${l}@${d}`) },
  { weight: 1, arbitrary: fc.constantFrom('a@x', 'a@@x.org', '@x.org', 'a@', 'a@b@x.org', 'a@[127.0.0.1]', 'a@x.org.', 'ada@x.org') },
)
const nameArb = fc.oneof(
  fc.constantFrom('', ' ', '\t', 'Ada', 'Ada Lovelace', '  Ada   Lovelace  ', 'Lovelace, Ada', 'J. R. Smith', "O'Brien", 'Zoë Ångström', '山田 太郎',
    'Ada (work)', 'a <b@c.de>', 'Ada@Home', 'ada@x.org', 'team:', 'a;b', '[AL]', '=?utf-8?q?Ada?=', '\\', 'a\\"b', '\u2028Ada\u2028'),
  heavyArb,
  fc.string({ unit: 'grapheme', maxLength: 12 }),
)
const commentArb = fc.oneof(fc.constantFrom('', 'work', 'a@b.cd', '(nested)', 'a\\)b', ')'), fc.string({ unit: fc.constantFrom(...HEAVY), maxLength: 8 }))

/** `Name <a@x.org>` and the shapes around it addressparser reads differently. */
const shapeArb = fc.tuple(nameArb, addressArb, commentArb, padArb, padArb, fc.integer({ min: 0, max: 14 })).map(([name, address, comment, a, b, shape]) => {
  switch (shape) {
    case 0: case 1: return `${a}${name}${b}<${address}>${a}`
    case 2: case 3: return `${a}"${name}"${b}<${address}>`
    case 4: return `${name}<${a}${address}${b}>`
    case 5: return `${a}${address}${b}`
    case 6: return `${name} <${address}> (${comment})`
    case 7: return `(${comment}) ${name} <${address}>`
    case 8: return `${name} <${address}(${comment})>`
    case 9: return `${address} (${comment})`
    case 10: return `${name}: ${address};`
    case 11: return `${address}, ${name} <${address}>`
    case 12: return `"${name}" <${address}>, "${comment}" <${address}>`
    case 13: return `<${address}> ${name}`
    default: return `"${a}${address}${b}" <${address}>`
  }
})

test('isValidEmail agrees with the reference on random strings and generated addresses', () => {
  fc.assert(fc.property(fc.oneof(heavyArb, addressArb), (s) => {
    assert.equal(isValidEmail(s), reference.isValidEmail(s), `for ${JSON.stringify(s)}`)
  }), { numRuns: STRING_RUNS })
})

test('parseRecipient agrees with the reference on random strings', () => {
  fc.assert(fc.property(heavyArb, same), { numRuns: STRING_RUNS })
})

test('parseRecipient agrees with the reference on Name <local@domain> shapes, comments, groups and lists', () => {
  let accepted = 0
  let named = 0
  fc.assert(fc.property(shapeArb, (entry) => {
    same(entry)
    const r = reference.parseRecipient(entry)
    if (r !== undefined) accepted++
    if (r?.name !== undefined) named++
  }), { numRuns: SHAPE_RUNS })
  // Most of the generated shapes must be ones the intake takes, or the property says little.
  assert.ok(accepted > SHAPE_RUNS / 4, `only ${accepted} of ${SHAPE_RUNS} accepted`)
  assert.ok(named > SHAPE_RUNS / 8, `only ${named} of ${SHAPE_RUNS} with a name`)
})

test('parseRecipient agrees with the reference on objects with odd fields, and on anything', () => {
  const fieldArb = fc.oneof(addressArb, nameArb, fc.constant(undefined), fc.constant(null), fc.integer(), fc.boolean(), fc.array(addressArb, { maxLength: 1 }), fc.object({ maxDepth: 1 }))
  const recipientArb = fc.record({ email: fieldArb, name: fieldArb }, { requiredKeys: [] })
  fc.assert(fc.property(fc.oneof(recipientArb, fc.anything()), same), { numRuns: OBJECT_RUNS })
})

test('normaliseRecipients agrees with the reference on mixed lists', () => {
  const entryArb = fc.oneof(shapeArb, addressArb, fc.record({ email: addressArb, name: fc.option(nameArb, { nil: undefined }) }, { requiredKeys: ['email'] }), fc.anything())
  fc.assert(fc.property(fc.array(entryArb, { maxLength: 12 }), (entries) => {
    assert.deepStrictEqual(normaliseRecipients(entries), reference.normaliseRecipients(entries))
  }), { numRuns: OBJECT_RUNS / 5 })
})
