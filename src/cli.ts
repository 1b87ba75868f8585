import { readFileSync } from 'node:fs'
import { fail, usageError } from './cli/args.ts'
import { doctor, DOCTOR_HELP } from './cli/doctor.ts'
import { fire, FIRE_HELP } from './cli/fire.ts'
import { control, JOBS_HELP } from './cli/jobs.ts'
import { serve, SERVE_HELP } from './cli/serve.ts'
import { InvalidOptionError } from './errors.ts'
import { nativeAvailable } from './net/native-fire.ts'
import { generateSecret } from './net/sign.ts'

const HELP = `rawtrigger — fire-and-forget HTTP triggers over raw sockets, and the receiver that keeps them

Usage:
  rawtrigger fire <url> [options]   send one request and hang up without reading the answer
  rawtrigger serve [options]        receive triggers, store jobs durably, run them afterwards
  rawtrigger jobs <list|show|retry|cancel>      control the jobs of a running serve
  rawtrigger suppressions <list|add|remove>     the addresses later jobs skip
  rawtrigger doctor <url>           check that fsockopen-style triggers survive what sits in
                                    front of serve (nginx, HAProxy, …); names the fix
  rawtrigger secret                 print a new signing secret (whsec_ + base64 of 32 bytes)
  rawtrigger help [command]         this text, or a command's
  rawtrigger --version              the version, and which path trigger() takes to a local receiver

${FIRE_HELP}
${SERVE_HELP}
${JOBS_HELP}
${DOCTOR_HELP}
Exit status: 0 on success, 1 on failure, 2 on bad usage. Errors print their RT_ERR_* code.
`

const COMMAND_HELP: Record<string, string> = { fire: FIRE_HELP, serve: SERVE_HELP, jobs: JOBS_HELP, suppressions: JOBS_HELP, doctor: DOCTOR_HELP }
const COMMANDS = ['fire', 'serve', 'jobs', 'suppressions', 'secret', 'help', 'doctor']

/** `rawtrigger --version`: the package's version and whether the native trigger path is built. */
function version (): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  const path = nativeAvailable()
    ? 'native (to loopback addresses and Unix sockets)'
    : process.env.RAWTRIGGER_NATIVE === '0' ? 'node:net (RAWTRIGGER_NATIVE=0)' : 'node:net (the native path is not built: npm run install builds it)'
  return `rawtrigger ${pkg.version}\ntrigger() path: ${path}\n`
}

/** `rawtrigger help [command]`: the overview, or one command's text; an unknown command is bad usage. */
function helpFor (command: string | undefined): string {
  if (command === undefined || command === 'secret' || command === 'help') return HELP
  const text = COMMAND_HELP[command]
  if (text === undefined) throw new InvalidOptionError(`no help for ${JSON.stringify(command)}; the commands are ${COMMANDS.join(', ')}`)
  return text
}

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'fire': return fire(rest)
    case 'serve': return serve(rest)
    case 'jobs': return control('jobs', rest)
    case 'suppressions': return control('suppressions', rest)
    case 'doctor': return doctor(rest)
    case 'secret':
      process.stdout.write(generateSecret() + '\n')
      return
    case 'help':
      process.stdout.write(helpFor(rest[0]))
      return
    case '--version': case '-v':
      process.stdout.write(version())
      return
    case undefined: case '--help': case '-h':
      process.stdout.write(HELP)
      return
    default:
      throw new InvalidOptionError(`unknown command ${JSON.stringify(command)}; the commands are ${COMMANDS.join(', ')} (see rawtrigger --help)`)
  }
}

main(process.argv.slice(2)).catch((err: unknown) => fail(usageError(err) ?? err))
