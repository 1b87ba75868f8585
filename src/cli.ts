import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { InvalidOptionError, TriggerError } from './errors.ts'
import type { HeaderInput } from './net/request-bytes.ts'
import { generateSecret } from './net/sign.ts'
import { trigger, type TriggerOptions } from './net/trigger.ts'

const HELP = `rawtrigger — fire-and-forget HTTP triggers over raw sockets

Usage:
  rawtrigger fire <url> [options]   send one request and hang up without reading the answer
  rawtrigger secret                 print a new signing secret (whsec_ + base64 of 32 bytes)
  rawtrigger help                   this text

fire options:
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

Exit status: 0 on success, 1 on failure, 2 on bad usage. Errors print their RT_ERR_* code.
`

function fail (err: unknown): never {
  if (err instanceof TriggerError) {
    const cause = err.cause instanceof Error && 'code' in err.cause ? ` (${String(err.cause.code)})` : ''
    process.stderr.write(`rawtrigger: ${err.code}: ${err.message}${cause}\n`)
    process.exit(err instanceof InvalidOptionError ? 2 : 1)
  }
  process.stderr.write(`rawtrigger: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}

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

function positiveInt (name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new InvalidOptionError(`${name} must be a positive integer (got ${value})`)
  return n
}

async function fire (argv: string[]): Promise<void> {
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
    process.stdout.write(HELP)
    return
  }
  const url = positionals[0]
  if (url === undefined || positionals.length > 1) throw new InvalidOptionError('fire takes exactly one URL; see rawtrigger --help')
  const headers = parseHeaders(values.header)
  const options: TriggerOptions = { headers, ack: values.ack }
  if (values.data !== undefined) {
    options.body = readData(values.data)
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json'
  }
  if (values.method !== undefined) options.method = values.method
  const secret = values.secret ?? process.env.TRIGGER_SECRET
  if (secret !== undefined && secret !== '') options.secret = secret
  const connectTimeoutMs = positiveInt('--timeout', values.timeout)
  if (connectTimeoutMs !== undefined) options.connectTimeoutMs = connectTimeoutMs
  const ackTimeoutMs = positiveInt('--ack-timeout', values['ack-timeout'])
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

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'fire': return fire(rest)
    case 'secret':
      process.stdout.write(generateSecret() + '\n')
      return
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(HELP)
      return
    default:
      throw new InvalidOptionError(`unknown command ${JSON.stringify(command)}; see rawtrigger --help`)
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown or malformed flags.
  if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
    fail(new InvalidOptionError(`${err.message}; see rawtrigger --help`))
  }
  fail(err)
})
