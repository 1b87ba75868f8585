import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { BodyTooLargeError, IncompleteBodyError } from '../errors.ts'

/**
 * Reads a request body. Call it synchronously in the request listener, before any await: Node
 * destroys a request — and the body it buffered — when the client's FIN or RST is processed, so
 * the chunks must be taken as they arrive. Resolves with every byte of a complete body, even when
 * the socket was reset after the last byte; rejects with {@link IncompleteBodyError} when it was
 * cut short, and {@link BodyTooLargeError} past `limit` (at once when Content-Length says so).
 */
export function readBody (req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let declared: number | undefined
    try {
      declared = declaredLength(req.headers, limit)
    } catch (err) {
      reject(err)
      return
    }
    const chunks: Buffer[] = []
    let received = 0
    let settled = false

    function finish (): void {
      if (settled) return
      settled = true
      req.off('data', onData)
      // Node sets `complete` once the parser saw the whole message; the length check guards the
      // case where a reset came after it but before every chunk was handed over.
      if (req.complete && (declared === undefined || received === declared)) {
        resolve(chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, received))
      } else {
        reject(new IncompleteBodyError(`body ended after ${received} of ${declared ?? 'unknown'} bytes`))
      }
    }

    function onData (chunk: Buffer): void {
      received += chunk.length
      if (received > limit) {
        settled = true
        req.off('data', onData)
        reject(new BodyTooLargeError(`body is over the limit of ${limit} bytes`))
        return
      }
      chunks.push(chunk)
    }

    req.on('data', onData)
    req.once('end', finish)
    req.once('close', finish)
    // 'aborted' errors are reported through 'close'; a listener keeps them from being unhandled.
    req.on('error', () => {})
  })
}

/** The body length the request announces (Content-Length); throws {@link BodyTooLargeError} past `limit`. */
export function declaredLength (headers: IncomingHttpHeaders, limit: number): number | undefined {
  const declared = headers['content-length'] === undefined ? undefined : Number(headers['content-length'])
  if (declared !== undefined && declared > limit) throw new BodyTooLargeError(`body of ${declared} bytes is over the limit of ${limit} bytes`)
  return declared
}
