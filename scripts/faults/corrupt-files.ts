// Fault 5: serve started on a damaged SQLite store. A data dir holding acknowledged jobs is made,
// then damaged: the file truncated to half, its header overwritten, the data dir made read-only,
// or — the one that must work — the -wal a kill -9 left behind. A damaged store must stop serve
// at start with one clear line naming the file and a non-zero exit; it must never come up as an
// empty (or emptier) queue. The crashed process's WAL must be replayed: every job there.
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, openSync, closeSync, statSync, truncateSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { listStored } from './check.ts'
import { fireOnce } from './flood.ts'
import type { Fault, FaultContext } from './options.ts'
import { RowBuilder, type Row } from './row.ts'
import { startServe, spawnServe, type Exit } from './serve.ts'

/** Jobs stored before the damage: enough for several pages of the file, few enough for no checkpoint. */
const JOBS = 200
/** A refused start takes node + tsx + the open; a start that hangs is a failure too. */
const START_LIMIT_MS = 30_000

type Damage = 'truncated' | 'garbage-header' | 'read-only-dir' | 'crashed-wal'

const TITLES: Record<Damage, string> = {
  'truncated': 'rawtrigger.db truncated to half its size',
  'garbage-header': 'the first 100 bytes of rawtrigger.db (the SQLite header) overwritten',
  'read-only-dir': 'the data dir read-only (a read-only bind mount as root, chmod 555 otherwise)',
  'crashed-wal': 'serve killed -9 after 202s, its -wal left behind: the restart must replay it',
}

function serveArgs (dataDir: string): string[] {
  return ['--port', '0', '--data-dir', dataDir, '--concurrency', '0', '--sink-port', '0', '--log-level', 'warn']
}

/** Stores JOBS acknowledged jobs in `dataDir`, then stops serve (SIGTERM) or kills it -9. */
async function prepare (ctx: FaultContext, dataDir: string, end: 'stop' | 'kill9'): Promise<{ acked: string[], exit: Exit }> {
  const serve = await startServe(ctx.scope, serveArgs(dataDir))
  const ids = Array.from({ length: JOBS }, (_, i) => `stored-${i}`)
  const outcomes = await fireOnce('new-connection', serve.url, ids, 8, 1)
  const acked = outcomes.filter((o) => o.status === 202).map((o) => o.id)
  const exit = end === 'stop' ? await serve.stop() : await serve.kill9()
  return { acked, exit }
}

/** Makes `dir` read-only for this process: a read-only bind mount (root ignores modes), else chmod. */
function makeReadOnly (ctx: FaultContext, dir: string): string {
  if (process.getuid?.() === 0) {
    execFileSync('mount', ['--bind', dir, dir])
    ctx.scope.defer(() => execFileSync('umount', ['-l', dir]))
    execFileSync('mount', ['-o', 'remount,ro,bind', dir])
    return 'read-only bind mount'
  }
  chmodSync(dir, 0o555)
  ctx.scope.defer(() => chmodSync(dir, 0o755))
  return 'chmod 555'
}

async function damaged (ctx: FaultContext, fault: string, damage: Exclude<Damage, 'crashed-wal'>): Promise<Row> {
  const row = new RowBuilder(fault, TITLES[damage], ctx.command(fault))
  try {
    const dir = ctx.scope.tempDir('corrupt')
    const file = join(dir, 'rawtrigger.db')
    const { acked } = await prepare(ctx, dir, 'stop')
    row.set('jobs stored', acked.length)
    row.check('the store held acknowledged jobs before the damage', acked.length === JOBS, `${acked.length} of ${JOBS} answered 202`)
    const size = statSync(file).size
    if (damage === 'truncated') {
      truncateSync(file, Math.floor(size / 2))
    } else if (damage === 'garbage-header') {
      const fd = openSync(file, 'r+')
      writeSync(fd, Buffer.alloc(100, 0xa5), 0, 100, 0)
      closeSync(fd)
    } else {
      row.set('how', makeReadOnly(ctx, dir))
    }
    row.set('file bytes', size)
    const child = spawnServe(ctx.scope, serveArgs(dir))
    let timer: NodeJS.Timeout | undefined
    const outcome = await Promise.race([
      child.exited.then((exit) => ({ exit })),
      child.ready.then((url) => ({ url }), () => new Promise<never>(() => {})),
      new Promise<{ hung: true }>((resolve) => { timer = setTimeout(() => resolve({ hung: true }), START_LIMIT_MS) }),
    ])
    clearTimeout(timer)
    if ('url' in outcome) {
      // It came up: how many of the stored jobs does it still show?
      let shown = -1
      try {
        shown = (await listStored(outcome.url)).jobs.size
      } catch (err) {
        row.note(`GET /jobs failed: ${(err as Error).message}`)
      }
      row.set('started', true)
      row.set('jobs it lists', shown)
      row.check('serve refused to start', false, `it listens at ${outcome.url} and lists ${shown < 0 ? 'no' : shown} of ${acked.length} stored jobs`)
      await child.kill9()
      return row.finish()
    }
    if ('hung' in outcome) {
      row.check('serve refused to start', false, `neither listening nor exited after ${START_LIMIT_MS} ms`)
      return row.finish()
    }
    const lines = child.stderr().split('\n').filter((l) => l.trim() !== '')
    const errorLines = lines.filter((l) => l.startsWith('rawtrigger:'))
    row.set('exit', outcome.exit.signal ?? outcome.exit.code ?? 'none')
    row.set('error', errorLines[0] ?? lines[0] ?? '(nothing on stderr)')
    row.check('serve refused to start, exit status non-zero', outcome.exit.code !== null && outcome.exit.code !== 0, `exit ${outcome.exit.signal ?? outcome.exit.code}`)
    row.check('one line on stderr', lines.length === 1 && errorLines.length === 1, `${lines.length} lines: ${lines.slice(0, 3).join(' | ').slice(0, 400)}`)
    row.check('the error names the file', errorLines.some((l) => l.includes(file)), `${JSON.stringify(errorLines[0] ?? '')} does not contain ${file}`)
    return row.finish()
  } catch (err) {
    return row.error(err)
  }
}

async function crashedWal (ctx: FaultContext, fault: string): Promise<Row> {
  const row = new RowBuilder(fault, TITLES['crashed-wal'], ctx.command(fault))
  try {
    const dir = ctx.scope.tempDir('wal')
    const { acked, exit } = await prepare(ctx, dir, 'kill9')
    row.check('the server process itself died of SIGKILL', exit.signal === 'SIGKILL', `exit ${exit.signal ?? exit.code}`)
    const wal = join(dir, 'rawtrigger.db-wal')
    const walBytes = existsSync(wal) ? statSync(wal).size : 0
    row.set('jobs acknowledged', acked.length)
    row.set('-wal bytes', walBytes)
    row.check('a -wal was left behind', walBytes > 0, `${wal}: ${walBytes} bytes`)
    const serve = await startServe(ctx.scope, serveArgs(dir))
    const { jobs, listedTwice } = await listStored(serve.url)
    const lost = acked.filter((id) => !jobs.has(id)).length
    row.set('jobs after restart', jobs.size)
    row.check('every acknowledged job is there after the restart', lost === 0, `${lost} of ${acked.length} missing`)
    row.check('nothing invented or listed twice', jobs.size <= JOBS && listedTwice === 0, `${jobs.size} jobs listed, ${listedTwice} twice`)
    await serve.stop()
    return row.finish()
  } catch (err) {
    return row.error(err)
  }
}

/** The damaged-store rows. */
export function corruptFileFaults (): Fault[] {
  const faults: Fault[] = (['truncated', 'garbage-header', 'read-only-dir'] as const).map((damage) => {
    const name = `corrupt-${damage}`
    return { name, needs: 'sqlite', run: (ctx) => damaged(ctx, name, damage) }
  })
  faults.push({ name: 'corrupt-crashed-wal', needs: 'sqlite', run: (ctx) => crashedWal(ctx, 'corrupt-crashed-wal') })
  return faults
}
