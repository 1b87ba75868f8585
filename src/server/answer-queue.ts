import type { Socket } from 'node:net'
import type { InFlight } from './in-flight.ts'

/** Past this many answers waiting (pipelined requests) a connection stops reading, until fewer than half wait (not none: the request being read may hold a place). */
export const MAX_WAITING_ANSWERS = 32

/** An answer's place in a connection's order; `text` is set once it is known ('' writes nothing). */
export interface Slot {
  text: string | undefined
  /** The connection closes after this answer. */
  close: boolean
  /** ... with a lingering close: the request's body was not read. */
  linger: boolean
}

/**
 * The answers of one connection in request order: pipelined requests can finish out of order (a
 * refusal before an earlier request's commit), their answers may not. Each reserved slot counts
 * as a request in flight until it is written or dropped.
 */
export class AnswerQueue {
  readonly #socket: Socket
  readonly #inFlight: InFlight
  /** A closing answer was written. */
  readonly #onClose: (linger: boolean) => void
  /** Answers were written (`size` tells how many still wait). */
  readonly #onWritten: () => void
  #slots: Slot[] = []

  constructor (socket: Socket, inFlight: InFlight, onClose: (linger: boolean) => void, onWritten: () => void) {
    this.#socket = socket
    this.#inFlight = inFlight
    this.#onClose = onClose
    this.#onWritten = onWritten
  }

  get size (): number {
    return this.#slots.length
  }

  /** The next answer's place. */
  reserve (): Slot {
    const slot: Slot = { text: undefined, close: false, linger: false }
    this.#slots.push(slot)
    this.#inFlight.enter()
    return slot
  }

  /** Sets an answer and writes every answer that is next in order. */
  fill (slot: Slot, text: string, close: boolean): void {
    slot.text = text
    slot.close = close
    this.#flush()
  }

  #flush (): void {
    const socket = this.#socket
    while (this.#slots.length > 0 && (this.#slots[0] as Slot).text !== undefined) {
      const slot = this.#slots.shift() as Slot
      if (slot.text !== '' && !socket.destroyed) socket.write(slot.text as string)
      this.#inFlight.leave()
      if (slot.close) {
        this.drop()
        this.#onClose(slot.linger)
        return
      }
    }
    this.#onWritten()
  }

  /** Answers still waiting will never be written: they no longer count as in flight. */
  drop (): void {
    for (let i = 0; i < this.#slots.length; i++) this.#inFlight.leave()
    this.#slots = []
  }
}
