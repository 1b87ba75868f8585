// One connection of the receiver as the llhttp intake serves it. `POST /jobs/:type` — the request
// every trigger makes — is parsed, stored and answered here with one prepared write; any other
// request (the page, reads, control routes, `Expect`, upgrades) hands the connection, from that
// request on, to node:http, which then serves it as if it had had it from the start. It keeps the
// receiver's promises: a complete request is stored even when the client sent FIN or RST right
// after its last byte, an incomplete one never is, answers go out in request order.
import type { Socket } from 'node:net'
import { BadRequestError, BodyTooLargeError, IncompleteBodyError, RequestTimeoutError } from '../errors.ts'
import { peerOf } from './auth.ts'
import { AnswerQueue, MAX_WAITING_ANSWERS, type Slot } from './answer-queue.ts'
import { SocketReader, type ConsumeIndexes } from './socket-reader.ts'
import type { InFlight } from './in-flight.ts'
import { admit, afterAnswer, JOB_PATH_RE, storeJob, type Admitted } from './intake.ts'
import { headBytes, headersOf, jsonAnswer, releaseParser, requestParser, type Llhttp, type Parser, type ParseError } from './llhttp.ts'
import { errorBody, LINGER_MS, rawErrorResponse } from './respond.ts'
import { countIncomplete, countRawRefusal, countRefusal, type RouteContext } from './route-context.ts'

/** What every intake connection of a receiver shares. */
export interface IntakeConfig {
  ctx: RouteContext
  llhttp: Llhttp
  inFlight: InFlight
  /** Gives the socket to node:http; its buffered bytes start with the head of the request to serve. */
  handOff: (socket: Socket) => void
  /** The connection closed or went to node:http: the intake is finished with it. */
  gone: (connection: IntakeConnection) => void
  /** node:http's limits, which the intake applies the same way. */
  maxHeaderSize: number, headersTimeoutMs: number, requestTimeoutMs: number, keepAliveTimeoutMs: number
}

/** The request being read; `admitted`: what passed the checks before the body, undefined once refused. */
interface Message {
  slot: Slot, type: string, admitted: Admitted | undefined, headers: ReturnType<typeof headersOf>
  chunks: Buffer[], received: number, keepAlive: boolean, started: number, refused: boolean
}

type State = 'open' | 'handoff' | 'closing' | 'gone'

/** One connection on the intake (see the file's head). */
export class IntakeConnection {
  readonly #socket: Socket
  readonly #cfg: IntakeConfig
  readonly #parser: Parser
  #state: State = 'open'
  /** When the message being read began (ms), 0 between messages. */
  #messageAt = 0
  #headersDone = false
  #idleSince = Date.now()
  #closingSince = 0
  #message: Message | undefined
  readonly #answers: AnswerQueue
  #ended = false
  #paused = false
  #handoffHead: Buffer | undefined
  /** False once node:http has the socket. */
  #owned = true
  readonly #reader: SocketReader

  constructor (socket: Socket, cfg: IntakeConfig) {
    this.#socket = socket
    this.#cfg = cfg
    this.#answers = new AnswerQueue(socket, cfg.inFlight, (linger) => this.#close(linger), () => this.#onAnswered())
    const parser = requestParser(cfg.llhttp, cfg.maxHeaderSize, {
      begin: () => this.#onBegin(),
      head: (major, minor, raw, method, url, upgrade, keepAlive) => this.#onHead(major, minor, raw, method, url, upgrade, keepAlive),
      body: (chunk) => this.#onBody(chunk),
      complete: () => this.#onComplete(),
    })
    this.#parser = parser
    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
    this.#reader = new SocketReader(socket, parser, cfg.llhttp.HTTPParser as unknown as ConsumeIndexes, (ret) => this.#afterExecute(ret, undefined))
  }

  /** No request in progress and no answer waiting: a stop may close it. */
  get idle (): boolean {
    return this.#owned && this.#messageAt === 0 && this.#answers.size === 0
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#state !== 'open') return // closing: what still arrives is dropped (lingering close)
    this.#afterExecute(this.#parser.execute(chunk), chunk)
  }

  /** A read was parsed (`chunk`: undefined when the parser read the handle itself). */
  #afterExecute (parsed: number | ParseError, chunk: Buffer | undefined): void {
    // The callbacks that ran in execute() may have moved the state on.
    if (this.#state === 'handoff') {
      // From here the socket's reads go to the stream, as node:http's own parser expects them.
      const rest = typeof parsed === 'number' ? this.#reader.rest(parsed, chunk) : undefined
      this.#reader.release()
      if (rest !== undefined) this.#handOffWhenAnswered(rest)
      return
    }
    if (typeof parsed !== 'number' && this.#state === 'open') {
      this.#refuseRaw(parsed.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400, new BadRequestError(`Parse Error: ${(parsed as ParseError & { reason?: string }).reason ?? parsed.message}`))
    }
    // Closing: what still arrives goes to #onData, which drops it.
    if (this.#state !== 'open') this.#reader.release()
  }

  #pause (): void {
    this.#paused = true
    this.#reader.pause()
  }

  #onBegin (): void {
    this.#messageAt = Date.now()
    this.#headersDone = false
  }

  #onHead (major: number, minor: number, raw: string[], method: string, url: string, upgrade: boolean, keepAlive: boolean): number {
    this.#headersDone = true
    if (this.#state !== 'open') return 1
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    const match = method === 'POST' && !upgrade ? JOB_PATH_RE.exec(path) : null
    const headers = match === null ? undefined : headersOf(raw)
    if (match === null || headers === undefined || headers.expect !== undefined) {
      this.#state = 'handoff'
      this.#handoffHead = headBytes(method, url, major, minor, raw)
      return 2 // the parser stops after this head: node:http reads it again, and the rest
    }
    const message: Message = {
      slot: this.#answers.reserve(), type: match[1] as string, admitted: undefined, headers, chunks: [], received: 0,
      keepAlive, started: performance.now(), refused: false,
    }
    this.#message = message
    try {
      message.admitted = admit(this.#cfg.ctx, { method, url, headers, socket: this.#socket }, path, message.type, minor === 1)
    } catch (err) {
      this.#refuseUnread(message, err)
    }
    return 0
  }

  #onBody (chunk: Buffer): void {
    const message = this.#message
    if (message === undefined || message.refused) return
    message.received += chunk.length
    const limit = (message.admitted as Admitted).limit
    if (message.received > limit) {
      this.#refuseUnread(message, new BodyTooLargeError(`body is over the limit of ${limit} bytes`))
      return
    }
    message.chunks.push(chunk) // a view of the socket's chunk, which nothing reuses
  }

  #onComplete (): void {
    this.#messageAt = 0
    const message = this.#message
    this.#message = undefined
    if (message === undefined || message.refused || this.#state !== 'open') return
    const { ctx } = this.#cfg
    const body = message.chunks.length === 1 ? message.chunks[0] as Buffer : Buffer.concat(message.chunks, message.received)
    message.chunks = [] // held until the answer otherwise: a second copy of a large body
    const { access, handler } = message.admitted as Admitted
    storeJob(ctx, access, handler, message.type, message.headers, body).then((stored) => {
      this.#answer(message.slot, 202, stored.json, !message.keepAlive)
      afterAnswer(ctx, stored, message.started)
    }, (err: unknown) => {
      countRefusal(ctx, err)
      const { status, body: json } = errorBody(err)
      this.#answer(message.slot, status, json, !message.keepAlive)
    })
    if (this.#answers.size >= MAX_WAITING_ANSWERS && !this.#paused) this.#pause()
  }

  /** A refusal before the body was read: answered with `Connection: close`, the rest dropped until the client closes. */
  #refuseUnread (message: Message, err: unknown): void {
    message.refused = true
    this.#state = 'closing'
    countRefusal(this.#cfg.ctx, err)
    const { status, body } = errorBody(err)
    message.slot.linger = true
    this.#answer(message.slot, status, body, true)
  }

  #answer (slot: Slot, status: number, body: unknown, close: boolean): void {
    const { ctx, keepAliveTimeoutMs } = this.#cfg
    const closing = close || ctx.isStopping()
    this.#answers.fill(slot, jsonAnswer(status, JSON.stringify(body), closing, Math.round(keepAliveTimeoutMs / 1000)), closing)
  }

  /** Answers were written. */
  #onAnswered (): void {
    if (this.#paused && this.#state === 'open' && this.#answers.size < MAX_WAITING_ANSWERS / 2) {
      this.#paused = false
      this.#reader.resume()
    }
    if (this.#answers.size > 0) return
    this.#idleSince = Date.now()
    if (this.#state === 'handoff' && this.#handoffHead !== undefined) this.#handOff()
    else if (this.#ended && this.#state === 'open') this.#close(false)
  }

  /** Closes after the last answer; `linger`: the client may still send a body we did not read, and our RST would drop the answer in its kernel: the write side closes, what arrives is dropped until it closes or LINGER_MS (as respond.ts does). */
  #close (linger: boolean): void {
    if (this.#state === 'gone') return
    this.#state = 'closing'
    this.#closingSince = Date.now()
    if (linger) {
      if (this.#socket.writable) this.#socket.end()
      if (this.#ended) this.#socket.destroy()
    } else {
      this.#socket.destroySoon()
    }
  }

  readonly #onEnd = (): void => {
    this.#ended = true
    if (this.#state === 'closing') {
      if (this.#answers.size === 0) this.#socket.destroy() // else the last answer's close does
      return
    }
    if (this.#state !== 'open') return
    const cut = this.#parser.finish()
    if (typeof cut === 'object' && this.#messageAt !== 0) this.#incomplete()
    if (this.#answers.size === 0) this.#close(false)
  }

  /** The client went away mid-request: no job, and nobody to answer. */
  #incomplete (): void {
    const message = this.#message
    this.#message = undefined
    this.#messageAt = 0
    const err = new IncompleteBodyError(message === undefined ? 'connection closed inside the request head' : `body ended after ${message.received} bytes`)
    countIncomplete(this.#cfg.ctx, peerOf(this.#socket), err)
    if (message !== undefined && !message.refused) this.#answers.fill(message.slot, '', false)
  }

  readonly #onError = (): void => {} // ECONNRESET and the like: 'close' follows
  readonly #onClose = (): void => {
    const wasOpen = this.#state === 'open'
    this.#state = 'gone'
    if (wasOpen && this.#messageAt !== 0) this.#incomplete()
    this.#answers.drop()
    this.#reader.release()
    releaseParser(this.#parser)
    this.#cfg.gone(this)
  }

  /** An answer outside the request order (parse error, timeout): pending answers are dropped. */
  #refuseRaw (status: number, refusal: BadRequestError | RequestTimeoutError): void {
    countRawRefusal(this.#cfg.ctx, status, refusal)
    this.#answers.drop()
    this.#message = undefined
    this.#messageAt = 0
    if (this.#socket.writable) this.#socket.write(rawErrorResponse(status, refusal.code, refusal.message))
    this.#close(true)
  }

  #handOffWhenAnswered (rest: Buffer): void {
    this.#handoffHead = Buffer.concat([this.#handoffHead as Buffer, rest])
    if (this.#answers.size === 0) this.#handOff()
    else this.#pause() // what arrives meanwhile stays buffered, behind the head
  }

  #handOff (): void {
    const socket = this.#socket
    const head = this.#handoffHead as Buffer
    this.#handoffHead = undefined
    this.#state = 'gone'
    this.#owned = false
    socket.off('data', this.#onData)
    socket.off('end', this.#onEnd)
    socket.off('error', this.#onError)
    socket.off('close', this.#onClose)
    this.#reader.release()
    releaseParser(this.#parser)
    this.#cfg.gone(this)
    socket.unshift(head)
    this.#cfg.handOff(socket)
    if (this.#paused) socket.resume()
  }

  /** Called about once a second: the timeouts node:http would apply. */
  check (now: number): void {
    const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } = this.#cfg
    if (this.#state === 'closing') {
      if (now - this.#closingSince > LINGER_MS) this.#socket.destroy()
    } else if (this.#state === 'open' && this.#messageAt !== 0) {
      if (!this.#headersDone && now - this.#messageAt > headersTimeoutMs) {
        this.#refuseRaw(408, new RequestTimeoutError(`request headers not complete within ${headersTimeoutMs} ms`))
      } else if (now - this.#messageAt > requestTimeoutMs) {
        this.#refuseRaw(408, new RequestTimeoutError(`request not complete within ${requestTimeoutMs} ms`))
      }
    } else if (this.#state === 'open' && this.#answers.size === 0 && now - this.#idleSince > keepAliveTimeoutMs) {
      this.#socket.destroy()
    }
  }

  /** Ends the connection now (a stop after its grace). */
  destroy (): void {
    if (this.#owned) this.#socket.destroy()
  }
}
