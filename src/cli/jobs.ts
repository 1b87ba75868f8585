import { parseArgs } from 'node:util'
import { ControlError, InvalidOptionError } from '../errors.ts'
import { sign } from '../net/sign.ts'

export const JOBS_HELP = `rawtrigger jobs <list|show|retry|cancel> [id] [options]   control jobs of a running serve
rawtrigger suppressions <list|add|remove> [email] [options]  addresses later jobs skip

  --url <url>        the serve to talk to (default $RAWTRIGGER_URL or http://127.0.0.1:8080)
  --secret <S>       sign requests, needed when serve has a secret (default $TRIGGER_SECRET)
  --state <s>        list: queued, running, done, failed or cancelled
  --limit <n>        list: jobs per page (default 50)
  --before <cursor>  list: the page after the one whose "next" this was
  --reason <text>    suppressions add: why (default "added by hand")
  --json             print the answer as JSON
`

async function call (base: string, secret: string | undefined, method: string, path: string, body?: unknown): Promise<unknown> {
  const text = body === undefined ? '' : JSON.stringify(body)
  const headers: Record<string, string> = secret === undefined ? {} : { ...sign(secret, text) }
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(new URL(path, base), { method, headers, ...(body === undefined ? {} : { body: text }) })
  } catch (err) {
    // fetch() says "fetch failed"; the socket's error (ECONNREFUSED, ENOTFOUND…) is its cause.
    const cause = (err as Error).cause instanceof Error ? (err as Error).cause as Error : err as Error
    throw new ControlError(`${method} ${path}: cannot reach ${base}: ${cause.message}`, { cause })
  }
  const answer = res.status === 204 ? undefined : await res.json().catch(() => undefined) as { error?: { code?: unknown, message?: unknown } } | undefined
  if (!res.ok) {
    const serverCode = typeof answer?.error?.code === 'string' ? answer.error.code : undefined
    const message = typeof answer?.error?.message === 'string' ? answer.error.message : res.statusText
    throw new ControlError(`${method} ${path}: ${res.status} ${serverCode === undefined ? '' : `${serverCode}: `}${message}`, {
      status: res.status,
      ...(serverCode === undefined ? {} : { serverCode }),
    })
  }
  return answer
}

function line (job: Record<string, unknown>): string {
  return `${String(job.id)}  ${String(job.state).padEnd(9)} ${String(job.sent)}/${String(job.total)} sent, ${String(job.failed)} failed  ${String(job.createdAt)}`
}

/** `rawtrigger jobs …` and `rawtrigger suppressions …`. */
export async function control (kind: 'jobs' | 'suppressions', argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      secret: { type: 'string' },
      state: { type: 'string' },
      limit: { type: 'string' },
      before: { type: 'string' },
      reason: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  const [verb, arg] = positionals
  if (values.help || verb === undefined) {
    process.stdout.write(JOBS_HELP)
    return
  }
  const base = values.url ?? process.env.RAWTRIGGER_URL ?? 'http://127.0.0.1:8080'
  const envSecret = process.env.TRIGGER_SECRET
  const secret = values.secret ?? (envSecret === '' ? undefined : envSecret)
  const need = (what: string): string => {
    if (arg === undefined) throw new InvalidOptionError(`${kind} ${verb} needs ${what}; see rawtrigger help jobs`)
    return arg
  }
  let answer: unknown
  let text: string
  if (kind === 'jobs' && verb === 'list') {
    const q = new URLSearchParams()
    for (const k of ['state', 'limit', 'before'] as const) if (values[k] !== undefined) q.set(k, values[k])
    const page = await call(base, secret, 'GET', `/jobs?${q.toString()}`) as { jobs: Array<Record<string, unknown>>, next?: string }
    answer = page
    text = page.jobs.map(line).join('\n') + (page.next === undefined ? '' : `\nmore: --before ${page.next}`)
  } else if (kind === 'jobs' && verb === 'show') {
    answer = await call(base, secret, 'GET', `/jobs/${encodeURIComponent(need('a job id'))}`)
    text = JSON.stringify(answer, null, 2)
  } else if (kind === 'jobs' && (verb === 'retry' || verb === 'cancel')) {
    answer = await call(base, secret, 'POST', `/jobs/${encodeURIComponent(need('a job id'))}/${verb}`)
    const r = answer as { items: number, state: string }
    text = `${verb === 'retry' ? 're-queued' : 'cancelled'} ${r.items} item(s); job is ${r.state}`
  } else if (kind === 'suppressions' && verb === 'list') {
    answer = await call(base, secret, 'GET', `/suppressions${values.limit === undefined ? '' : `?limit=${values.limit}`}`)
    text = (answer as { suppressions: Array<{ email: string, reason: string }> }).suppressions.map((s) => `${s.email}  ${s.reason}`).join('\n')
  } else if (kind === 'suppressions' && verb === 'add') {
    answer = await call(base, secret, 'POST', '/suppressions', { email: need('an address'), ...(values.reason === undefined ? {} : { reason: values.reason }) })
    text = `${need('an address')} suppressed`
  } else if (kind === 'suppressions' && verb === 'remove') {
    answer = await call(base, secret, 'DELETE', `/suppressions/${encodeURIComponent(need('an address'))}`)
    text = `${need('an address')} no longer suppressed`
  } else {
    throw new InvalidOptionError(`unknown ${kind} command ${JSON.stringify(verb)}; see rawtrigger help jobs`)
  }
  process.stdout.write((values.json ? JSON.stringify(answer ?? {}) : text) + '\n')
}
