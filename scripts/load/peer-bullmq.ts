// The stack a Node user would pick instead of rawtrigger's receiver: fastify (or express) with a
// BullMQ `queue.add` per request, then 202. Run as a child process by scripts/load.ts:
//
//   node --import tsx scripts/load/peer-bullmq.ts fastify|express REDIS_URL PREFIX
//
// - POST /jobs/email: the body is validated (fastify: a JSON schema; express: express.json() and
//   the same checks by hand), added to BullMQ queue "email" under PREFIX, answered 202 {"id"};
// - GET /stats: {"accepted", "stored"}: requests answered 202, and BullMQ's job count;
// - prints `listening on http://127.0.0.1:<port>`; exits on SIGTERM or when stdin closes.
// Defaults of both frameworks are kept, as a user would: neither allows half-open connections.
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { Queue } from 'bullmq'

const [framework, redisUrl, prefix] = process.argv.slice(2)
if ((framework !== 'fastify' && framework !== 'express') || redisUrl === undefined || prefix === undefined) {
  process.stderr.write('usage: peer-bullmq.ts fastify|express REDIS_URL PREFIX\n')
  process.exit(2)
}

const queue = new Queue('email', { connection: { url: redisUrl }, prefix })
queue.on('error', () => {}) // reported by the add that failed
let accepted = 0

interface EmailBody { subject: string, text?: string, recipients: string[] }

function isEmailBody (body: unknown): body is EmailBody {
  const b = body as Partial<EmailBody> | null
  return typeof b === 'object' && b !== null && typeof b.subject === 'string' && b.subject !== '' &&
    Array.isArray(b.recipients) && b.recipients.length > 0 && b.recipients.every((r) => typeof r === 'string')
}

async function enqueue (body: EmailBody): Promise<string> {
  const job = await queue.add('email', body)
  accepted++
  return job.id ?? ''
}

async function stored (): Promise<number> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed')
  return Object.values(counts).reduce((a, b) => a + b, 0)
}

async function startFastify (): Promise<{ server: Server, close: () => Promise<void> }> {
  const { fastify } = await import('fastify')
  const app = fastify({ logger: false })
  const schema = {
    body: {
      type: 'object',
      required: ['subject', 'recipients'],
      properties: {
        subject: { type: 'string', minLength: 1 },
        text: { type: 'string' },
        recipients: { type: 'array', minItems: 1, items: { type: 'string' } },
      },
    },
  }
  app.post<{ Body: EmailBody }>('/jobs/email', { schema }, async (req, reply) => {
    const id = await enqueue(req.body)
    return reply.code(202).send({ id })
  })
  app.get('/stats', async () => ({ accepted, stored: await stored() }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { server: app.server, close: () => app.close() }
}

async function startExpress (): Promise<{ server: Server, close: () => Promise<void> }> {
  const { default: express } = await import('express')
  const app = express()
  app.use(express.json())
  app.post('/jobs/email', async (req, res) => {
    if (!isEmailBody(req.body)) {
      res.status(400).json({ error: 'subject and recipients are required' })
      return
    }
    res.status(202).json({ id: await enqueue(req.body) })
  })
  app.get('/stats', async (_req, res) => {
    res.json({ accepted, stored: await stored() })
  })
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  return { server, close: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections() }) }
}

const peer = framework === 'fastify' ? await startFastify() : await startExpress()
process.stdout.write(`listening on http://127.0.0.1:${(peer.server.address() as AddressInfo).port}\n`)

let stopping = false
function stop (): void {
  if (stopping) return
  stopping = true
  peer.close().then(() => queue.close()).finally(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
