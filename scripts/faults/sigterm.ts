// Fault 7: SIGTERM to `serve` in the middle of a flood, on SQLite and on Redis, then a restart on
// the same store and port while the clients keep firing. A graceful stop must answer every request
// it has read (202 once stored, else 503 with a code), store nothing it did not answer 202 for and
// nothing incomplete, and exit 0; the restarted serve runs every stored job to the end.
import { randomBytes } from 'node:crypto'
import type { ClientMode } from './flood.ts'
import type { Fault, FaultContext, WriterMode } from './options.ts'
import { redisArgs } from './redis-faults.ts'
import { startRedisServer } from './redis-server.ts'
import { RowBuilder, type Row } from './row.ts'
import { freePort } from '../kit/scope.ts'
import { startServe } from './serve.ts'
import { startSmtpSink } from './smtp-sink.ts'
import { logNotes, sqliteArgs } from './sqlite-kill.ts'
import { floodAround, verifyStore } from './verify.ts'

/** serve's grace for running jobs is 10 s (--grace-ms); a stop that takes longer is a hang. */
const STOP_LIMIT_MS = 12_000
/** Client failures that mean "serve was not there": no request was read, nothing to answer. */
const NOT_THERE = /ECONNREFUSED|ECONNRESET|EPIPE|socket hang up/

type Store = { kind: 'sqlite', writer: WriterMode } | { kind: 'redis' }

async function run (ctx: FaultContext, fault: string, mode: ClientMode, store: Store): Promise<Row> {
  const on = store.kind === 'sqlite' ? `SQLite, --sqlite-writer ${store.writer}` : 'Redis'
  const row = new RowBuilder(fault, `SIGTERM to serve (${on}) during a ${mode} flood, restart on the same store`, ctx.command(fault))
  try {
    const sink = await startSmtpSink()
    ctx.scope.defer(() => sink.close())
    const port = await freePort()
    let args: string[]
    if (store.kind === 'sqlite') {
      args = sqliteArgs(ctx, ctx.scope.tempDir('sqlite'), port, sink.url, store.writer)
    } else {
      const redis = await startRedisServer(ctx.scope)
      args = redisArgs(ctx, redis.url, `rtfaults-${randomBytes(4).toString('hex')}`, sink.url, port)
    }
    const first = await startServe(ctx.scope, args)
    let second: Awaited<ReturnType<typeof startServe>> | undefined
    let stopMs = 0
    const flood = await floodAround(ctx, { mode, targets: [first.url], idPrefix: `${fault}-${process.pid}` }, async () => {
      const t0 = performance.now()
      const exit = await first.stop()
      stopMs = Math.round(performance.now() - t0)
      row.check('serve exited 0 on SIGTERM', exit.code === 0, `exit ${exit.signal ?? exit.code}`)
      row.check(`serve stopped within ${STOP_LIMIT_MS} ms`, stopMs <= STOP_LIMIT_MS, `${stopMs} ms`)
      second = await startServe(ctx.scope, args)
    })
    row.set('stop ms', stopMs)
    row.set('down ms', flood.faultMs)
    if (second === undefined) throw new Error('no second serve')
    const during = flood.outcomes.filter((o) => o.phase === 'fault')
    const unavailable = during.filter((o) => o.status === 503).length
    row.set('202 while stopping', during.filter((o) => o.status === 202).length)
    row.set('503 while stopping', unavailable)
    const others = flood.outcomes.filter((o) => o.status !== 202 && o.status !== 503 && !NOT_THERE.test(o.error ?? ''))
    row.set('not there', flood.outcomes.filter((o) => NOT_THERE.test(o.error ?? '')).length)
    row.check('only 202, 503 or no serve listening (refused, reset before a byte was read)', others.length === 0,
      `${others.length} others: ${[...new Set(others.map((o) => o.status ?? o.error))].slice(0, 5).join(', ')}`)
    await verifyStore(ctx, row, flood, { url: second.url, sink, mode, crashes: 0 })
    const s = row.row.store
    // A graceful stop answers what it stored: a stored job nobody was told 202 for was cut off.
    row.check('every stored job was answered 202 (none cut off by the stop)', s !== undefined && s.unackedStored === 0,
      `${s?.unackedStored ?? '?'} stored jobs whose 202 never reached the client`)
    const m = row.row.mail
    row.check('every stored job whole (its recipients all there)', s !== undefined && m !== undefined && m.expected === s.stored * ctx.options.recipients,
      `${m?.expected ?? '?'} recipients in ${s?.stored ?? '?'} jobs of ${ctx.options.recipients}`)
    row.check('every 503 carries an error code', (row.row.client?.unavailableWithoutCode ?? 0) === 0, `${row.row.client?.unavailableWithoutCode ?? 0} without error.code`)
    row.check('the restarted serve stayed up', second.alive(), 'it exited')
    if (row.row.checks.some((c) => !c.ok)) for (const n of logNotes(first.stderr() + second.stderr())) row.note(n)
    return row.finish()
  } catch (err) {
    return row.error(err)
  }
}

/** One SQLite row (the first writer mode), one Redis row; both with the first client mode. */
export function sigtermFaults (modes: readonly ClientMode[], writers: readonly WriterMode[]): Fault[] {
  const mode = modes[0] ?? 'keep-alive'
  const writer = writers[0] ?? 'thread'
  return [
    { name: `sigterm-sqlite-${mode}-${writer}`, needs: 'sqlite', run: (ctx) => run(ctx, `sigterm-sqlite-${mode}-${writer}`, mode, { kind: 'sqlite', writer }) },
    { name: `sigterm-redis-${mode}`, needs: 'redis', run: (ctx) => run(ctx, `sigterm-redis-${mode}`, mode, { kind: 'redis' }) },
  ]
}
