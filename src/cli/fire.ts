import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { InvalidOptionError } from '../errors.ts'
import type { HeaderInput } from '../net/request-bytes.ts'
import { trigger, type TriggerOptions } from '../net/trigger.ts'
import { intFlag } from './args.ts'

export const FIRE_HELP = `rawtrigger fire <url> [options]   send one request and hang up without reading the answer

  -d, --data <JSON|@file>   request body; @file reads a file, @- reads stdin.
                            Sent as is, with Content-Type: application/json unless -H sets one
  -H, --header 'Name: v'    extra header, repeatable
  -X, --method <METHOD>     default POST with --data, else GET
      --secret <S>          sign per Standard Webhooks (default: $TRIGGER_SECRET)
      --ack                 wait for the status line and print it (exit 1 on a status >= 400)
      --timeout <ms>        connect timeout (default 5000)
      --ack-timeout <ms>    status line timeout with --ack (default 5000)
      --insecure            https: do not verify the server certificate
      --json                print the result as one JSON line
`

function readData (value: string): string {
  if (!value.startsWith('@')) return value
  return readFileSync(value === '@-' ? 0 : value.slice(1), 'utf8')
}

function parseHeaders (lines: string[]): HeaderInput {
  const headers: Record<string, string[]> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new InvalidOptionError(`--header must be 'Name: value' (got ${JSON.stringify(line)})`)
    const name = line.slice(0, colon).trim()
    ;(headers[name] ??= []).push(line.slice(colon + 1).trim())
  }
  return headers
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
  const url = positionals[0]
  if (url === undefined || positionals.length > 1) throw new InvalidOptionError('fire takes exactly one URL; see rawtrigger fire --help')
  const headers = parseHeaders(values.header)
  const options: TriggerOptions = { headers, ack: values.ack }
  if (values.data !== undefined) {
    options.body = readData(values.data)
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json'
  }
  if (values.method !== undefined) options.method = values.method
  const secret = values.secret ?? process.env.TRIGGER_SECRET
  if (secret !== undefined && secret !== '') options.secret = secret
  const connectTimeoutMs = intFlag('--timeout', values.timeout)
  if (connectTimeoutMs !== undefined) options.connectTimeoutMs = connectTimeoutMs
  const ackTimeoutMs = intFlag('--ack-timeout', values['ack-timeout'])
  if (ackTimeoutMs !== undefined) options.ackTimeoutMs = ackTimeoutMs
  if (values.insecure) options.tls = { rejectUnauthorized: false }

  const result = await trigger(url, options)
  if (values.json) {
    process.stdout.write(JSON.stringify(result) + '\n')
  } else {
    const status = result.status === undefined ? 'not read' : String(result.status)
    process.stdout.write(
      `sent ${result.bytes} bytes to ${result.remoteAddress}:${result.remotePort}` +
      ` connect ${result.connectMs.toFixed(3)} ms, total ${result.totalMs.toFixed(3)} ms, status ${status}\n`,
    )
  }
  if (result.status !== undefined && result.status >= 400) process.exitCode = 1
}
