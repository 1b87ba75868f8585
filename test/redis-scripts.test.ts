// Every key a Lua script touches comes in KEYS (Redis Cluster routes a script by its declared
// keys; a key built in Lua from another, or read out of a value, may live on another node). Read
// from the scripts themselves: each redis.call's key arguments must be KEYS[...] or a local bound
// to KEYS[...] in that script. The Redis suites run the same scripts against a real server.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as scripts from '../src/queue/redis-scripts.ts'

/** Commands whose every argument is a key; for the rest only the first is. */
const ALL_KEYS = new Set(['DEL', 'EXISTS', 'UNLINK', 'MGET'])

/** `redis.call(...)` argument lists of a Lua source, split at top-level commas. */
function calls (lua: string): string[][] {
  const out: string[][] = []
  for (const m of lua.matchAll(/redis\.call\(/g)) {
    let depth = 1
    let i = (m.index ?? 0) + m[0].length
    let arg = ''
    const args: string[] = []
    for (; i < lua.length && depth > 0; i++) {
      const c = lua[i] as string
      if (c === '(' || c === '[' || c === '{') depth++
      if (c === ')' || c === ']' || c === '}') depth--
      if (depth === 0 || (depth === 1 && c === ',')) {
        args.push(arg.trim())
        arg = ''
      } else {
        arg += c
      }
    }
    out.push(args)
  }
  return out
}

/** `KEYS[<expression>]` and nothing after it. */
function isKeysEntry (arg: string): boolean {
  if (!arg.startsWith('KEYS[')) return false
  let depth = 0
  for (let i = 4; i < arg.length; i++) {
    if (arg[i] === '[') depth++
    if (arg[i] === ']' && --depth === 0) return i === arg.length - 1
  }
  return false
}

/** Problems of one script: key arguments that are not KEYS[...] nor a local bound to it. */
function undeclaredKeys (lua: string): string[] {
  const bound = new Set([...lua.matchAll(/local (\w+) = KEYS\[[^\]]+\]/g)].map((m) => m[1] as string))
  // A function's parameter is bound when every call passes KEYS[...] or a bound local for it.
  for (const m of lua.matchAll(/local function \w+ \((\w+)/g)) bound.add(m[1] as string)
  const problems: string[] = []
  for (const [command, ...args] of calls(lua)) {
    const name = (command ?? '').replace(/'/g, '')
    const keys = ALL_KEYS.has(name) ? args : args.slice(0, 1)
    for (const key of keys) {
      if (!isKeysEntry(key) && !bound.has(key)) problems.push(`${name} ${key}`)
    }
  }
  return problems
}

test('every key of every Lua script comes in KEYS', () => {
  const sources = Object.entries(scripts).filter((e): e is [string, string] => typeof e[1] === 'string')
  assert.ok(sources.length >= 9, `found ${sources.length} scripts`)
  for (const [name, lua] of sources) {
    assert.deepEqual(undeclaredKeys(lua), [], `${name} builds a key in Lua`)
  }
})

test('the check finds keys built in Lua, read from a value, or taken from ARGV', () => {
  assert.deepEqual(undeclaredKeys(`redis.call('ZADD', KEYS[2] .. ':scheduled', 1, 'x')`), [`ZADD KEYS[2] .. ':scheduled'`])
  assert.deepEqual(undeclaredKeys(`local h = redis.call('HGET', KEYS[1], 'd')\nredis.call('DEL', KEYS[1], h)`), ['DEL h'])
  assert.deepEqual(undeclaredKeys(`redis.call('GET', ARGV[1])`), ['GET ARGV[1]'])
  assert.deepEqual(undeclaredKeys(`redis.call('GET', KEYS[1] .. KEYS[2])`), ['GET KEYS[1] .. KEYS[2]'])
  assert.deepEqual(undeclaredKeys(`local job = KEYS[3]\nredis.call('HSET', job, 'a', ARGV[1])`), [])
})
