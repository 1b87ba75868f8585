// The harness's own SMTP server (smtp-server, 127.0.0.1, a fixed port so it can stop and come
// back on the same one): counts every accepted message by its Message-ID, which rawtrigger makes
// deterministic (`<jobId.index@domain>`), so a message sent twice — after a crash, or after a
// connection cut mid-DATA — is seen as a duplicate, and a message of a job nobody stored as invented.
import type { Socket } from 'node:net'
import { SMTPServer } from 'smtp-server'
import { freePort } from '../kit/scope.ts'

/** Head bytes kept per message: the Message-ID is in the first lines nodemailer writes. */
const HEAD_BYTES = 4096
const MESSAGE_ID_RE = /^message-id:\s*<([^>\r\n]+)>/im

/** What the sink counted. */
export interface SinkTally {
  /** Messages accepted (250), duplicates included. */
  accepted: number
  /** Distinct Message-IDs accepted. */
  unique: number
  /** accepted − unique. */
  duplicates: number
  /** TCP connections accepted while up. */
  connections: number
}

/** A sink that can stop and start again on the same port. */
export interface SmtpSink {
  readonly url: string
  readonly port: number
  /** Accepted messages per Message-ID (without the angle brackets). */
  readonly counts: ReadonlyMap<string, number>
  tally (): SinkTally
  /** Closes the port and cuts every open connection (the server is gone). */
  stop (): Promise<void>
  /** Listens again on the same port. */
  start (): Promise<void>
  close (): Promise<void>
}

/** Starts a sink on a free port. */
export async function startSmtpSink (): Promise<SmtpSink> {
  const port = await freePort()
  const counts = new Map<string, number>()
  let accepted = 0
  let connections = 0
  let server: SMTPServer | undefined
  const sockets = new Set<Socket>()

  const make = (): SMTPServer => {
    const s = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      disableReverseLookup: true,
      logger: false,
      onData (stream, _session, callback) {
        let head = ''
        stream.on('data', (chunk: Buffer) => {
          if (head.length < HEAD_BYTES) head += chunk.toString('latin1')
        })
        stream.on('end', () => {
          const id = MESSAGE_ID_RE.exec(head)?.[1] ?? `no-message-id-${accepted}`
          accepted++
          counts.set(id, (counts.get(id) ?? 0) + 1)
          callback()
        })
      },
    })
    // Clients that vanish (a pool closing idle connections, a killed serve) are normal here.
    s.on('error', () => {})
    s.server.on('connection', (socket: Socket) => {
      connections++
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
    })
    return s
  }

  const start = async (): Promise<void> => {
    if (server !== undefined) return
    const s = make()
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject)
      s.listen(port, '127.0.0.1', () => {
        s.server.off('error', reject)
        resolve()
      })
    })
    server = s
  }
  const stop = async (): Promise<void> => {
    const s = server
    if (s === undefined) return
    server = undefined
    await new Promise<void>((resolve) => {
      s.close(() => resolve())
      for (const socket of sockets) socket.destroy() // pooled clients would hold close() open
    })
  }
  await start()
  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    counts,
    tally: () => ({ accepted, unique: counts.size, duplicates: accepted - counts.size, connections }),
    stop,
    start,
    close: stop,
  }
}
