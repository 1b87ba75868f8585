// Fault 4: the SQLite data dir's file system fills up mid-flood. The data dir is a small tmpfs the
// harness mounts (root only; the row is skipped otherwise); a filler file takes every free byte,
// stays while the flood goes on, then is deleted. Intake must answer 503 with an error code and
// never 202 for a job that was not committed; serve must stay up and take jobs again once there is
// room. The store is then read back by a fresh serve on the same files, so what counts is what
// the file holds, not what one process believes.
import { closeSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { ClientMode } from './flood.ts'
import type { Fault, FaultContext, WriterMode } from './options.ts'
import { RowBuilder, type Row } from './row.ts'
import { freePort, sleep } from '../kit/scope.ts'
import { startServe } from './serve.ts'
import { startSmtpSink } from './smtp-sink.ts'
import { logNotes, sqliteArgs } from './sqlite-kill.ts'
import { floodAround, verifyStore } from './verify.ts'

/**
 * The tmpfs: room for the file, its WAL (1,000 pages, 4 MiB, between checkpoints) and the jobs a
 * flood stores after the filler is gone (at 6,000/s for 3 s, about 10 MiB): a disk that fills up
 * again with jobs would leave the worker nothing to write with, and say nothing about recovery.
 */
const TMPFS_BYTES = 64 * 1024 * 1024
/** Free bytes the data dir must have at the end for the row to speak about recovery at all. */
const ROOM_AT_END_BYTES = 4 * 1024 * 1024
/** 503s to see before the disk is given back (the fault has taken effect), within this at most. */
const WANT_UNAVAILABLE = 20
const FULL_MAX_MS = 15_000

/** Writes `path` until the file system says ENOSPC; returns the bytes written. */
export function fillDisk (path: string): number {
  const fd = openSync(path, 'w')
  let written = 0
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
      const chunk = Buffer.alloc(size, 0x55)
      for (;;) {
        try {
          written += writeSync(fd, chunk)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break
          throw err
        }
      }
    }
  } finally {
    closeSync(fd)
  }
  return written
}

async function run (ctx: FaultContext, fault: string, mode: ClientMode, writer: WriterMode): Promise<Row> {
  const row = new RowBuilder(fault, `the SQLite data dir's disk full (tmpfs, --sqlite-writer ${writer}) during a ${mode} flood, then room again`, ctx.command(fault))
  try {
    const dir = ctx.scope.tempDir('diskfull')
    const why = ctx.scope.mountTmpfs(dir, TMPFS_BYTES)
    if (why !== undefined) return row.skip(`${why}; run as root to include this row`)
    const sink = await startSmtpSink()
    ctx.scope.defer(() => sink.close())
    const args = sqliteArgs(ctx, dir, await freePort(), sink.url, writer)
    const first = await startServe(ctx.scope, args)
    const filler = join(dir, 'filler')
    const flood = await floodAround(ctx, { mode, targets: [first.url], idPrefix: `${fault}-${process.pid}` }, async (f) => {
      const seenBefore = f.outcomes().length
      row.set('filler bytes', fillDisk(filler))
      const deadline = Date.now() + FULL_MAX_MS
      const unavailable = (): number => f.outcomes().slice(seenBefore).filter((o) => o.status === 503).length
      await sleep(ctx.options.downMs)
      while (unavailable() < WANT_UNAVAILABLE && Date.now() < deadline) await sleep(100)
      rmSync(filler)
    })
    row.set('full ms', flood.faultMs)
    const during = flood.outcomes.filter((o) => o.phase === 'fault')
    const unavailable = during.filter((o) => o.status === 503)
    const codes = [...new Set(unavailable.map((o) => o.code ?? 'none'))]
    row.set('503 while full', unavailable.length)
    row.set('202 while full', during.filter((o) => o.status === 202).length)
    row.set('503 codes', codes.join(' ') || 'none')
    row.check('intake answered 503 while the disk was full', unavailable.length > 0, `${unavailable.length} answers 503 of ${during.length} while full`)
    const others = flood.outcomes.filter((o) => o.status !== 202 && o.status !== 503)
    row.check('only 202 or 503 answers, no client error', others.length === 0,
      `${others.length} others: ${[...new Set(others.map((o) => o.status ?? o.error))].slice(0, 5).join(', ')}`)
    row.check('serve stayed up through the full disk', first.alive(), `it exited: ${first.stderr().slice(-300)}`)
    // What counts is the file: a fresh process on the same data dir answers the checker.
    const stopped = await first.stop()
    row.check('serve stopped cleanly after the fault (SIGTERM, exit 0)', stopped.code === 0, `exit ${stopped.signal ?? stopped.code}`)
    if (stopped.code !== 0) for (const n of logNotes(first.stderr())) row.note(n)
    const second = await startServe(ctx.scope, args)
    await verifyStore(ctx, row, flood, { url: second.url, sink, mode, crashes: 1 })
    const { bavail, bsize } = statfsSync(dir)
    row.set('free bytes at the end', bavail * bsize)
    row.check('the data dir had room again (else the figures above are about a disk still full)', bavail * bsize >= ROOM_AT_END_BYTES,
      `${bavail * bsize} bytes free of ${TMPFS_BYTES}`)
    row.check('every 503 carries an error code', (row.row.client?.unavailableWithoutCode ?? 0) === 0, `${row.row.client?.unavailableWithoutCode ?? 0} without error.code`)
    if (row.row.checks.some((c) => !c.ok)) for (const n of logNotes(first.stderr() + second.stderr())) row.note(n)
    return row.finish()
  } catch (err) {
    return row.error(err)
  }
}

/** One row per writer mode (keep-alive flood). */
export function diskFullFaults (modes: readonly ClientMode[], writers: readonly WriterMode[]): Fault[] {
  const mode = modes[0] ?? 'keep-alive'
  return writers.map((writer) => {
    const name = `disk-full-${writer}`
    return { name, needs: 'root', run: (ctx) => run(ctx, name, mode, writer) }
  })
}
