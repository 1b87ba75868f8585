import type { ServerResponse } from 'node:http'
import { InternalError, RequestError, StoreError, TriggerError, ValidationError } from '../errors.ts'

/** The code of a 500: an error that is not a TriggerError (a bug; the log has it). */
export const INTERNAL_CODE = new InternalError().code

/** Writes a JSON response. `close` asks the client to close: the request body was not read. */
export function sendJson (res: ServerResponse, status: number, body: unknown, close = false): void {
  if (res.headersSent || res.destroyed) return
  const json = JSON.stringify(body)
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(json),
    ...(close ? { Connection: 'close' } : {}),
  })
  // A client that is already gone is normal here (fire-and-forget): Node drops the write.
  res.end(json)
}

/** The HTTP status and JSON body `{"error": {"code", "message"}}` for an error. */
export function errorBody (err: unknown): { status: number, body: { error: Record<string, unknown> } } {
  if (err instanceof ValidationError) {
    return { status: err.status, body: { error: { code: err.code, message: err.message, field: err.field, ...err.details } } }
  }
  if (err instanceof RequestError) {
    return { status: err.status, body: { error: { code: err.code, message: err.message } } }
  }
  if (err instanceof StoreError) {
    return { status: 503, body: { error: { code: err.code, message: `${err.message}; nothing was stored, retry later` } } }
  }
  const code = err instanceof TriggerError ? err.code : INTERNAL_CODE
  return { status: 500, body: { error: { code, message: 'internal error' } } }
}

/** Answers with the error's status and JSON body. */
export function sendError (res: ServerResponse, err: unknown, close = false): void {
  const { status, body } = errorBody(err)
  sendJson(res, status, body, close)
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }

/** A complete raw HTTP response for a socket the HTTP layer gave up on (clientError). */
export function rawErrorResponse (status: number, code: string, message: string): string {
  const json = JSON.stringify({ error: { code, message } })
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nConnection: close\r\n` +
    `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`
}
