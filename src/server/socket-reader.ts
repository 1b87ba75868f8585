// How the intake's parser reads a socket: from its libuv handle straight into llhttp in C++, as
// node:http feeds its own parser (`parser.consume()`): no JS Buffer, no stream push and no `'data'`
// event per read. The end of the stream (FIN, RST) still reaches the socket's `'end'`, `'error'` and
// `'close'`. Reading is stopped and started on the handle itself: `socket.pause()` does not stop
// a consumed handle.
import type { Socket } from 'node:net'
import type { ParseError, Parser } from './llhttp.ts'

/** The part of a TCP or pipe handle that consuming touches. */
interface StreamHandle {
  isStreamBase?: boolean
  _consumed?: boolean
  reading?: boolean
  readStart (): number
  readStop (): number
}

/** What a consuming parser has beyond {@link Parser}: the binding's own methods. */
interface ConsumingParser extends Parser {
  consume (handle: StreamHandle): void
  unconsume (): void
  /** The buffer of the read being parsed, inside the execute callback. */
  getCurrentBuffer (): Buffer
}

/** The parser's callback index for the result of each read's parse (`HTTPParser.kOnExecute`). */
export interface ConsumeIndexes { kOnExecute: number }

/**
 * How a connection's parser gets its bytes: from the socket's handle in C++ where the socket can
 * be consumed, from `'data'` events otherwise or once {@link release}d; pausing acts on whichever.
 */
export class SocketReader {
  readonly #socket: Socket
  readonly #parser: ConsumingParser
  readonly #handle: StreamHandle | undefined
  #consumed: boolean

  /**
   * Makes `parser` read `socket` from its handle when it can, calling `onExecute` with the bytes
   * each read parsed (or the parse error); else the caller feeds it from `'data'` events.
   */
  constructor (socket: Socket, parser: Parser, indexes: ConsumeIndexes, onExecute: (ret: number | ParseError) => void) {
    const handle = (socket as Socket & { _handle?: StreamHandle | null })._handle ?? undefined
    const p = parser as ConsumingParser
    this.#socket = socket
    this.#parser = p
    this.#handle = handle
    this.#consumed = handle?.isStreamBase === true && handle._consumed !== true && typeof p.consume === 'function' && typeof indexes.kOnExecute === 'number'
    if (!this.#consumed) return
    ;(handle as StreamHandle)._consumed = true
    p[indexes.kOnExecute] = onExecute
    p.consume(handle as StreamHandle)
  }

  /** What the read being parsed holds from `offset` on: of `chunk`, or (consumed, inside `onExecute`) of the handle's read. */
  rest (offset: number, chunk: Buffer | undefined): Buffer {
    return (chunk ?? this.#parser.getCurrentBuffer()).subarray(offset)
  }

  /** Stops reading: what arrives waits in the kernel, or in the socket's buffer. */
  pause (): void {
    const handle = this.#handle
    if (!this.#consumed || handle === undefined) this.#socket.pause()
    else if (handle.reading === true) {
      handle.reading = false
      handle.readStop()
    }
  }

  /** Reads again. */
  resume (): void {
    const handle = this.#handle
    if (!this.#consumed || handle === undefined) this.#socket.resume()
    else if (handle.reading !== true) {
      handle.reading = true
      handle.readStart()
    }
  }

  /** The socket's reads go to the socket again (to its `'data'` listeners); idempotent. */
  release (): void {
    if (!this.#consumed) return
    this.#consumed = false
    this.#parser.unconsume()
    if (this.#handle !== undefined) this.#handle._consumed = false
  }
}
