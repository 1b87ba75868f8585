import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { InvalidBodyError, InvalidOptionError } from '../errors.ts'
import { parseTarget } from '../net/request-bytes.ts'
import { trigger, type TriggerOptions, type TriggerResult } from '../net/trigger.ts'
import { intFlag } from './args.ts'

export const FIRE_HELP = `rawtrigger fire <url> [options]   send one request and hang up without reading the answer

  -d, --data <JSON|@file>   request body; @file reads a file, @- reads stdin. Sent with
                            Content-Type: application/json unless -H sets one; a JSON body
                            must parse (checked before connecting)
  -H, --header 'Name: v'    extra header, repeatable
  -X, --method <METHOD>     default POST with --data, else GET
      --secret <S>          sign per Standard Webhooks (default: $TRIGGER_SECRET)
      --ack                 wait for the status line and print it; on a status >= 400 print
                            the server's error code and message and exit 1
      --timeout <ms>        connect timeout (default 5000)
      --ack-timeout <ms>    status line timeout with --ack (default 5000)
      --insecure            https: do not verify the server certificate
      --json                print the result as one JSON line

  Prints the request's webhook-id (a new msg_… unless -H sets one): the receiver stores the job
  under it, so GET /jobs/<id> (rawtrigger jobs show <id>) follows it. With --ack, the id the
  server answered. Exit status 0 sent, 1 failed (or refused with --ack), 2 bad usage.
`

// A JSON media type, as the receiver accepts it (application/json, application/*+json).
const JSON_TYPE_RE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

/** A new message id: fits the receiver's job ids (/^[A-Za-z0-9_-]{1,64}$/), so it is the job's id. */
function newMessageId (): string {
  return `msg_${randomUUID().replaceAll('-', '')}`
}

function readData (value: string): string {
  if (!value.startsWith('@')) return value
  const file = value.slice(1)
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (cause) {
    throw new InvalidOptionError(`--data ${value}: cannot read ${file === '-' ? 'stdin' : file}: ${(cause as Error).message}`, { cause })
  }
}

/** `-H` lines as headers; a name given once has a string value (a signature needs one webhook-id). */
function parseHeaders (lines: string[]): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new InvalidOptionError(`--header must be 'Name: value' (got ${JSON.stringify(line)})`)
    const name = line.slice(0, colon).trim()
    const value = line.slice(colon + 1).trim()
    const had = headers[name]
    headers[name] = had === undefined ? value : [...(typeof had === 'string' ? [had] : had), value]
  }
  return headers
}

/** The value of a header, any case of its name; undefined when not given. */
function headerValue (headers: Record<string, string | string[]>, name: string): string | string[] | undefined {
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name) return headers[key]
  return undefined
}

/** The JSON body of an ack answer, when all of it arrived with the status line. */
function answerBody (response: string | undefined): Record<string, unknown> | undefined {
  if (response === undefined) return undefined
  const at = response.indexOf('\r\n\r\n')
  if (at === -1) return undefined
  try {
    const body: unknown = JSON.parse(response.slice(at + 4))
    return typeof body === 'object' && body !== null && !Array.isArray(body) ? body as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** `rawtrigger: RT_ERR_…: message (HTTP 413)` from the server's `{"error": {code, message}}`, else the status line. */
function refusal (result: TriggerResult, body: Record<string, unknown> | undefined): string {
  const error = body?.error as { code?: unknown, message?: unknown } | undefined
  if (typeof error?.code === 'string') {
    return `rawtrigger: ${error.code}: ${typeof error.message === 'string' ? error.message : ''} (HTTP ${String(result.status)})\n`
  }
  const statusLine = (result.response ?? '').split('\r\n', 1)[0] ?? ''
  return `rawtrigger: ${statusLine === '' ? `HTTP ${String(result.status)}` : statusLine}\n`
}

/** `rawtrigger fire`. */
export async function fire (argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      data: { type: 'string', short: 'd' },
      header: { type: 'string', short: 'H', multiple: true, default: [] },
      method: { type: 'string', short: 'X' },
      secret: { type: 'string' },
      ack: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      'ack-timeout': { type: 'string' },
      insecure: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(FIRE_HELP)
    return
  }
  // Everything the person typed is checked before stdin is read or a connection is opened.
  const url = positionals[0]
  if (url === undefined || positionals.length > 1) throw new InvalidOptionError('fire takes exactly one URL; see rawtrigger fire --help')
  parseTarget(url)
  const headers = parseHeaders(values.header)
  const options: TriggerOptions = { headers, ack: values.ack }
  const connectTimeoutMs = intFlag('--timeout', values.timeout)
  if (connectTimeoutMs !== undefined) options.connectTimeoutMs = connectTimeoutMs
  const ackTimeoutMs = intFlag('--ack-timeout', values['ack-timeout'])
  if (ackTimeoutMs !== undefined) options.ackTimeoutMs = ackTimeoutMs
  if (values.method !== undefined) options.method = values.method
  const secret = values.secret ?? process.env.TRIGGER_SECRET
  if (secret !== undefined && secret !== '') options.secret = secret
  if (values.insecure) options.tls = { rejectUnauthorized: false }

  // The receiver keeps the job under the webhook-id, and a signature covers it: set it here, once.
  let id = headerValue(headers, 'webhook-id')
  if (Array.isArray(id)) throw new InvalidOptionError(`-H webhook-id must be given once (got ${id.length})`)
  if (id === undefined) {
    id = newMessageId()
    headers['webhook-id'] = id
  }
  if (values.data !== undefined) {
    const body = readData(values.data)
    const contentType = headerValue(headers, 'content-type')
    if (contentType === undefined) headers['Content-Type'] = 'application/json'
    if (typeof contentType !== 'object' && JSON_TYPE_RE.test(contentType ?? 'application/json')) {
      try {
        JSON.parse(body)
      } catch (cause) {
        throw new InvalidBodyError(`--data is not valid JSON (${(cause as Error).message}) but would be sent as application/json; -H 'Content-Type: …' sends other content as is`, { cause })
      }
    }
    options.body = body
  }

  const result = await trigger(url, options)
  const answer = answerBody(result.response)
  // With --ack, the receiver's answer names the job (a webhook-id that is not a job id gets a new one).
  if (result.status !== undefined && result.status < 400 && typeof answer?.id === 'string') id = answer.id
  if (values.json) {
    process.stdout.write(JSON.stringify({ id, ...result }) + '\n')
  } else {
    const status = result.status === undefined ? 'not read' : String(result.status)
    process.stdout.write(
      `sent ${result.bytes} bytes to ${result.remoteAddress}:${result.remotePort}` +
      ` connect ${result.connectMs.toFixed(3)} ms, total ${result.totalMs.toFixed(3)} ms, status ${status}\n` +
      `id ${id}\n`,
    )
  }
  if (result.status !== undefined && result.status >= 400) {
    process.stderr.write(refusal(result, answer))
    process.exitCode = 1
  }
}
