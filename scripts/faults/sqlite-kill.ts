// Fault 1: kill -9 of `serve` (SQLite) in the middle of a flood, restart on the same data dir and
// the same port while the clients keep firing. Every 202 must be in the file afterwards; the only
// missing triggers are unacknowledged ones; every stored job resumes and is mailed.
import type { ClientMode } from './flood.ts'
import type { Fault, FaultContext, WriterMode } from './options.ts'
import { RowBuilder, type Row } from './row.ts'
import { freePort } from '../kit/scope.ts'
import { startServe } from './serve.ts'
import { startSmtpSink } from './smtp-sink.ts'
import { floodAround, verifyStore } from './verify.ts'

/** serve's settings for the SQLite faults: a short lease and quick SMTP retries, so recovery fits a run. */
export function sqliteArgs (ctx: FaultContext, dataDir: string, port: number, smtpUrl: string, writer: WriterMode): string[] {
  return ['--port', String(port), '--data-dir', dataDir, '--smtp', smtpUrl, '--sqlite-writer', writer,
    '--smtp-max-connections', String(ctx.options.poolSize), '--retry-base-ms', '500', '--lease-ms', '3000', '--log-level', 'warn']
}

/** The last warn/error lines of serve's JSON log, as short notes. */
export function logNotes (stderr: string, max = 3): string[] {
  const out: string[] = []
  for (const line of stderr.split('\n').filter((l) => l.trim() !== '').slice(-max)) {
    try {
      const j = JSON.parse(line) as { msg?: string, err?: { message?: string, code?: string } }
      out.push(`serve log: ${j.msg ?? ''}${j.err?.message === undefined ? '' : `: ${j.err.message}`}`)
    } catch {
      out.push(`serve stderr: ${line.slice(0, 300)}`)
    }
  }
  return out
}

async function run (ctx: FaultContext, fault: string, mode: ClientMode, writer: WriterMode): Promise<Row> {
  const row = new RowBuilder(fault, `kill -9 of serve (SQLite, --sqlite-writer ${writer}) during a ${mode} flood, restart on the same data dir`, ctx.command(fault))
  try {
    const sink = await startSmtpSink()
    ctx.scope.defer(() => sink.close())
    const dir = ctx.scope.tempDir('sqlite')
    const port = await freePort()
    const args = sqliteArgs(ctx, dir, port, sink.url, writer)
    const first = await startServe(ctx.scope, args)
    let second: Awaited<ReturnType<typeof startServe>> | undefined
    const flood = await floodAround(ctx, { mode, targets: [first.url], idPrefix: `${fault}-${process.pid}` }, async () => {
      const exit = await first.kill9()
      row.check('the server process itself died of SIGKILL', exit.signal === 'SIGKILL', `exit ${exit.signal ?? exit.code}`)
      second = await startServe(ctx.scope, args)
    })
    row.set('down ms', flood.faultMs)
    if (second === undefined) throw new Error('no second serve')
    await verifyStore(ctx, row, flood, { url: second.url, sink, mode, crashes: 1 })
    row.check('the restarted serve stayed up', second.alive(), 'it exited')
    if (row.row.checks.some((c) => !c.ok)) for (const n of logNotes(second.stderr())) row.note(n)
    return row.finish()
  } catch (err) {
    return row.error(err)
  }
}

/** One fault per client mode and writer mode. */
export function sqliteKillFaults (modes: readonly ClientMode[], writers: readonly WriterMode[]): Fault[] {
  const faults: Fault[] = []
  for (const writer of writers) {
    for (const mode of modes) {
      const name = `sqlite-kill9-${mode}-${writer}`
      faults.push({ name, needs: 'sqlite', run: (ctx) => run(ctx, name, mode, writer) })
    }
  }
  return faults
}
