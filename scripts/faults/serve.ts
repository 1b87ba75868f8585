// `rawtrigger serve` as a child the harness can kill -9: started as
// `node --conditions=rawtrigger-source --import tsx src/cli.ts serve …`, never through the tsx
// binary (that runs the program in a grandchild, and SIGKILL would hit only the wrapper:
// RELIABILITY.md item 16). Loopback only, its own --port (0 or one to come back on), settings from
// the environment cleared so a person's TRIGGER_SECRET or SMTP_URL cannot leak in.
import { serveArgv, spawnChild, SERVE_LISTENING, type Child } from '../kit/child.ts'
import type { Scope } from '../kit/scope.ts'

export type { Exit } from '../kit/child.ts'

/** A serve child; `ready` resolves with its URL once it listens, and rejects when it exits first. */
export type ServeChild = Child & { ready: Promise<string> }

/** Spawns serve on 127.0.0.1 with `args`; killed -9 when `scope` closes. Await `ready` for its URL. */
export function spawnServe (scope: Scope, args: readonly string[]): ServeChild {
  const child = spawnChild(serveArgv(['--host', '127.0.0.1', ...args]), { name: 'serve', scope })
  const ready = child.waitFor(SERVE_LISTENING).then((m) => m[1] as string)
  ready.catch(() => {}) // a caller that expects a failed start reads `exited` instead
  return { ...child, ready }
}

/** Spawns serve and waits until it listens. */
export async function startServe (scope: Scope, args: readonly string[]): Promise<ServeChild & { url: string }> {
  const child = spawnServe(scope, args)
  const url = await child.ready
  return { ...child, url }
}
