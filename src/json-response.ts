// Writing a JSON answer: shared by the receiver's routes (server/respond.ts, which adds the
// lingering close) and the routes a job type serves itself (smtp/service.ts's GET /mailbox).
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'

/** Writes `body` as a JSON response with its length; nothing when an answer was already sent. */
export function writeJson (res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return
  const json = JSON.stringify(body)
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(json),
    ...headers,
  })
  // A client that is already gone is normal here (fire-and-forget): Node drops the write.
  res.end(json)
}
