// The PHP flood client: one `php scripts/faults/fsockopen-ack.php` per slot, each firing its own
// ids one after the other with fsockopen/fwrite and reading the status line. Each prints a line
// before it connects and one with the answer, so the ledger knows every id that was sent even when
// the server dies mid-request. Stopping closes their stdin: each finishes the trigger it has in
// flight (bounded by its 8 s answer timeout) and exits.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { buildRequest } from 'rawtrigger'
import type { Outcome, Phase } from './flood.ts'

const SCRIPT = fileURLToPath(new URL('./fsockopen-ack.php', import.meta.url))
/** A PHP child that has not exited this long after its stdin closed is killed. */
const EXIT_LIMIT_MS = 15_000

export { phpVersion } from '../kit/system.ts'

/** A running PHP flood: the same shape as the Node clients' (see flood.ts). */
export interface PhpFlood {
  phase (p: Phase): void
  settled (): number
  outcomes (): readonly Outcome[]
  stop (): Promise<Outcome[]>
}

/** Starts `concurrency` PHP clients; slot i fires at targets[i % targets.length]. */
export function startPhpFlood (targets: readonly string[], concurrency: number, body: Record<string, unknown>, idPrefix: string): PhpFlood {
  const outcomes: Outcome[] = []
  const inFlight = new Map<string, number>()
  let phase: Phase = 'before'
  const children = Array.from({ length: concurrency }, (_, slot) => {
    const target = slot % targets.length
    const url = new URL(targets[target] as string)
    const template = buildRequest(`${url.origin}/jobs/email`, { body, headers: { 'webhook-id': '{ID}' } })
    const child = spawn('php', [SCRIPT, url.hostname, url.port, template.toString('base64'), idPrefix, String(slot), String(concurrency)],
      { stdio: ['pipe', 'pipe', 'ignore'] })
    let rest = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      const lines = (rest + s).split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) {
        const [kind, id, status, bodyId, code, dup] = line.split(' ')
        if (id === undefined) continue
        if (kind === '>') {
          inFlight.set(id, target)
          continue
        }
        inFlight.delete(id)
        if (kind === '=') {
          outcomes.push({
            id, target, phase, status: Number(status),
            ...(bodyId === undefined || bodyId === '-' ? {} : { bodyId }),
            ...(code === undefined || code === '-' ? {} : { code }),
            ...(dup === 'duplicate' ? { duplicate: true } : {}),
          })
        } else {
          outcomes.push({ id, target, phase, error: `php/${status ?? 'ERROR'}` })
        }
      }
    })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    return { child, exited }
  })
  return {
    phase: (p) => { phase = p },
    settled: () => outcomes.length,
    outcomes: () => outcomes,
    async stop () {
      for (const { child } of children) child.stdin.end()
      const timer = setTimeout(() => { for (const { child } of children) child.kill('SIGKILL') }, EXIT_LIMIT_MS)
      await Promise.all(children.map((c) => c.exited))
      clearTimeout(timer)
      // Sent, never answered (a child killed mid-request): not acknowledged, but known to be sent.
      for (const [id, target] of inFlight) outcomes.push({ id, target, phase, error: 'php/no answer' })
      return outcomes
    },
  }
}
