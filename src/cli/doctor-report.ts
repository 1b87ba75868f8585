import type { TriggerResult } from '../net/trigger.ts'
import { DOCTOR_JOB_TYPE } from './doctor-job.ts'
import type { Shape } from './doctor-shapes.ts'

const SHAPE_TEXT: Record<Shape, string> = {
  fin: 'FIN right after the write',
  pause: '5 ms pause, then FIN',
  reset: 'RST right after the last byte',
}

/** Lost ids printed, for looking them up in a proxy's log. */
const LOST_IDS_SHOWN = 5

/** What one shape's triggers did. */
export interface ShapeReport {
  shape: Shape
  fired: number
  kept: number
  lost: number
  /** Triggers that could not even be written (connect or write error): neither kept nor lost. */
  unsent: number
}

/** What `rawtrigger doctor` found. */
export interface DoctorReport {
  url: string
  run: string
  type: string
  /** The front's `Server` header (`nginx/1.22.1`), or `Via`; undefined when it names itself nowhere. */
  front: string | undefined
  shapes: ShapeReport[]
  kept: number
  lost: number
  unsent: number
  lostIds: string[]
  /** Empty when nothing was lost. */
  cause: string
  fixes: string[]
}

/** The likely cause of the losses, and the settings that fix it. */
export function diagnose (shapes: readonly ShapeReport[], front: string | undefined): { cause: string, fixes: string[] } {
  const lost = (s: Shape): number => shapes.find((r) => r.shape === s)?.lost ?? 0
  if (shapes.every((r) => r.lost === 0)) return { cause: '', fixes: [] }
  const nginx = front !== undefined && /nginx|openresty/i.test(front)
  const onFin = lost('fin') + lost('pause') > 0
  const onReset = lost('reset') > 0
  const how = onFin && onReset ? 'a FIN or an RST' : onFin ? 'a FIN' : 'an RST'
  const who = nginx ? 'nginx' : 'whatever sits in front of the receiver (or the receiver itself)'
  const cause = `${who} treats a client that hangs up right after its last byte (${how}) as an abort, and drops the complete request instead of forwarding or storing it`
  const fixes: string[] = []
  const nginxFix = 'nginx: `proxy_ignore_client_abort on;` in the location that proxies to the receiver (keep `proxy_request_buffering on`, the default)'
  const haproxyFix = 'HAProxy: no `option abortonclose` (it is off by default; remove it, or `no option abortonclose` in the backend), and `option http-buffer-request` to read the whole body first'
  const nodeFix = 'a Node.js server or proxy: `server.httpAllowHalfOpen = true`, and read the body before any await (rawtrigger serve does both)'
  if (nginx) fixes.push(nginxFix)
  else fixes.push(nginxFix, haproxyFix, nodeFix)
  return { cause, fixes }
}

/** Why the preflight trigger was refused, with a hint for the usual causes. */
export function refusalText (ack: TriggerResult, type: string, jobsUrl: URL): string {
  const at = (ack.response ?? '').indexOf('\r\n\r\n')
  let error: { code?: string, message?: string } | undefined
  try {
    error = (JSON.parse((ack.response ?? '').slice(at + 4)) as { error?: typeof error }).error
  } catch {}
  const what = error?.code === undefined ? (ack.response ?? '').split('\r\n', 1)[0] : `${error.code}: ${error.message ?? ''}`
  let hint = ''
  if (ack.status === 404 && error?.code === 'RT_ERR_NOT_FOUND' && type === DOCTOR_JOB_TYPE) {
    hint = '\n  this receiver has no doctor job type (an older serve, or an embedded createReceiver): pass --type <a job type of yours that is harmless> --data <its JSON>'
  } else if (ack.status === 401) hint = '\n  the receiver requires signatures: pass --secret (or set TRIGGER_SECRET) as serve has it'
  else if (ack.status === 403) hint = '\n  the receiver takes unsigned triggers from loopback only, naming a loopback Host: start serve with --secret and pass it here'
  else if (ack.status === 404) hint = `\n  is ${jobsUrl.href} the receiver? Give the URL your app fires at, without /jobs/…`
  return `the receiver refused the first (ordinary) trigger with HTTP ${String(ack.status)}: ${what}${hint}`
}

/** The report as text, for a terminal. */
export function print (r: DoctorReport): string {
  const lines = [`rawtrigger doctor ${r.url} (run ${r.run}, job type ${r.type}${r.front === undefined ? '' : `, front: ${r.front}`})`]
  lines.push(`  ${'shape'.padEnd(32)} ${'fired'.padStart(5)} ${'kept'.padStart(5)} ${'lost'.padStart(5)}`)
  for (const s of r.shapes) {
    lines.push(`  ${SHAPE_TEXT[s.shape].padEnd(32)} ${String(s.fired).padStart(5)} ${String(s.kept).padStart(5)} ${String(s.lost).padStart(5)}${s.unsent > 0 ? `  (${s.unsent} could not be sent)` : ''}`)
  }
  const total = r.kept + r.lost
  if (r.lost === 0) {
    lines.push(`kept ${r.kept} of ${total}: every completely sent trigger became a job`)
  } else {
    lines.push(`LOST ${r.lost} of ${total} triggers: sent completely, never stored (ids such as ${r.lostIds.slice(0, LOST_IDS_SHOWN).join(', ')})`)
    lines.push(`likely cause: ${r.cause}`)
    lines.push(r.fixes.length === 1 ? 'fix:' : 'fix, for what sits in front:')
    for (const f of r.fixes) lines.push(`  - ${f}`)
  }
  if (r.unsent > 0) lines.push(`${r.unsent} triggers could not be sent at all (connect or write failed): not counted as lost`)
  return lines.join('\n') + '\n'
}
