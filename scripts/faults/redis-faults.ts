// Faults 2 and 3, on a redis-server of the harness's own (appendonly yes, appendfsync always or
// everysec, a free port, a temp dir): kill -9 of one of two serve processes sharing the Redis,
// while the other keeps taking triggers; and Redis itself killed -9 and started again mid-flood,
// while the jobs already stored are being sent — intake must answer 503 meanwhile, never 202 for a
// job Redis did not take, and the workers must reconnect and finish with nothing left running.
import { randomBytes } from 'node:crypto'
import { CONNECT_WAIT_MS } from '../../src/queue/bullmq-queue.ts'
import type { ClientMode } from './flood.ts'
import type { Fault, FaultContext } from './options.ts'
import { startRedisServer } from './redis-server.ts'
import { RowBuilder, type Row } from './row.ts'
import { freePort, sleep, until } from '../kit/scope.ts'
import { startServe } from './serve.ts'
import { startSmtpSink } from './smtp-sink.ts'
import { logNotes } from './sqlite-kill.ts'
import { floodAround, verifyStore } from './verify.ts'

/** After Redis is back, intake must answer 202 again within this. */
const RECOVERY_LIMIT_MS = 30_000

/** serve on Redis: a 2 s chunk lock, so a dead worker's chunk is taken over within about 4 s. */
export function redisArgs (ctx: FaultContext, redisUrl: string, prefix: string, smtpUrl: string, port: number): string[] {
  return ['--port', String(port), '--queue', redisUrl, '--queue-prefix', prefix, '--data-dir', ctx.scope.tempDir('unused'),
    '--smtp', smtpUrl, '--smtp-max-connections', String(ctx.options.poolSize), '--retry-base-ms', '500', '--lease-ms', '2000', '--log-level', 'warn']
}

async function killOneOfTwo (ctx: FaultContext, fault: string, mode: ClientMode): Promise<Row> {
  const row = new RowBuilder(fault, `kill -9 of one of two serve on one Redis during a ${mode} flood at both; the other keeps taking triggers`, ctx.command(fault))
  try {
    const redis = await startRedisServer(ctx.scope)
    const sink = await startSmtpSink()
    ctx.scope.defer(() => sink.close())
    const prefix = `rtfaults-${randomBytes(4).toString('hex')}`
    const [a, b] = await Promise.all([
      startServe(ctx.scope, redisArgs(ctx, redis.url, prefix, sink.url, 0)),
      startServe(ctx.scope, redisArgs(ctx, redis.url, prefix, sink.url, 0)),
    ])
    const flood = await floodAround(ctx, { mode, targets: [a.url, b.url], idPrefix: `${fault}-${process.pid}` }, async () => {
      const exit = await a.kill9()
      row.check('the server process itself died of SIGKILL', exit.signal === 'SIGKILL', `exit ${exit.signal ?? exit.code}`)
    })
    const survivorAfter = flood.outcomes.filter((o) => o.phase === 'after' && o.target === 1 && o.status === 202).length
    row.set('survivor 202 after the kill', survivorAfter)
    row.check('the other serve kept taking triggers', survivorAfter > 0, `${survivorAfter} answered 202 by the survivor after the kill`)
    await verifyStore(ctx, row, flood, { url: b.url, sink, mode, crashes: 1 })
    row.check('the survivor stayed up', b.alive(), 'it exited')
    if (row.row.checks.some((c) => !c.ok)) for (const n of logNotes(b.stderr())) row.note(n)
    return row.finish()
  } catch (err) {
    return row.error(err)
  }
}

async function restartRedis (ctx: FaultContext, fault: string, mode: ClientMode, appendfsync: 'always' | 'everysec'): Promise<Row> {
  const row = new RowBuilder(fault, `Redis killed -9 and restarted (appendonly yes, appendfsync ${appendfsync}) mid-flood (${mode}) and mid-send`, ctx.command(fault))
  try {
    const redis = await startRedisServer(ctx.scope, { appendfsync })
    const sink = await startSmtpSink()
    ctx.scope.defer(() => sink.close())
    const prefix = `rtfaults-${randomBytes(4).toString('hex')}`
    const serve = await startServe(ctx.scope, redisArgs(ctx, redis.url, prefix, sink.url, await freePort()))
    let downMs = 0
    let backMs = -1
    const flood = await floodAround(ctx, { mode, targets: [serve.url], idPrefix: `${fault}-${process.pid}` }, async (f) => {
      const t0 = performance.now()
      await redis.kill9()
      await sleep(ctx.options.downMs)
      await redis.start()
      downMs = Math.round(performance.now() - t0)
      // From here answers count as `after`: how long until intake takes jobs again?
      f.phase('after')
      const from = f.outcomes().length
      const back = performance.now()
      if (await until(() => f.outcomes().slice(from).some((o) => o.status === 202), RECOVERY_LIMIT_MS, 20)) {
        backMs = Math.round(performance.now() - back)
      }
    })
    row.set('Redis down ms', downMs)
    row.set('202 again ms after Redis returned', backMs)
    row.check(`intake took jobs again within ${RECOVERY_LIMIT_MS} ms of Redis' return`, backMs >= 0, 'no 202 since Redis returned')
    const during = flood.outcomes.filter((o) => o.phase === 'fault')
    const unavailable = during.filter((o) => o.status === 503).length
    const others = flood.outcomes.filter((o) => o.status !== 202 && o.status !== 503)
    row.set('503 while down', unavailable)
    row.set('202 while down', during.filter((o) => o.status === 202).length)
    // A request waits up to CONNECT_WAIT_MS for a reconnecting Redis before its 503: only an outage
    // longer than that must show one (a shorter one is waited out, and answered 202).
    if (downMs > CONNECT_WAIT_MS) {
      row.check(`intake answered 503 while Redis was gone (${downMs} ms, more than the ${CONNECT_WAIT_MS} ms a request waits)`, unavailable > 0,
        `${unavailable} answers 503 of ${during.length} while down`)
    } else {
      row.note(`Redis was down ${downMs} ms, no longer than the ${CONNECT_WAIT_MS} ms a request waits for it: no 503 required (--down-ms)`)
    }
    row.check('only 202 or 503 answers, no client error', others.length === 0,
      `${others.length} others: ${[...new Set(others.map((o) => o.status ?? o.error))].slice(0, 5).join(', ')}`)
    await verifyStore(ctx, row, flood, { url: serve.url, sink, mode, crashes: 1 })
    row.check('every 503 carries an error code', (row.row.client?.unavailableWithoutCode ?? 0) === 0, `${row.row.client?.unavailableWithoutCode ?? 0} without error.code`)
    row.check('serve stayed up', serve.alive(), 'it exited')
    if (row.row.checks.some((c) => !c.ok)) for (const n of logNotes(serve.stderr())) row.note(n)
    return row.finish()
  } catch (err) {
    return row.error(err)
  }
}

/**
 * The Redis rows: one kill-one-of-two per client mode, and Redis restarted (the first client mode)
 * with `appendfsync always` and with `everysec`: a kill -9 of the process (not of the host) finds
 * the written file either way, since Redis writes the log before it answers and fsyncs later.
 */
export function redisFaults (modes: readonly ClientMode[]): Fault[] {
  const faults: Fault[] = modes.map((mode) => {
    const name = `redis-kill9-one-of-two-${mode}`
    return { name, needs: 'redis', run: (ctx) => killOneOfTwo(ctx, name, mode) }
  })
  const mode = modes[0] ?? 'keep-alive'
  faults.push({ name: `redis-restart-${mode}`, needs: 'redis', run: (ctx) => restartRedis(ctx, `redis-restart-${mode}`, mode, 'always') })
  faults.push({ name: `redis-restart-everysec-${mode}`, needs: 'redis', run: (ctx) => restartRedis(ctx, `redis-restart-everysec-${mode}`, mode, 'everysec') })
  return faults
}
