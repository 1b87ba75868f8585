import { randomBytes } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import { parseArgs } from 'node:util'
import { InvalidOptionError } from '../errors.ts'
import { buildRequest, parseTarget } from '../net/request-bytes.ts'
import { sign } from '../net/sign.ts'
import { trigger, type TriggerResult } from '../net/trigger.ts'
import { intFlag } from './args.ts'
import { DOCTOR_JOB_TYPE } from './doctor-job.ts'
import { diagnose, print, refusalText, type DoctorReport, type ShapeReport } from './doctor-report.ts'
import { fireShaped, SHAPES, type Shape } from './doctor-shapes.ts'

export { diagnose, type DoctorReport, type ShapeReport } from './doctor-report.ts'
export type { Shape } from './doctor-shapes.ts'

export const DOCTOR_HELP = `rawtrigger doctor <url> [options]   fire fsockopen-shaped triggers through whatever sits in
                                    front of serve (nginx, HAProxy, …) and report which arrived

  <url>                 the receiver as your app reaches it: http(s)://host:port[/prefix]
  -n, --count <n>       triggers to fire (default 60), a third in each shape: FIN right
                        after the write (PHP fwrite + fclose), a 5 ms pause then FIN, and
                        RST right after the last byte
      --secret <S>      sign the triggers and the reads (default: $TRIGGER_SECRET)
      --type <name>     job type to fire (default doctor: stored, does nothing; serve has it)
      --data <JSON>     the body for --type (default {"run": …, "shape": …})
      --wait <ms>       how long to wait for late arrivals (default 5000)
      --insecure        https: do not verify the server certificate
      --json            print the report as one JSON line

  Each trigger carries a webhook-id (doctor-<run>-<n>), which becomes its job's id; GET /jobs/:id
  then shows which arrived. Leaves count + 1 done jobs of the type, deleted by retention.
  Exit status 0 when every trigger became a job, 1 on any loss or when the receiver refuses
  or cannot be read, 2 bad usage.
`

const DEFAULT_COUNT = 60
/** Triggers in flight at once: a burst, as a page that fires per request makes. */
const FIRE_CONCURRENCY = 10
/** After the last trigger, how long to keep asking for the missing ones. */
const DEFAULT_WAIT_MS = 5_000
const POLL_INTERVAL_MS = 200
/** One GET /jobs/:id. */
const READ_TIMEOUT_MS = 5_000
const READ_CONCURRENCY = 8

interface Probe { id: string, shape: Shape, bytes: Buffer, sent: boolean, kept: boolean }

function header (response: string | undefined, name: string): string | undefined {
  const match = new RegExp(`\\r\\n${name}:[ \\t]*([^\\r\\n]*)`, 'i').exec(response ?? '')
  return match?.[1]
}

/** Runs `fn` over `items`, at most `concurrency` at once. */
async function each<T> (items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane))
}

interface Reader {
  get (path: string): Promise<{ status: number, body: string }>
  close (): void
}

/** Keep-alive GETs to the receiver's origin, signed over an empty body when there is a secret. */
function reader (base: URL, secret: string | undefined, insecure: boolean): Reader {
  const client = base.protocol === 'https:' ? https : http
  const agent = new client.Agent({ keepAlive: true, maxSockets: READ_CONCURRENCY, ...(insecure ? { rejectUnauthorized: false } : {}) })
  return {
    get (path) {
      return new Promise((resolve, reject) => {
        const headers: Record<string, string> = secret === undefined ? {} : { ...sign(secret, '') }
        const req = client.get(new URL(path, base), { agent, headers, timeout: READ_TIMEOUT_MS }, (res) => {
          let body = ''
          res.setEncoding('utf8').on('data', (s: string) => { body += s })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
          res.on('error', reject)
        })
        req.on('timeout', () => req.destroy(new Error(`no answer within ${READ_TIMEOUT_MS} ms`)))
        req.on('error', reject)
      })
    },
    close: () => agent.destroy(),
  }
}
/** Fires the probes, asks which arrived, and reports. */
export async function runDoctor (url: string, options: { count: number, secret?: string, type: string, data?: string, waitMs: number, insecure: boolean, onProgress?: (text: string) => void }): Promise<DoctorReport> {
  const base = new URL(url.endsWith('/') ? url : url + '/')
  const jobsUrl = new URL(`jobs/${options.type}`, base)
  const target = parseTarget(jobsUrl)
  const run = randomBytes(4).toString('hex')
  const tlsOptions = options.insecure ? { rejectUnauthorized: false } : undefined
  const bodyOf = (shape: Shape): string => options.data ?? JSON.stringify({ run, shape })
  const request = (id: string, shape: Shape): Buffer => buildRequest(jobsUrl, {
    body: bodyOf(shape),
    headers: { 'Content-Type': 'application/json', 'webhook-id': id },
    ...(options.secret === undefined ? {} : { secret: options.secret }),
  })
  const read = reader(base, options.secret, options.insecure)
  try {
    // One ordinary request first (ack: no half-close, the answer is read), so a refusal (no such
    // job type, a bad signature, a 403) is reported as that and not as lost triggers.
    const checkId = `doctor-${run}-check`
    let ack: TriggerResult
    try {
      ack = await trigger(jobsUrl, {
        ack: true, body: bodyOf('fin'), headers: { 'Content-Type': 'application/json', 'webhook-id': checkId },
        ...(options.secret === undefined ? {} : { secret: options.secret }), ...(tlsOptions === undefined ? {} : { tls: tlsOptions }),
      })
    } catch (err) {
      throw new DoctorError(`cannot reach ${jobsUrl.href}: ${(err as Error).message}`, { cause: err })
    }
    if (ack.status !== 202) throw new DoctorError(refusalText(ack, options.type, jobsUrl))
    const front = header(ack.response, 'server') ?? header(ack.response, 'via')
    const back = await read.get(`jobs/${checkId}`).catch((err: unknown) => {
      throw new DoctorError(`cannot read GET /jobs/${checkId}: ${(err as Error).message}`, { cause: err })
    })
    if (back.status !== 200) throw new DoctorError(`GET /jobs/${checkId} answered ${back.status} for a job the receiver accepted: ${back.body.slice(0, 300)}`)

    const probes: Probe[] = Array.from({ length: options.count }, (_, i) => {
      const shape = SHAPES[i % SHAPES.length] as Shape
      const id = `doctor-${run}-${i + 1}`
      return { id, shape, bytes: request(id, shape), sent: false, kept: false }
    })
    let fired = 0
    await each(probes, FIRE_CONCURRENCY, async (p) => {
      p.sent = await fireShaped(target, p.bytes, p.shape, tlsOptions).then(() => true, () => false)
      options.onProgress?.(`fired ${++fired}/${probes.length}`)
    })
    const until = Date.now() + options.waitMs
    for (;;) {
      const missing = probes.filter((p) => p.sent && !p.kept)
      if (missing.length === 0 || Date.now() > until) break
      await each(missing, READ_CONCURRENCY, async (p) => {
        const got = await read.get(`jobs/${p.id}`).catch(() => undefined)
        if (got?.status === 200) p.kept = true
      })
      options.onProgress?.(`kept ${probes.filter((p) => p.kept).length}/${probes.length}, waiting for the rest`)
      if (probes.some((p) => p.sent && !p.kept)) await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS))
    }

    const shapes = SHAPES.map((shape): ShapeReport => {
      const of = probes.filter((p) => p.shape === shape)
      const kept = of.filter((p) => p.kept).length
      const unsent = of.filter((p) => !p.sent).length
      return { shape, fired: of.length, kept, lost: of.length - kept - unsent, unsent }
    })
    const lostIds = probes.filter((p) => p.sent && !p.kept).map((p) => p.id)
    const sum = (k: 'kept' | 'lost' | 'unsent'): number => shapes.reduce((n, s) => n + s[k], 0)
    return { url: base.href, run, type: options.type, front, shapes, kept: sum('kept'), lost: sum('lost'), unsent: sum('unsent'), lostIds, ...diagnose(shapes, front) }
  } finally {
    read.close()
  }
}

/** The preflight was refused or could not run: the receiver, not the front, is the problem. */
class DoctorError extends Error {
  override name = 'DoctorError'
}
/** `rawtrigger doctor`. */
export async function doctor (argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      count: { type: 'string', short: 'n' },
      secret: { type: 'string' },
      type: { type: 'string' },
      data: { type: 'string' },
      wait: { type: 'string' },
      insecure: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(DOCTOR_HELP)
    return
  }
  const url = positionals[0]
  if (url === undefined || positionals.length > 1) throw new InvalidOptionError('doctor takes exactly one URL, the receiver as your app reaches it; see rawtrigger doctor --help')
  const target = parseTarget(url)
  if (/\/jobs(\/|$)/.test(target.path)) throw new InvalidOptionError(`give the receiver's base URL, without /jobs/… (got ${url})`)
  const type = values.type ?? DOCTOR_JOB_TYPE
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(type)) throw new InvalidOptionError(`--type must be a job type name: 1-64 letters, digits, _ or - (got ${type})`)
  if (values.data !== undefined) {
    try {
      JSON.parse(values.data)
    } catch (cause) {
      throw new InvalidOptionError(`--data must be JSON (${(cause as Error).message})`, { cause })
    }
  } else if (values.type !== undefined && type !== DOCTOR_JOB_TYPE) {
    throw new InvalidOptionError('--type needs --data: the body a job of that type accepts (and that does no harm)')
  }
  const secret = values.secret ?? process.env.TRIGGER_SECRET
  const progress = process.stderr.isTTY && !values.json ? (text: string) => process.stderr.write(`\r\x1b[K${text}`) : undefined
  let report: DoctorReport
  try {
    report = await runDoctor(url, {
      count: intFlag('--count', values.count) ?? DEFAULT_COUNT,
      type, waitMs: intFlag('--wait', values.wait, 0) ?? DEFAULT_WAIT_MS, insecure: values.insecure,
      ...(secret === undefined || secret === '' ? {} : { secret }),
      ...(values.data === undefined ? {} : { data: values.data }),
      ...(progress === undefined ? {} : { onProgress: progress }),
    })
  } catch (err) {
    if (progress !== undefined) process.stderr.write('\r\x1b[K')
    if (!(err instanceof DoctorError)) throw err
    process.stderr.write(`rawtrigger doctor: ${err.message}\n`)
    process.exitCode = 1
    return
  }
  if (progress !== undefined) process.stderr.write('\r\x1b[K')
  process.stdout.write(values.json ? JSON.stringify(report) + '\n' : print(report))
  if (report.lost > 0) process.exitCode = 1
}
