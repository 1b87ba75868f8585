// `rawtrigger serve` as a child process for the demo: its own process (the worker is visibly not
// the caller), its own process group (a terminal's Ctrl-C reaches only the demo, which then stops
// the child once, gracefully), the embedded SMTP sink, a temp data dir.
import { serveArgv, startChild } from '../kit/child.ts'

/** A running serve child. */
export interface ServeChild {
  pid: number
  /** `http://127.0.0.1:PORT` */
  url: string
  /** `smtp://127.0.0.1:PORT` of its embedded sink. */
  smtpUrl: string
  /** Resolves when the child exited, with a line saying how. */
  exited: Promise<string>
  /** The end of what the child wrote on stderr (JSON log lines). */
  stderr (): string
  /** SIGTERM, then SIGKILL after a while; resolves once it is gone. Safe to call twice. */
  stop (): Promise<void>
}

/**
 * Spawns `node --import tsx src/cli.ts serve --port 0 --data-dir <dataDir> --sink-port 0`, with the
 * environment's serve settings cleared: a TRIGGER_SECRET or SMTP_URL of the person's shell must not
 * send the demo's mail somewhere real.
 */
export async function startServeChild (dataDir: string): Promise<ServeChild> {
  const child = await startChild(serveArgv(['--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--sink-port', '0', '--log-level', 'info']),
    { name: 'serve', detached: true })
  // serve names its embedded sink on the same line: "mail: smtp://127.0.0.1:PORT (embedded sink)"
  const smtpUrl = (await child.waitFor(/mail: (smtp:\/\/\S+)/).catch(async (err: unknown) => {
    await child.kill9()
    throw err
  }))[1] as string
  let stopping: Promise<void> | undefined
  return {
    pid: child.pid,
    url: child.url,
    smtpUrl,
    exited: child.exited.then((e) => (e.signal === null ? `exit code ${String(e.code)}` : `signal ${e.signal}`)),
    stderr: child.stderr,
    stop: () => (stopping ??= child.stop().then(() => {})),
  }
}
