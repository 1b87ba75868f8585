// Per-item outcomes written in groups (src/queue/item-batch.ts): what shares a write, in which
// order the writes come, and what a failed write does to the outcomes in it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ItemBatch, type ItemMark } from '../src/queue/item-batch.ts'

const done = { state: 'done' } as const

/** A write that records each group and ends when `release` is called (or at once). */
function recorder (manual = false): { writes: number[][], write: (marks: readonly ItemMark[]) => Promise<void>, release: () => void } {
  const writes: number[][] = []
  const waiting: Array<() => void> = []
  return {
    writes,
    write: (marks) => {
      writes.push(marks.map((m) => m.index))
      return manual ? new Promise((resolve) => waiting.push(resolve)) : Promise.resolve()
    },
    release: () => { waiting.shift()?.() },
  }
}

test('outcomes marked in one turn share one write, and each resolves once it is written', async () => {
  const r = recorder()
  const batch = new ItemBatch(r.write)
  const marks = [batch.mark(0, done), batch.mark(1, done), batch.mark(2, { state: 'failed', error: '550 no such user' })]
  assert.deepEqual(r.writes, [], 'nothing is written before the turn ends')
  await Promise.all(marks)
  assert.deepEqual(r.writes, [[0, 1, 2]])
  assert.deepEqual(batch.stats, { marks: 3, writes: 1 })
})

test('outcomes that arrive while a write is under way wait for it and go together, in order', async () => {
  const r = recorder(true)
  const batch = new ItemBatch(r.write)
  let firstDone = false
  const first = batch.mark(0, done).then(() => { firstDone = true })
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(r.writes, [[0]], 'the first write started on the next turn')
  const later = [batch.mark(1, done), batch.mark(2, done)]
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(r.writes, [[0]], 'no second write while the first is under way')
  assert.equal(firstDone, false, 'an outcome is not reported written before its write ends')
  r.release()
  await first
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(r.writes, [[0], [1, 2]])
  r.release()
  await Promise.all(later)
  assert.deepEqual(batch.stats, { marks: 3, writes: 2 })
})

test('a failed write rejects the outcomes in it with its error; the next group is still written', async () => {
  const writes: number[][] = []
  const failure = new Error('SQLITE_FULL: database or disk is full')
  let fail = true
  const batch = new ItemBatch(async (marks) => {
    writes.push(marks.map((m) => m.index))
    if (fail) throw failure
  })
  const lost = [batch.mark(0, done), batch.mark(1, done)]
  await assert.rejects(lost[0] as Promise<void>, failure)
  await assert.rejects(lost[1] as Promise<void>, failure)
  fail = false
  await batch.mark(2, done)
  assert.deepEqual(writes, [[0, 1], [2]])
  assert.deepEqual(batch.stats, { marks: 1, writes: 1 }, 'only written outcomes count')
})
