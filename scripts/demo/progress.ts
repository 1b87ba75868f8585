// Progress of the campaign: a cli-progress bar on a terminal, a plain line now and then otherwise
// (CI logs, pipes), nothing with --json.
import cliProgress from 'cli-progress'

/** How often a plain line is written when stdout is not a terminal. */
const PLAIN_EVERY_MS = 500

/** One update: the job as GET /jobs/:id shows it (or queued while it is not stored yet). */
export interface ProgressUpdate {
  state: string
  sent: number
  failed: number
  total: number
}

export interface Progress {
  update (u: ProgressUpdate): void
  stop (): void
}

export function createProgress (mode: 'bar' | 'lines' | 'none', total: number): Progress {
  const start = performance.now()
  const rate = (sent: number): number => Math.round(sent / Math.max((performance.now() - start) / 1000, 0.001))
  if (mode === 'none') return { update () {}, stop () {} }
  if (mode === 'lines') {
    let lastAt = -Infinity
    let last = ''
    return {
      update (u) {
        const line = `     ${u.sent}/${u.total} sent, ${u.failed} failed, ${u.state}`
        const final = u.state === 'done' || u.state === 'failed'
        if (line === last || (!final && performance.now() - lastAt < PLAIN_EVERY_MS)) return
        lastAt = performance.now()
        last = line
        process.stdout.write(`${line}${u.sent > 0 ? ` (${rate(u.sent)} e-mails/s)` : ''}\n`)
      },
      stop () {},
    }
  }
  const bar = new cliProgress.SingleBar({
    format: '     {bar} {value}/{total} sent | {failed} failed | {rate} e-mails/s | {state}',
    barCompleteChar: '█',
    barIncompleteChar: '░',
    barsize: 32,
    hideCursor: true,
    clearOnComplete: false,
    fps: 20,
  })
  bar.start(total, 0, { failed: 0, rate: 0, state: 'queued' })
  return {
    update (u) { bar.update(u.sent, { failed: u.failed, rate: rate(u.sent), state: u.state }) },
    stop () { bar.stop() },
  }
}
