import { fail, usageError } from './cli/args.ts'
import { fire, FIRE_HELP } from './cli/fire.ts'
import { control, JOBS_HELP } from './cli/jobs.ts'
import { serve, SERVE_HELP } from './cli/serve.ts'
import { InvalidOptionError } from './errors.ts'
import { generateSecret } from './net/sign.ts'

const HELP = `rawtrigger — fire-and-forget HTTP triggers over raw sockets, and the receiver that keeps them

Usage:
  rawtrigger fire <url> [options]   send one request and hang up without reading the answer
  rawtrigger serve [options]        receive triggers, store jobs durably, run them afterwards
  rawtrigger jobs <list|show|retry|cancel>      control the jobs of a running serve
  rawtrigger suppressions <list|add|remove>     the addresses later jobs skip
  rawtrigger secret                 print a new signing secret (whsec_ + base64 of 32 bytes)
  rawtrigger help [command]         this text, or a command's

${FIRE_HELP}
${SERVE_HELP}
${JOBS_HELP}
Exit status: 0 on success, 1 on failure, 2 on bad usage. Errors print their RT_ERR_* code.
`

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'fire': return fire(rest)
    case 'serve': return serve(rest)
    case 'jobs': return control('jobs', rest)
    case 'suppressions': return control('suppressions', rest)
    case 'secret':
      process.stdout.write(generateSecret() + '\n')
      return
    case 'help':
      process.stdout.write(rest[0] === 'fire' ? FIRE_HELP : rest[0] === 'serve' ? SERVE_HELP : rest[0] === 'jobs' || rest[0] === 'suppressions' ? JOBS_HELP : HELP)
      return
    case undefined: case '--help': case '-h':
      process.stdout.write(HELP)
      return
    default:
      throw new InvalidOptionError(`unknown command ${JSON.stringify(command)}; see rawtrigger --help`)
  }
}

main(process.argv.slice(2)).catch((err: unknown) => fail(usageError(err) ?? err))
