import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { InternalError, RequestError, StoreError, TriggerError, ValidationError } from '../errors.ts'
import { writeJson } from '../json-response.ts'

/** The code of a 500: an error that is not a TriggerError (a bug; the log has it). */
export const INTERNAL_CODE = new InternalError().code

/** After an early answer, how long what the client still sends is read and dropped before the close. */
export const LINGER_MS = 2_000

const lingering = new WeakSet<Socket>()

/**
 * True for a socket closing after an early answer: the HTTP parser reports the bytes that still
 * arrive as errors (`clientError`), and they are to be dropped, not answered or cut short.
 */
export function isLingering (socket: Socket): boolean {
  return lingering.has(socket)
}

/**
 * Closes like nginx's lingering_close: Node destroys the socket once the answer is flushed, and a
 * client still sending its (refused, unread) body then gets a RST, which makes its kernel drop our
 * answer before the client has read it — a 413 turned into ECONNRESET. Instead, the write side is
 * closed, and what still arrives is read and dropped until the client closes or {@link LINGER_MS}.
 */
function lingerBeforeClose (socket: Socket): void {
  lingering.add(socket)
  socket.destroySoon = function lingeringDestroySoon (this: Socket): void {
    if (this.writable) this.end()
    const timer = setTimeout(() => this.destroy(), LINGER_MS)
    timer.unref()
    this.once('close', () => clearTimeout(timer))
    this.once('end', () => this.destroy())
    this.resume()
  }
}

/** Writes a JSON response. `close` asks the client to close: the request body was not read. */
export function sendJson (res: ServerResponse, status: number, body: unknown, close = false): void {
  if (res.headersSent || res.destroyed) return
  if (close && !res.req.complete && res.socket !== null) lingerBeforeClose(res.socket as Socket)
  writeJson(res, status, body, close ? { Connection: 'close' } : {})
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
